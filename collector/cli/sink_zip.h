/* The files sink's compressor: a worker thread that turns chunks of JSON lines into gzip
 * members (libdeflate) and appends them to their stage files, so compression runs beside the
 * fetching and decoding on the driver's thread. */
#ifndef SL_CLI_SINK_ZIP_H
#define SL_CLI_SINK_ZIP_H

#include "common/buf.h"
#include "common/err.h"

#include <stdint.h>

/*
 * A file is a series of gzip members, one per chunk (RFC 1952 2.2: "a gzip file consists of a
 * series of members"); gzip -d, zcat, Python's gzip, Hadoop's GzipCodec, Spark and DuckDB
 * read them as one stream. Each member stands alone, which is what lets a whole-buffer
 * compressor run on its own thread:
 *
 *   driver thread                     worker thread
 *   lines ─> chunk (in) ─ put ─> [queue, at most queue_max] ─> compress ─> write(fd)
 *   finalize: wait(file) until its chunks are written, then fsync, rename
 *
 * Chunks of one file are written in the order they were put (one worker, one FIFO queue).
 */
struct sink_zip;

/* One output file, owned by the caller; the fields after fd are the zip's (read them with
 * sink_zip_wait / sink_zip_out_bytes). */
struct sink_zfile {
    int fd;
    unsigned pending;   /* chunks queued or in the worker */
    uint64_t out_bytes; /* compressed bytes written */
    int err;            /* the first write error (-errno); later chunks are dropped */
};

/* Starts the worker with a libdeflate level (1..12). Returns 0 and *out, or an error. */
int sink_zip_new(int level, unsigned queue_max, struct sink_zip **out, struct sl_err *err);
/* Waits for every chunk, stops the worker and frees; NULL-safe. */
void sink_zip_free(struct sink_zip *z);
/* Hands in's bytes (one or more whole lines) to the worker for f; in is left empty (its
 * storage may be swapped for a recycled buffer). Blocks while queue_max chunks are waiting.
 * Returns 0, f's earlier write error, or -ENOMEM. */
int sink_zip_put(struct sink_zip *z, struct sink_zfile *f, struct sl_buf *in);
/* Waits until f has no chunk pending. Returns 0 or f's write error (-errno). */
int sink_zip_wait(struct sink_zip *z, struct sink_zfile *f);
/* Compressed bytes written to f so far (without waiting). */
uint64_t sink_zip_out_bytes(struct sink_zip *z, const struct sink_zfile *f);

#endif
