/* gzip compress and bounded decompress over zlib, with zlib's memory drawn from sl_malloc. */
#define ZLIB_CONST
#include "common/gzip.h"

#include "common/base.h"
#include "common/mem.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <zlib.h>

/* windowBits for deflateInit2/inflateInit2: 32 KiB window, plus 16 for a gzip (not zlib)
 * wrapper. Inflate accepts gzip only: Kafka's codec 1 is gzip, and a zlib stream there is
 * as wrong as any other garbage. */
#define GZIP_WINDOW_BITS (15 + 16)

/* Smallest output growth step while inflating, so small outputs do not realloc byte by byte. */
#define GZIP_MIN_STEP ((size_t)16384)

static voidpf gzip_zalloc(voidpf opaque, uInt items, uInt size)
{
    /* Zeroed: deflate may read parts of its window it has not written yet (harmless to the
     * output, but noisy under memory checkers). */
    return sl_calloc(items, size);
}

static void gzip_zfree(voidpf opaque, voidpf p)
{
    sl_free(p);
}

static void gzip_stream_init(z_stream *zs)
{
    memset(zs, 0, sizeof(*zs));
    zs->zalloc = gzip_zalloc;
    zs->zfree = gzip_zfree;
    zs->opaque = Z_NULL;
}

/* Hands zlib the next slice of input (avail_in is 32 bits, inputs may be larger). */
static void gzip_feed(z_stream *zs, size_t *in_left)
{
    if (zs->avail_in == 0 && *in_left) {
        size_t chunk = SL_MIN(*in_left, (size_t)UINT_MAX);
        zs->avail_in = (uInt)chunk;
        *in_left -= chunk;
    }
}

int sl_gzip_compress(struct sl_buf *out, const void *p, size_t n, int level)
{
    if (level < -1 || level > 9)
        return -EINVAL;
    if (out->err)
        return out->err;
    size_t start = out->len;
    z_stream zs;
    gzip_stream_init(&zs);
    int zrc = deflateInit2(&zs, level, Z_DEFLATED, GZIP_WINDOW_BITS, 8, Z_DEFAULT_STRATEGY);
    if (zrc != Z_OK)
        return zrc == Z_MEM_ERROR ? -ENOMEM : -EINVAL;

    int rc = 0;
    /* deflateBound is exact enough that the loop below normally runs once. */
    rc = sl_buf_reserve(out, deflateBound(&zs, (uLong)n));
    if (rc)
        goto done;
    zs.next_in = p;
    size_t in_left = n;
    for (;;) {
        gzip_feed(&zs, &in_left);
        if (out->cap == out->len) {
            rc = sl_buf_reserve(out, SL_MAX(out->len - start, GZIP_MIN_STEP));
            if (rc)
                goto done;
        }
        size_t room = SL_MIN(out->cap - out->len, (size_t)UINT_MAX);
        zs.next_out = out->data + out->len;
        zs.avail_out = (uInt)room;
        zrc = deflate(&zs, in_left ? Z_NO_FLUSH : Z_FINISH);
        out->len += room - zs.avail_out;
        if (zrc == Z_STREAM_END)
            break;
        if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
            rc = -EINVAL;
            goto done;
        }
    }
done:
    deflateEnd(&zs);
    if (rc)
        sl_buf_truncate(out, start);
    return rc;
}

int sl_gzip_decompress(struct sl_buf *out, const void *p, size_t n, size_t max_out,
                       struct sl_err *err)
{
    if (out->err)
        return sl_err_set(err, out->err, "gzip: output buffer: %s", sl_strerror(out->err));
    if (n == 0)
        return sl_err_set(err, SL_ECORRUPT, "gzip: empty input, no member");
    size_t start = out->len;
    const uint8_t *in = p;
    z_stream zs;
    gzip_stream_init(&zs);
    int zrc = inflateInit2(&zs, GZIP_WINDOW_BITS);
    if (zrc != Z_OK)
        return sl_err_set(err, zrc == Z_MEM_ERROR ? -ENOMEM : -EINVAL, "gzip: inflateInit: %s",
                          zrc == Z_MEM_ERROR ? "out of memory" : "zlib refused to start");

    int rc = 0;
    size_t total = 0; /* bytes appended so far, over all members */
    unsigned members = 1;
    zs.next_in = in;
    size_t in_left = n;
    for (;;) {
        gzip_feed(&zs, &in_left);
        /* One byte over the limit is enough to know the output does not fit. */
        size_t allow = max_out - total < SIZE_MAX ? max_out - total + 1 : SIZE_MAX;
        if (out->cap == out->len) {
            rc = sl_buf_reserve(out, SL_MIN(SL_MAX(total, GZIP_MIN_STEP), allow));
            if (rc) {
                sl_err_set(err, rc, "gzip: output buffer: %s", sl_strerror(rc));
                goto done;
            }
        }
        size_t room = SL_MIN(SL_MIN(out->cap - out->len, allow), (size_t)UINT_MAX);
        zs.next_out = out->data + out->len;
        zs.avail_out = (uInt)room;
        zrc = inflate(&zs, Z_NO_FLUSH);
        size_t made = room - zs.avail_out;
        out->len += made;
        total += made;
        size_t at = (size_t)(zs.next_in - in);
        if (total > max_out) {
            rc = sl_err_set(err, SL_ETOOBIG,
                            "gzip: decompressed size over the limit of %zu bytes (input offset "
                            "%zu of %zu)",
                            max_out, at, n);
            goto done;
        }
        if (zrc == Z_STREAM_END) {
            if (zs.avail_in == 0 && in_left == 0)
                break;
            /* Another member follows (RFC 1952 2.2); anything else there fails its header. */
            zrc = inflateReset(&zs);
            if (zrc != Z_OK) {
                rc = sl_err_set(err, -EINVAL, "gzip: member %u: inflateReset failed", members + 1);
                goto done;
            }
            members++;
            continue;
        }
        if (zrc == Z_MEM_ERROR) {
            rc = -ENOMEM;
            goto done;
        }
        if (zrc == Z_DATA_ERROR || zrc == Z_NEED_DICT || zrc == Z_STREAM_ERROR) {
            rc = sl_err_set(err, SL_ECORRUPT, "gzip: member %u: %s at input offset %zu of %zu",
                            members, zs.msg ? zs.msg : "bad data", at, n);
            goto done;
        }
        /* Z_OK or Z_BUF_ERROR: it stopped for want of output room or of input. Room left over
         * with all input consumed means the stream ended early. */
        if (zs.avail_out > 0 && zs.avail_in == 0 && in_left == 0) {
            rc = sl_err_set(err, SL_ECORRUPT,
                            "gzip: member %u: truncated stream, input ended at offset %zu", members,
                            n);
            goto done;
        }
    }
done:
    inflateEnd(&zs);
    if (rc)
        sl_buf_truncate(out, start);
    return rc;
}
