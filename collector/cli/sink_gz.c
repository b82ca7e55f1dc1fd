/* One gzip member from a buffer (see sink_gz.h for why two libraries). */
#include "collector/cli/sink_gz.h"

#include "common/base.h"
#include "common/buf.h"
#include "common/mem.h"

#include <errno.h>
#include <isa-l/igzip_lib.h>
#include <libdeflate.h>

struct sink_gz {
    struct libdeflate_compressor *ld; /* owned: levels above 1 */
    uint8_t *level_buf;               /* owned: igzip's hash tables (level 1) */
    struct sl_buf out;                /* owned: the last member, in its storage (len unused) */
};

int sink_gz_new(int level, struct sink_gz **out, struct sl_err *err)
{
    if (level < SINK_GZ_LEVEL_MIN || level > SINK_GZ_LEVEL_MAX)
        return sl_err_set(err, -EINVAL, "gzip level %d is not between %d and %d", level,
                          SINK_GZ_LEVEL_MIN, SINK_GZ_LEVEL_MAX);
    struct sink_gz *g = sl_calloc(1, sizeof(*g));
    if (!g)
        return sl_err_set(err, -ENOMEM, "out of memory");
    sl_buf_init(&g->out);
    if (level == 1)
        g->level_buf = sl_malloc(ISAL_DEF_LVL1_DEFAULT);
    else
        g->ld = libdeflate_alloc_compressor(level);
    if (!g->level_buf && !g->ld) {
        sink_gz_free(g);
        return sl_err_set(err, -ENOMEM, "out of memory (gzip level %d)", level);
    }
    *out = g;
    return 0;
}

void sink_gz_free(struct sink_gz *g)
{
    if (!g)
        return;
    if (g->ld)
        libdeflate_free_compressor(g->ld);
    sl_free(g->level_buf);
    sl_buf_fini(&g->out);
    sl_free(g);
}

/* Room for a member of `cap` bytes in g->out; -ENOMEM when there is none (buf's sticky error
 * is cleared by the next member's sl_buf_reset). */
static int reserve(struct sink_gz *g, size_t cap)
{
    return sl_buf_reserve(&g->out, cap) == 0 ? 0 : -ENOMEM;
}

/* igzip has no bound function: start with room for text that compresses at all, and give it
 * more whenever it fills the buffer (it resumes where it stopped). */
static int64_t igzip_member(struct sink_gz *g, const uint8_t *in, size_t n)
{
    if (n > UINT32_MAX)
        return -EFBIG; /* chunks are 256 KiB and a record; fetches are at most 256 MiB */
    if (reserve(g, n / 2 + 4096) != 0)
        return -ENOMEM;
    struct isal_zstream s;
    isal_deflate_init(&s);
    s.gzip_flag = IGZIP_GZIP;
    s.level = 1;
    s.level_buf = g->level_buf;
    s.level_buf_size = ISAL_DEF_LVL1_DEFAULT;
    s.end_of_stream = 1;
    s.flush = NO_FLUSH;
    s.next_in = (uint8_t *)(uintptr_t)in; /* igzip only reads it; its field is not const */
    s.avail_in = (uint32_t)n;
    size_t done = 0;
    for (;;) {
        s.next_out = g->out.data + done;
        s.avail_out = (uint32_t)SL_MIN(g->out.cap - done, (size_t)UINT32_MAX);
        if (isal_deflate(&s) != COMP_OK)
            return -EINVAL; /* only for a bad stream setup, which the above is not */
        done = (size_t)(s.next_out - g->out.data);
        if (s.internal_state.state == ZSTATE_END)
            return (int64_t)done;
        if (reserve(g, g->out.cap * 2) != 0)
            return -ENOMEM;
    }
}

int64_t sink_gz_member(struct sink_gz *g, const uint8_t *in, size_t n, const uint8_t **out)
{
    int64_t len;
    sl_buf_reset(&g->out);
    if (g->level_buf) {
        len = igzip_member(g, in, n);
    } else {
        if (reserve(g, libdeflate_gzip_compress_bound(g->ld, n)) != 0)
            return -ENOMEM;
        size_t l = libdeflate_gzip_compress(g->ld, in, n, g->out.data, g->out.cap);
        len = l ? (int64_t)l : -ENOBUFS; /* cannot happen with the bound's room */
    }
    if (len >= 0)
        *out = g->out.data;
    return len;
}
