/* One gzip member from a buffer, for the files sink's workers: level 1 with ISA-L's igzip,
 * which on this kind of text (JSON log lines) is about 2.4 times as fast as libdeflate's level 1
 * for the same size, and levels 2 to 9 with libdeflate, for smaller files at a lower rate. */
#ifndef SL_CLI_SINK_GZ_H
#define SL_CLI_SINK_GZ_H

#include "common/err.h"

#include <stddef.h>
#include <stdint.h>

struct sink_gz;

#define SINK_GZ_LEVEL_MIN 1
#define SINK_GZ_LEVEL_MAX 9

/* A compressor at `level` (SINK_GZ_LEVEL_MIN..MAX), for one thread at a time. */
int sink_gz_new(int level, struct sink_gz **out, struct sl_err *err);
void sink_gz_free(struct sink_gz *g);
/* Compresses in[0..n) into one whole gzip member, held by g until the next call. Returns the
 * member's length and *out, -ENOMEM or -EFBIG (n over 4 GiB). */
int64_t sink_gz_member(struct sink_gz *g, const uint8_t *in, size_t n, const uint8_t **out);

#endif
