/* The growable buffer and its Kafka writers. */
#include "common/buf.h"

#include "common/err.h"
#include "common/mem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

/* No single buffer may exceed this; it keeps size arithmetic far from overflow. */
#define SL_BUF_MAX ((size_t)1 << 40)

bool sl_bytes_eq(struct sl_bytes a, struct sl_bytes b)
{
    if (!a.p || !b.p)
        return !a.p && !b.p;
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

bool sl_bytes_eq_str(struct sl_bytes b, const char *s)
{
    return b.p && sl_bytes_eq(b, SL_BYTES_STR(s));
}

void sl_buf_init(struct sl_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->err = 0;
}

void sl_buf_fini(struct sl_buf *b)
{
    if (!b)
        return;
    SL_FREE(b->data);
    sl_buf_init(b);
}

void sl_buf_reset(struct sl_buf *b)
{
    b->len = 0;
    b->err = 0;
}

int sl_buf_error(const struct sl_buf *b)
{
    return b->err;
}

int sl_buf_reserve(struct sl_buf *b, size_t extra)
{
    if (b->err)
        return b->err;
    if (extra > SL_BUF_MAX - b->len)
        return b->err = SL_ETOOBIG;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    uint8_t *d = sl_realloc(b->data, cap);
    if (!d)
        return b->err = -ENOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

void sl_buf_truncate(struct sl_buf *b, size_t len)
{
    if (len < b->len)
        b->len = len;
}

struct sl_bytes sl_buf_view(const struct sl_buf *b, size_t off, size_t len)
{
    if (off > b->len || len > b->len - off)
        return SL_BYTES_NULL;
    /* A buffer never written has no storage; its empty view is still non-null (not a Kafka
     * null), and no arithmetic is done on a null pointer. */
    return (struct sl_bytes){b->data ? b->data + off : (const uint8_t *)"", len};
}

int sl_buf_append(struct sl_buf *b, const void *p, size_t n)
{
    if (sl_buf_reserve(b, n))
        return b->err;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int sl_buf_append_str(struct sl_buf *b, const char *s)
{
    return sl_buf_append(b, s, strlen(s));
}

int sl_buf_printf(struct sl_buf *b, const char *fmt, ...)
{
    if (b->err)
        return b->err;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return b->err = SL_EPARSE;
    if (sl_buf_reserve(b, (size_t)n + 1))
        return b->err;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int sl_buf_put_i8(struct sl_buf *b, int8_t v)
{
    uint8_t x = (uint8_t)v;
    return sl_buf_append(b, &x, 1);
}

int sl_buf_put_i16(struct sl_buf *b, int16_t v)
{
    uint8_t x[2];
    sl_put_be16(x, (uint16_t)v);
    return sl_buf_append(b, x, sizeof(x));
}

int sl_buf_put_i32(struct sl_buf *b, int32_t v)
{
    return sl_buf_put_u32(b, (uint32_t)v);
}

int sl_buf_put_u32(struct sl_buf *b, uint32_t v)
{
    uint8_t x[4];
    sl_put_be32(x, v);
    return sl_buf_append(b, x, sizeof(x));
}

int sl_buf_put_i64(struct sl_buf *b, int64_t v)
{
    uint8_t x[8];
    sl_put_be64(x, (uint64_t)v);
    return sl_buf_append(b, x, sizeof(x));
}

static int put_uvarint64(struct sl_buf *b, uint64_t v)
{
    uint8_t x[10];
    size_t n = 0;
    while (v >= 0x80) {
        x[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    x[n++] = (uint8_t)v;
    return sl_buf_append(b, x, n);
}

int sl_buf_put_uvarint(struct sl_buf *b, uint32_t v)
{
    return put_uvarint64(b, v);
}

int sl_buf_put_varint(struct sl_buf *b, int32_t v)
{
    return put_uvarint64(b, ((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
}

int sl_buf_put_varlong(struct sl_buf *b, int64_t v)
{
    return put_uvarint64(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

int sl_buf_put_string(struct sl_buf *b, struct sl_bytes s)
{
    if (!s.p)
        return sl_buf_put_i16(b, -1);
    if (s.len > INT16_MAX)
        return b->err ? b->err : (b->err = SL_ETOOBIG);
    sl_buf_put_i16(b, (int16_t)s.len);
    return sl_buf_append(b, s.p, s.len);
}

int sl_buf_put_bytes(struct sl_buf *b, struct sl_bytes s)
{
    if (!s.p)
        return sl_buf_put_i32(b, -1);
    if (s.len > INT32_MAX)
        return b->err ? b->err : (b->err = SL_ETOOBIG);
    sl_buf_put_i32(b, (int32_t)s.len);
    return sl_buf_append(b, s.p, s.len);
}

int sl_buf_put_varbytes(struct sl_buf *b, struct sl_bytes s)
{
    if (!s.p)
        return sl_buf_put_varint(b, -1);
    if (s.len > INT32_MAX)
        return b->err ? b->err : (b->err = SL_ETOOBIG);
    sl_buf_put_varint(b, (int32_t)s.len);
    return sl_buf_append(b, s.p, s.len);
}

size_t sl_buf_hole(struct sl_buf *b, size_t n)
{
    size_t off = b->len;
    if (sl_buf_reserve(b, n))
        return off;
    if (n)
        memset(b->data + off, 0, n);
    b->len += n;
    return off;
}

static uint8_t *patch_at(struct sl_buf *b, size_t off, size_t n)
{
    if (b->err || off > b->len || n > b->len - off)
        return NULL;
    return b->data + off;
}

void sl_buf_patch_i16(struct sl_buf *b, size_t off, int16_t v)
{
    uint8_t *p = patch_at(b, off, 2);
    if (p)
        sl_put_be16(p, (uint16_t)v);
}

void sl_buf_patch_i32(struct sl_buf *b, size_t off, int32_t v)
{
    sl_buf_patch_u32(b, off, (uint32_t)v);
}

void sl_buf_patch_u32(struct sl_buf *b, size_t off, uint32_t v)
{
    uint8_t *p = patch_at(b, off, 4);
    if (p)
        sl_put_be32(p, v);
}

void sl_buf_patch_i64(struct sl_buf *b, size_t off, int64_t v)
{
    uint8_t *p = patch_at(b, off, 8);
    if (p)
        sl_put_be64(p, (uint64_t)v);
}
