/* The sticky-error reader and its Kafka primitive decoders. */
#include "common/reader.h"

#include <stdio.h>

void sl_reader_init(struct sl_reader *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->pos = 0;
    r->err = 0;
    r->err_pos = 0;
    r->err_what = NULL;
}

int sl_reader_fail(struct sl_reader *r, int code, const char *what)
{
    if (!r->err) {
        r->err = code;
        r->err_pos = r->pos;
        r->err_what = what;
    }
    return r->err;
}

/* Returns a pointer to n readable bytes and advances, or NULL after marking truncation. */
static const uint8_t *take(struct sl_reader *r, size_t n, const char *what)
{
    if (r->err)
        return NULL;
    if (n > r->len - r->pos) {
        sl_reader_fail(r, SL_ETRUNC, what);
        return NULL;
    }
    /* A reader over (NULL, 0) still yields non-null empty views. */
    const uint8_t *p = r->p ? r->p + r->pos : (const uint8_t *)"";
    r->pos += n;
    return p;
}

int8_t sl_reader_i8(struct sl_reader *r)
{
    const uint8_t *p = take(r, 1, "int8");
    return p ? (int8_t)p[0] : 0;
}

int16_t sl_reader_i16(struct sl_reader *r)
{
    const uint8_t *p = take(r, 2, "int16");
    return p ? (int16_t)sl_be16(p) : 0;
}

int32_t sl_reader_i32(struct sl_reader *r)
{
    const uint8_t *p = take(r, 4, "int32");
    return p ? (int32_t)sl_be32(p) : 0;
}

uint32_t sl_reader_u32(struct sl_reader *r)
{
    const uint8_t *p = take(r, 4, "uint32");
    return p ? sl_be32(p) : 0;
}

int64_t sl_reader_i64(struct sl_reader *r)
{
    const uint8_t *p = take(r, 8, "int64");
    return p ? (int64_t)sl_be64(p) : 0;
}

/* Reads an unsigned LEB128 value of at most max_bytes whose value fits in bits. */
static uint64_t read_uvarint(struct sl_reader *r, unsigned max_bytes, unsigned bits,
                             const char *what)
{
    if (r->err)
        return 0;
    size_t start = r->pos;
    uint64_t v = 0;
    for (unsigned i = 0; i < max_bytes; i++) {
        if (r->pos >= r->len) {
            r->pos = start;
            sl_reader_fail(r, SL_ETRUNC, what);
            return 0;
        }
        uint8_t byte = r->p[r->pos++];
        unsigned shift = 7 * i;
        uint64_t chunk = byte & 0x7f;
        /* The last allowed byte may only carry the bits that remain. */
        if (shift + 7 > bits && (chunk >> (bits - shift)) != 0) {
            r->pos = start;
            sl_reader_fail(r, SL_EPARSE, what);
            return 0;
        }
        v |= chunk << shift;
        if (!(byte & 0x80))
            return v;
    }
    r->pos = start;
    sl_reader_fail(r, SL_EPARSE, what);
    return 0;
}

uint32_t sl_reader_uvarint(struct sl_reader *r)
{
    return (uint32_t)read_uvarint(r, 5, 32, "unsigned varint");
}

int32_t sl_reader_varint(struct sl_reader *r)
{
    uint32_t u = (uint32_t)read_uvarint(r, 5, 32, "varint");
    return (int32_t)((u >> 1) ^ (~(u & 1) + 1));
}

int64_t sl_reader_varlong(struct sl_reader *r)
{
    uint64_t u = read_uvarint(r, 10, 64, "varlong");
    return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

static struct sl_bytes take_len(struct sl_reader *r, int64_t n, const char *what)
{
    if (r->err)
        return SL_BYTES_NULL;
    if (n == -1)
        return SL_BYTES_NULL;
    if (n < 0) {
        sl_reader_fail(r, SL_EPARSE, what);
        return SL_BYTES_NULL;
    }
    const uint8_t *p = take(r, (size_t)n, what);
    if (!p)
        return SL_BYTES_NULL;
    return (struct sl_bytes){p, (size_t)n};
}

struct sl_bytes sl_reader_string(struct sl_reader *r)
{
    size_t at = r->pos;
    int16_t n = sl_reader_i16(r);
    struct sl_bytes s = take_len(r, n, "string");
    if (r->err && r->err_pos > at)
        r->err_pos = at;
    return s;
}

struct sl_bytes sl_reader_bytes(struct sl_reader *r)
{
    size_t at = r->pos;
    int32_t n = sl_reader_i32(r);
    struct sl_bytes s = take_len(r, n, "bytes");
    if (r->err && r->err_pos > at)
        r->err_pos = at;
    return s;
}

struct sl_bytes sl_reader_varbytes(struct sl_reader *r)
{
    size_t at = r->pos;
    int32_t n = sl_reader_varint(r);
    struct sl_bytes s = take_len(r, n, "varint-length bytes");
    if (r->err && r->err_pos > at)
        r->err_pos = at;
    return s;
}

struct sl_bytes sl_reader_raw(struct sl_reader *r, size_t n)
{
    const uint8_t *p = take(r, n, "raw bytes");
    return p ? (struct sl_bytes){p, n} : SL_BYTES_NULL;
}

void sl_reader_skip(struct sl_reader *r, size_t n)
{
    take(r, n, "skipped bytes");
}

int32_t sl_reader_array(struct sl_reader *r, int32_t max, size_t elem_min)
{
    size_t at = r->pos;
    int32_t n = sl_reader_i32(r);
    if (r->err)
        return 0;
    if (n == -1)
        return -1;
    if (n < 0) {
        r->pos = at;
        sl_reader_fail(r, SL_EPARSE, "array count");
        return 0;
    }
    if (n > max || (elem_min && (size_t)n > (r->len - r->pos) / elem_min)) {
        r->pos = at;
        sl_reader_fail(r, SL_ETOOBIG, "array count");
        return 0;
    }
    return n;
}

int sl_reader_describe(const struct sl_reader *r, struct sl_err *err, const char *ctx)
{
    if (!r->err)
        return 0;
    return sl_err_set(err, r->err, "%s: %s at offset %zu (%zu bytes left): %s", ctx,
                      r->err_what ? r->err_what : "field", r->err_pos, r->len - r->err_pos,
                      sl_strerror(r->err));
}
