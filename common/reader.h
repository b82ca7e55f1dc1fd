/* A bounds-checked big-endian reader over borrowed bytes, with a sticky error: decode straight
 * down, then check once. It reads every Kafka primitive the protocol and record batches use. */
#ifndef SL_COMMON_READER_H
#define SL_COMMON_READER_H

#include "common/buf.h"
#include "common/err.h"

#include <stddef.h>
#include <stdint.h>

struct sl_reader {
    const uint8_t *p; /* borrowed */
    size_t len;
    size_t pos;
    int err;              /* 0, or the first failure: SL_ETRUNC, SL_EPARSE, SL_ETOOBIG */
    size_t err_pos;       /* offset of the field that failed */
    const char *err_what; /* static text naming what failed */
};

/* Starts reading len bytes at p (borrowed; may be NULL when len is 0), with no error. */
void sl_reader_init(struct sl_reader *r, const void *p, size_t len);

/* Marks the reader failed (first failure wins) and returns code. */
int sl_reader_fail(struct sl_reader *r, int code, const char *what);

static inline size_t sl_reader_left(const struct sl_reader *r)
{
    return r->err ? 0 : r->len - r->pos;
}

/* After a failure every reader below returns zero/null and leaves the position alone. */
int8_t sl_reader_i8(struct sl_reader *r);
int16_t sl_reader_i16(struct sl_reader *r);
int32_t sl_reader_i32(struct sl_reader *r);
uint32_t sl_reader_u32(struct sl_reader *r);
int64_t sl_reader_i64(struct sl_reader *r);
/* UNSIGNED_VARINT (at most 5 bytes, 32 bits). */
uint32_t sl_reader_uvarint(struct sl_reader *r);
/* VARINT: zigzag, at most 5 bytes; an overlong or overflowing encoding is SL_EPARSE. */
int32_t sl_reader_varint(struct sl_reader *r);
/* VARLONG: zigzag, at most 10 bytes. */
int64_t sl_reader_varlong(struct sl_reader *r);

/* NULLABLE_STRING: int16 length, -1 is null (p == NULL); other negatives are SL_EPARSE. */
struct sl_bytes sl_reader_string(struct sl_reader *r);
/* NULLABLE_BYTES: int32 length, -1 is null. */
struct sl_bytes sl_reader_bytes(struct sl_reader *r);
/* Record key/value/header fields: varint length, -1 is null. */
struct sl_bytes sl_reader_varbytes(struct sl_reader *r);
/* n raw bytes. */
struct sl_bytes sl_reader_raw(struct sl_reader *r, size_t n);
void sl_reader_skip(struct sl_reader *r, size_t n);

/* ARRAY count (int32). -1 (null) is returned as -1 whatever max is; the caller treats it as
 * empty or refuses it. A count over max, or one that could not fit in the bytes left at
 * elem_min bytes per element, is SL_ETOOBIG, reported before the caller allocates anything.
 * Other negatives are SL_EPARSE. */
int32_t sl_reader_array(struct sl_reader *r, int32_t max, size_t elem_min);

/* Fills err with "<ctx>: <what> at offset N (M bytes left): <reason>" and returns r->err. */
int sl_reader_describe(const struct sl_reader *r, struct sl_err *err, const char *ctx);

#endif
