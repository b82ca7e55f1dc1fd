/* The files sink's compressor: a worker thread that checks chunks of JSON lines, turns them
 * into gzip members (sink_gz.c) and appends them to their stage files, so checking and
 * compression run beside the fetching and decoding on the driver's thread. */
#ifndef SL_CLI_SINK_ZIP_H
#define SL_CLI_SINK_ZIP_H

#include "common/buf.h"
#include "common/err.h"

#include <stdbool.h>
#include <stdint.h>

/*
 * A file is a series of gzip members, one per chunk (RFC 1952 2.2: "a gzip file consists of a
 * series of members"); gzip -d, zcat, Python's gzip, Hadoop's GzipCodec, Spark and DuckDB
 * read them as one stream. Each member stands alone, which is what lets a whole-buffer
 * compressor run on its own thread:
 *
 *   driver thread                     worker thread
 *   lines ─> chunk ─ put ─> [queue, at most queue_max] ─> check ─> compress ─> write(fd)
 *   seal: the last chunk ───────────> [queue] ─> ... ─> write(fd), fsync(fd)
 *   finalize: wait(file) until it is sealed, take its rejects, then rename
 *
 * Workers compress chunks side by side; the chunks of one file are written in the order they
 * were put.
 * A chunk with records (`recs`) holds raw values, one per line: the worker keeps those that
 * are JSON objects (whitespace newlines made spaces, so each stays one line) and moves the
 * others, with their key, to the file's rejects, which the driver sends to the dead-letter file
 * before the file is made final. A chunk without records is written as it is.
 */
struct sink_zip;

/* One record of a chunk: its value is the next vlen bytes of lines, then '\n'; its key the next
 * klen bytes of keys (klen -1: null key). */
struct sink_zrec {
    int64_t offset, timestamp;
    uint32_t vlen;
    int32_t klen;
};

struct sink_zchunk {
    struct sl_buf lines; /* owned */
    struct sl_buf recs;  /* owned: struct sink_zrec[]; empty: lines are checked already */
    struct sl_buf keys;  /* owned */
};

/* A record the worker refused, with what the dead-letter file needs. */
struct sink_zreject {
    struct sink_zreject *next;
    int64_t offset, timestamp;
    int32_t klen; /* -1: null key */
    uint32_t vlen;
    char why[512];  /* as long as an sl_err message */
    uint8_t data[]; /* the key's klen bytes, then the value's vlen */
};

/* One output file, owned by the caller; the fields after fd are the zip's (read them with
 * sink_zip_wait / sink_zip_out_bytes). */
struct sink_zfile {
    int fd;
    unsigned pending;   /* chunks queued or in the worker */
    uint64_t out_bytes; /* compressed bytes written */
    int err;            /* the first write error (-errno); later chunks are dropped */
    int64_t first_ok;   /* offset of the first record kept, -1 before one (chunks with recs) */
    uint64_t put_seq, done_seq; /* chunks put; chunks written (members go in put order) */
    uint64_t unhinted;          /* bytes written since the last writeback hint (the writer's) */
    bool synced;                /* sealed: written and fsynced */
    bool sync_failed;           /* err is the fsync's */
    struct sink_zreject *rejects, **rejects_tail; /* owned: in offset order */
};

/* Prepares f for fd (no chunk pending, no reject). */
void sink_zfile_init(struct sink_zfile *f, int fd);
/* Frees f's rejects (after sink_zip_wait). */
void sink_zfile_drop_rejects(struct sink_zfile *f);

void sink_zchunk_init(struct sink_zchunk *c);
void sink_zchunk_fini(struct sink_zchunk *c);

#define SINK_ZIP_WORKERS_MAX 16

/* Starts `workers` threads (1..SINK_ZIP_WORKERS_MAX) compressing at a gzip level
 * (SINK_GZ_LEVEL_MIN..MAX). Returns 0 and *out, or an error. */
int sink_zip_new(int level, unsigned workers, unsigned queue_max, struct sink_zip **out,
                 struct sl_err *err);
/* Waits for every chunk, stops the workers and frees; NULL-safe. */
void sink_zip_free(struct sink_zip *z);
/* Hands chunk c (whole lines) to the worker for f; c is left empty (its storage may be swapped
 * for a recycled chunk's). Blocks while queue_max chunks are waiting. Returns 0, f's earlier
 * write error, or -ENOMEM. */
int sink_zip_put(struct sink_zip *z, struct sink_zfile *f, struct sink_zchunk *c);
/* Like sink_zip_put for f's last chunk (c may be empty): once it is written the worker fsyncs f
 * and sets f->synced, or f->err and f->sync_failed. No chunk of f may follow. */
int sink_zip_seal(struct sink_zip *z, struct sink_zfile *f, struct sink_zchunk *c);
/* Waits until f has no chunk pending. Returns 0 or f's write error (-errno). */
int sink_zip_wait(struct sink_zip *z, struct sink_zfile *f);
/* True when no chunk of f is queued or being written: sink_zip_wait would not block. */
bool sink_zip_idle(struct sink_zip *z, const struct sink_zfile *f);
/* Compressed bytes written to f so far (without waiting). */
uint64_t sink_zip_out_bytes(struct sink_zip *z, const struct sink_zfile *f);

#endif
