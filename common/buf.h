/* Byte views and the owned growable buffer, with Kafka big-endian/varint writers and holes
 * that are backpatched once the value is known (lengths, counts, CRCs). */
#ifndef SL_COMMON_BUF_H
#define SL_COMMON_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A borrowed view; p is NULL for a Kafka null string/bytes (and then len is 0). */
struct sl_bytes {
    const uint8_t *p; /* borrowed */
    size_t len;
};

#define SL_BYTES_NULL   ((struct sl_bytes){NULL, 0})
#define SL_BYTES(p, n)  ((struct sl_bytes){(const uint8_t *)(p), (n)})
#define SL_BYTES_STR(s) ((struct sl_bytes){(const uint8_t *)(s), strlen(s)})

/* True when both are null, or both non-null with equal contents. */
bool sl_bytes_eq(struct sl_bytes a, struct sl_bytes b);
/* True when b is non-null and equals the NUL-terminated string s. */
bool sl_bytes_eq_str(struct sl_bytes b, const char *s);

/*
 * An owned, growable byte buffer. Positions are offsets, never pointers, so a realloc never
 * invalidates what a caller saved. The first allocation failure is sticky in `err`: every later
 * append is a no-op, and the writer checks once at the end (sl_buf_error).
 */
struct sl_buf {
    uint8_t *data; /* owned */
    size_t len;
    size_t cap;
    int err; /* 0, or the first failure (-ENOMEM, SL_ETOOBIG) */
};

/* Makes b empty with no storage and no error; nothing to release until it is written to. */
void sl_buf_init(struct sl_buf *b);
/* Frees the storage; the buffer is then empty and may be reused. NULL-safe. */
void sl_buf_fini(struct sl_buf *b);
/* Empties the buffer and clears its error, keeping the storage. */
void sl_buf_reset(struct sl_buf *b);
/* Makes room for `extra` more bytes. Returns 0, or -ENOMEM / SL_ETOOBIG (also made sticky). */
int sl_buf_reserve(struct sl_buf *b, size_t extra);
/* Returns b->err: 0 when every write so far succeeded. */
int sl_buf_error(const struct sl_buf *b);
/* Shortens to len bytes (len <= b->len). */
void sl_buf_truncate(struct sl_buf *b, size_t len);
/* A view of [off, off+len) of the buffer; valid until the next write. */
struct sl_bytes sl_buf_view(const struct sl_buf *b, size_t off, size_t len);

/* Appenders: each returns 0 or the sticky error. */
int sl_buf_append(struct sl_buf *b, const void *p, size_t n);
int sl_buf_append_str(struct sl_buf *b, const char *s);
int sl_buf_printf(struct sl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Kafka primitives, big-endian, in the names of the protocol guide. */
int sl_buf_put_i8(struct sl_buf *b, int8_t v);
int sl_buf_put_i16(struct sl_buf *b, int16_t v);
int sl_buf_put_i32(struct sl_buf *b, int32_t v);
int sl_buf_put_u32(struct sl_buf *b, uint32_t v);
int sl_buf_put_i64(struct sl_buf *b, int64_t v);
int sl_buf_put_uvarint(struct sl_buf *b, uint32_t v); /* unsigned varint */
int sl_buf_put_varint(struct sl_buf *b, int32_t v);   /* zigzag */
int sl_buf_put_varlong(struct sl_buf *b, int64_t v);  /* zigzag */
/* STRING / NULLABLE_STRING: int16 length then bytes; s.p == NULL writes length -1. */
int sl_buf_put_string(struct sl_buf *b, struct sl_bytes s);
/* BYTES / NULLABLE_BYTES: int32 length then bytes; NULL writes -1. */
int sl_buf_put_bytes(struct sl_buf *b, struct sl_bytes s);
/* Record fields: varint length (zigzag) then bytes; NULL writes -1. */
int sl_buf_put_varbytes(struct sl_buf *b, struct sl_bytes s);

/* Reserves n zero bytes to be filled later; returns their offset (meaningless if err is set,
 * and the patchers below then do nothing). */
size_t sl_buf_hole(struct sl_buf *b, size_t n);
/* Overwrite bytes at off, big-endian. They do nothing when the buffer has a sticky error or the
 * field would not lie entirely within [0, len): a patch never grows the buffer. */
void sl_buf_patch_i16(struct sl_buf *b, size_t off, int16_t v);
void sl_buf_patch_i32(struct sl_buf *b, size_t off, int32_t v);
void sl_buf_patch_u32(struct sl_buf *b, size_t off, uint32_t v);
void sl_buf_patch_i64(struct sl_buf *b, size_t off, int64_t v);

/* Big-endian loads and stores on raw memory, for fixed layouts (segment indexes, headers). */
static inline uint16_t sl_be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}
static inline uint32_t sl_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t sl_be64(const uint8_t *p)
{
    return (uint64_t)sl_be32(p) << 32 | sl_be32(p + 4);
}
static inline void sl_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void sl_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void sl_put_be64(uint8_t *p, uint64_t v)
{
    sl_put_be32(p, (uint32_t)(v >> 32));
    sl_put_be32(p + 4, (uint32_t)v);
}

#endif
