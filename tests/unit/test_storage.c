/* Unit tests for the collector's storage: index math, append/read/roll, time lookups, refusals,
 * retention with an injected clock, durability callbacks and fsync failures, and recovery from
 * torn, flipped, zero-filled and garbage tails and from missing indexes. */
#include "common/kafka_err.h"
#include "collector/partition_log.h"
#include "collector/segment.h"
#include "collector/storage.h"
#include "common/base.h"
#include "common/batch.h"
#include "common/buf.h"
#include "common/crc32c.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static int64_t g_now = 1700000000000;
static struct coll_log_conf g_conf;
static char g_root[256];
static int g_dirs;

static int64_t fake_now(void *arg)
{
    return g_now;
}

static const struct coll_log_conf *fake_conf(void *arg, const char *topic)
{
    return &g_conf;
}

struct fx {
    char dir[512];
    struct ev_loop *loop;
    struct coll_storage *st;
    struct coll_plog *pl;
};

static void fx_open(struct fx *f)
{
    struct coll_storage_opts o = {.data_dir = f->dir, .loop = f->loop, .now_ms = fake_now,
                                  .topic_conf = fake_conf};
    struct sl_err err = {{0}};
    int rc = coll_storage_open(&o, &f->st, &err);
    if (rc)
        fail_msg("open: %s", err.msg);
    f->pl = coll_storage_get(f->st, "t", 0);
}

static void fx_close(struct fx *f)
{
    coll_storage_close(f->st);
    f->st = NULL;
    f->pl = NULL;
}

/* Simulates a crash for the next open: no marker. */
static void fx_unclean(struct fx *f)
{
    char p[PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/" COLL_CLEAN_SHUTDOWN_FILE, f->dir);
    assert_int_equal(unlink(p), 0);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "%s/d%d", g_root, g_dirs++);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    g_conf = COLL_LOG_CONF_DEFAULT;
    g_conf.segment_bytes = 4096;
    g_conf.index_interval = 256;
    g_conf.max_batch_bytes = 4096;
    g_conf.fsync = COLL_FSYNC_NEVER;
    g_now = 1700000000000;
    fx_open(f);
    struct sl_err err;
    assert_int_equal(coll_storage_create(f->st, "t", 0, NULL, &f->pl, &err), 0);
    *state = f;
    return 0;
}

/* The sync hook of the durability tests (see blocking_sync). */
static atomic_int g_sync_calls, g_block_from, g_blocked_now;
static atomic_bool g_blocked;

static int teardown(void **state)
{
    struct fx *f = *state;
    atomic_store(&g_blocked, false); /* a failed test must not leave the flusher stuck */
    if (f->st)
        fx_close(f);
    ev_loop_destroy(f->loop);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void seg_path(struct fx *f, int64_t base, const char *ext, char *out, size_t n)
{
    char d[PATH_MAX];
    snprintf(d, sizeof(d), "%s/t-0", f->dir);
    assert_int_equal(coll_segment_path(out, n, d, base, ext), 0);
}

/* A batch of nrec records, timestamps ts0, ts0+1, ..., values of vlen bytes. */
static void make_batch(struct sl_buf *out, int nrec, int64_t ts0, size_t vlen, bool gzip)
{
    struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
    if (gzip)
        o.codec = SL_BATCH_CODEC_GZIP;
    struct sl_batch_builder b;
    assert_int_equal(sl_batch_builder_init(&b, &o), 0);
    uint8_t v[4096];
    for (size_t i = 0; i < sizeof(v); i++)
        v[i] = (uint8_t)(i * 7 + (size_t)ts0);
    for (int i = 0; i < nrec; i++)
        assert_int_equal(sl_batch_builder_add(&b, ts0 + i, SL_BYTES_NULL,
                                              (struct sl_bytes){v, vlen}, NULL, 0), 0);
    sl_buf_reset(out);
    assert_int_equal(sl_batch_builder_finish(&b, out), 0);
    sl_batch_builder_fini(&b);
}

static int64_t append(struct coll_plog *pl, int nrec, int64_t ts0, size_t vlen)
{
    struct sl_buf b;
    sl_buf_init(&b);
    make_batch(&b, nrec, ts0, vlen, false);
    struct coll_append_res res;
    struct sl_err err = {{0}};
    int rc = coll_plog_append(pl, b.data, b.len, NULL, NULL, &res, &err);
    if (rc)
        fail_msg("append: %s", err.msg);
    assert_int_equal(res.kafka_err, 0);
    assert_int_equal(res.last_offset - res.base_offset, nrec - 1);
    sl_buf_fini(&b);
    return res.base_offset;
}

/* Reads every offset of the log and checks the region: it starts with the batch holding the
 * offset, holds whole valid batches with contiguous offsets, and respects max_bytes. */
static void verify_reads(struct coll_plog *pl, size_t max_bytes)
{
    for (int64_t o = pl->log_start; o < pl->next_offset; o++) {
        struct coll_region r;
        struct sl_err err = {{0}};
        int rc = coll_plog_read(pl, o, max_bytes, &r, &err);
        if (rc)
            fail_msg("read %" PRId64 ": %s", o, err.msg);
        assert_true(r.len > 0);
        uint8_t *p = malloc(r.len);
        assert_int_equal(pread(r.fd, p, r.len, (off_t)r.pos), (ssize_t)r.len);
        size_t at = 0;
        int64_t expect = -1;
        int n = 0;
        while (at < r.len) {
            struct sl_batch_header h;
            rc = sl_batch_parse_header(&h, p + at, r.len - at, SL_BATCH_STRICT, &err);
            if (rc)
                fail_msg("offset %" PRId64 ": batch at %zu of region: %s", o, at, err.msg);
            if (n == 0) {
                assert_true(h.base_offset <= o && o <= sl_batch_last_offset(&h));
                assert_int_equal(h.base_offset, r.first_offset);
            } else {
                assert_int_equal(h.base_offset, expect);
            }
            expect = sl_batch_last_offset(&h) + 1;
            at += h.size;
            n++;
        }
        assert_int_equal(at, r.len);
        assert_int_equal(r.end_offset, expect); /* what records-out counts */
        assert_true(n == 1 || r.len <= max_bytes);
        free(p);
        coll_region_release(&r);
    }
    struct coll_region r;
    assert_int_equal(coll_plog_read(pl, pl->next_offset, 1000, &r, NULL), 0);
    assert_int_equal(r.len, 0);
    assert_int_equal(r.end_offset - r.first_offset, 0);
    assert_int_equal(coll_plog_read(pl, pl->next_offset + 1, 1000, &r, NULL), -ERANGE);
    if (pl->log_start > 0)
        assert_int_equal(coll_plog_read(pl, pl->log_start - 1, 1000, &r, NULL), -ERANGE);
}

/* ---- Index math ------------------------------------------------------------------------------ */

static void test_index_math(void **state)
{
    struct fx *f = *state;
    struct coll_segment seg = {.base = 1000, .next_offset = 1100};
    /* No entries: always position 0 and the segment base. */
    assert_int_equal(coll_segment_index_lookup(&seg, 1000), 0);
    assert_int_equal(coll_segment_index_lookup(&seg, 5000), 0);
    assert_int_equal(coll_segment_tindex_lookup(&seg, 5), 1000);
    struct coll_idx_entry idx[] = {{10, 100}, {20, 200}, {30, 300}};
    struct coll_tidx_entry tidx[] = {{50, 10}, {60, 20}, {60, 25}, {70, 30}};
    seg.idx = idx;
    seg.idx_n = 3;
    seg.tidx = tidx;
    seg.tidx_n = 4;
    assert_int_equal(coll_segment_index_lookup(&seg, 999), 0);
    assert_int_equal(coll_segment_index_lookup(&seg, 1000), 0);
    assert_int_equal(coll_segment_index_lookup(&seg, 1009), 0);
    assert_int_equal(coll_segment_index_lookup(&seg, 1010), 100);
    assert_int_equal(coll_segment_index_lookup(&seg, 1019), 100);
    assert_int_equal(coll_segment_index_lookup(&seg, 1020), 200);
    assert_int_equal(coll_segment_index_lookup(&seg, 1029), 200);
    assert_int_equal(coll_segment_index_lookup(&seg, 1030), 300);
    assert_int_equal(coll_segment_index_lookup(&seg, INT64_MAX), 300);
    /* Time (Kafka's TimeIndex.lookup): the offset of the last entry with timestamp <= ts, the
     * base when every entry is newer. */
    assert_int_equal(coll_segment_tindex_lookup(&seg, INT64_MIN), 1000);
    assert_int_equal(coll_segment_tindex_lookup(&seg, 49), 1000);
    assert_int_equal(coll_segment_tindex_lookup(&seg, 50), 1010);
    assert_int_equal(coll_segment_tindex_lookup(&seg, 51), 1010);
    assert_int_equal(coll_segment_tindex_lookup(&seg, 59), 1010);
    assert_int_equal(coll_segment_tindex_lookup(&seg, 60), 1025);
    assert_int_equal(coll_segment_tindex_lookup(&seg, 61), 1025);
    assert_int_equal(coll_segment_tindex_lookup(&seg, 69), 1025);
    assert_int_equal(coll_segment_tindex_lookup(&seg, 70), 1030);
    assert_int_equal(coll_segment_tindex_lookup(&seg, INT64_MAX), 1030);
    seg.tidx_n = 1;
    assert_int_equal(coll_segment_tindex_lookup(&seg, 49), 1000);
    assert_int_equal(coll_segment_tindex_lookup(&seg, 50), 1010);
    (void)f;
}

/* Index entries land every index_interval bytes, never for position 0, and in the files. */
static void test_index_cadence(void **state)
{
    struct fx *f = *state;
    struct coll_plog *pl = f->pl;
    int64_t sizes[20];
    for (int i = 0; i < 20; i++) {
        append(pl, 1, g_now + i, 30);
        sizes[i] = (int64_t)pl->segs[0]->size;
    }
    struct coll_segment *seg = pl->segs[0];
    assert_int_equal(pl->nsegs, 1);
    int64_t bsize = sizes[0];
    for (int i = 1; i < 20; i++)
        assert_int_equal(sizes[i] - sizes[i - 1], bsize);
    /* Expected: an entry for the batch whose start is >= 256 bytes after the previous entry's. */
    size_t n = 0;
    uint64_t since = 0;
    for (int i = 0; i < 20; i++) {
        if (since >= 256) {
            assert_true(n < seg->idx_n);
            assert_int_equal(seg->idx[n].pos, (uint32_t)(i * bsize));
            assert_int_equal(seg->idx[n].rel, (uint32_t)i);
            n++;
            since = 0;
        }
        since += (uint64_t)bsize;
    }
    assert_int_equal(seg->idx_n, n);
    assert_int_equal(seg->tidx_n, n);
    fx_close(f);
    char p[PATH_MAX];
    seg_path(f, 0, ".index", p, sizeof(p));
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, (off_t)(n * 8));
    seg_path(f, 0, ".timeindex", p, sizeof(p));
    assert_int_equal(stat(p, &st), 0);
    /* The final time entry (segment closed) is only added when it carries a newer timestamp:
     * here the last batch's timestamp is newer than the last entry's. */
    assert_int_equal(st.st_size, (off_t)((n + 1) * 12));
    fx_open(f);
    verify_reads(f->pl, 1);
}

/* ---- Append, read, roll ---------------------------------------------------------------------- */

static void test_append_read_roll(void **state)
{
    struct fx *f = *state;
    struct coll_plog *pl = f->pl;
    int64_t next = 0;
    for (int i = 0; i < 120; i++) {
        int nrec = 1 + i % 5;
        int64_t base = append(pl, nrec, g_now + i * 10, (size_t)(10 + (i * 37) % 300));
        assert_int_equal(base, next);
        next += nrec;
    }
    assert_int_equal(pl->next_offset, next);
    assert_true(pl->nsegs > 3);
    for (size_t i = 0; i < pl->nsegs; i++) {
        assert_true(pl->segs[i]->size <= 4096);
        char p[PATH_MAX];
        seg_path(f, pl->segs[i]->base, ".log", p, sizeof(p));
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal((uint64_t)st.st_size, pl->segs[i]->size);
        if (i > 0)
            assert_int_equal(pl->segs[i]->base, pl->segs[i - 1]->next_offset);
    }
    static const size_t maxes[] = {0, 1, 100, 500, 1000, 5000};
    for (size_t m = 0; m < sizeof(maxes) / sizeof(maxes[0]); m++)
        verify_reads(pl, maxes[m]);
    /* Same after a clean reopen, from the index files. */
    fx_close(f);
    fx_open(f);
    assert_true(coll_storage_was_clean(f->st));
    assert_int_equal(f->pl->next_offset, next);
    verify_reads(f->pl, 700);
    /* And appends continue where they were. */
    assert_int_equal(append(f->pl, 2, g_now, 10), next);
}

/* max_bytes: exactly two batches gives two, one byte less gives one. */
static void test_read_extent_bounds(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 5; i++)
        append(f->pl, 1, g_now, 100);
    uint64_t bs = f->pl->segs[0]->size / 5;
    struct coll_region r;
    assert_int_equal(coll_plog_read(f->pl, 0, 2 * bs, &r, NULL), 0);
    assert_int_equal(r.len, 2 * bs);
    coll_region_release(&r);
    assert_int_equal(coll_plog_read(f->pl, 0, 2 * bs - 1, &r, NULL), 0);
    assert_int_equal(r.len, bs);
    coll_region_release(&r);
    assert_int_equal(coll_plog_read(f->pl, 1, 0, &r, NULL), 0);
    assert_int_equal(r.len, bs);
    assert_int_equal(r.pos, bs);
    coll_region_release(&r);
    assert_int_equal(coll_plog_read(f->pl, 0, SIZE_MAX, &r, NULL), 0);
    assert_int_equal(r.len, 5 * bs);
    coll_region_release(&r);
}

static void test_roll_by_age(void **state)
{
    struct fx *f = *state;
    g_conf.segment_age_ms = 1000;
    fx_close(f);
    fx_open(f);
    append(f->pl, 1, g_now, 10);
    g_now += 999;
    append(f->pl, 1, g_now, 10);
    assert_int_equal(f->pl->nsegs, 1);
    g_now += 1;
    append(f->pl, 1, g_now, 10);
    assert_int_equal(f->pl->nsegs, 2);
    assert_int_equal(f->pl->segs[1]->base, 2);
    /* An empty active segment never rolls, however old. */
    g_now += 100000;
    assert_int_equal(coll_plog_roll(f->pl, NULL), 0);
    assert_int_equal(f->pl->nsegs, 3);
    assert_int_equal(coll_plog_roll(f->pl, NULL), 0);
    assert_int_equal(f->pl->nsegs, 3);
    append(f->pl, 1, g_now, 10);
    assert_int_equal(f->pl->nsegs, 3);
    verify_reads(f->pl, 100);
}

/* ---- Refusals -------------------------------------------------------------------------------- */

static void expect_refused(struct coll_plog *pl, void *p, size_t n, int16_t kerr)
{
    uint64_t before = pl->segs[pl->nsegs - 1]->size;
    int64_t next = pl->next_offset;
    struct coll_append_res res;
    struct sl_err err = {{0}};
    assert_true(coll_plog_append(pl, p, n, NULL, NULL, &res, &err) < 0);
    assert_int_equal(res.kafka_err, kerr);
    assert_true(err.msg[0] != '\0');
    assert_int_equal(pl->segs[pl->nsegs - 1]->size, before);
    assert_int_equal(pl->next_offset, next);
}

static void test_refusals(void **state)
{
    struct fx *f = *state;
    struct coll_plog *pl = f->pl;
    append(pl, 3, g_now, 10);
    struct sl_buf b;
    sl_buf_init(&b);
    make_batch(&b, 3, g_now, 50, false);
    /* A flipped bit anywhere under the CRC. */
    for (size_t i = SL_BATCH_OFF_ATTRIBUTES; i < b.len; i += 7) {
        b.data[i] ^= 0x10;
        expect_refused(pl, b.data, b.len, KAFKA_E_CORRUPT_MESSAGE);
        b.data[i] ^= 0x10;
    }
    expect_refused(pl, b.data, b.len - 1, KAFKA_E_CORRUPT_MESSAGE);
    expect_refused(pl, b.data, 60, KAFKA_E_CORRUPT_MESSAGE);
    b.data[SL_BATCH_OFF_MAGIC] = 1;
    expect_refused(pl, b.data, b.len, KAFKA_E_INVALID_RECORD);
    b.data[SL_BATCH_OFF_MAGIC] = 2;
    /* Two batches in one append. */
    size_t one = b.len;
    make_batch(&b, 3, g_now, 50, false);
    struct sl_buf two;
    sl_buf_init(&two);
    sl_buf_append(&two, b.data, one);
    sl_buf_append(&two, b.data, one);
    expect_refused(pl, two.data, two.len, KAFKA_E_INVALID_RECORD);
    /* Size limit: at the limit accepted, one byte over refused. */
    g_conf.max_batch_bytes = (int64_t)one;
    fx_close(f);
    fx_open(f);
    pl = f->pl;
    struct coll_append_res res;
    assert_int_equal(coll_plog_append(pl, b.data, one, NULL, NULL, &res, NULL), 0);
    make_batch(&b, 3, g_now, 51, false);
    expect_refused(pl, b.data, b.len, KAFKA_E_MESSAGE_TOO_LARGE);
    /* lastOffsetDelta disagreeing with the record count is caught too (by the CRC here: the
     * field is covered by it, so a producer cannot get that past without a bad CRC). */
    make_batch(&b, 3, g_now, 10, false);
    b.data[SL_BATCH_OFF_LAST_OFFSET_DELTA + 3] = 5;
    expect_refused(pl, b.data, b.len, KAFKA_E_CORRUPT_MESSAGE);
    /* A gzip batch is stored as is: the bytes on disk are the producer's (but the offset). */
    make_batch(&b, 20, g_now, 100, true);
    uint8_t *copy = malloc(b.len);
    memcpy(copy, b.data, b.len);
    g_conf.max_batch_bytes = 4096;
    fx_close(f);
    fx_open(f);
    assert_int_equal(coll_plog_append(f->pl, b.data, b.len, NULL, NULL, &res, NULL), 0);
    struct coll_region r;
    assert_int_equal(coll_plog_read(f->pl, res.base_offset, 1 << 20, &r, NULL), 0);
    assert_int_equal(r.len, b.len);
    uint8_t *disk = malloc(r.len);
    assert_int_equal(pread(r.fd, disk, r.len, (off_t)r.pos), (ssize_t)r.len);
    assert_memory_equal(disk + 16, copy + 16, b.len - 16);
    assert_int_equal((int64_t)sl_be64(disk), res.base_offset);
    assert_int_equal(sl_be32(disk + 12), 0); /* our leader epoch */
    coll_region_release(&r);
    free(disk);
    free(copy);
    sl_buf_fini(&b);
    sl_buf_fini(&two);
}

/* ---- Time lookups ---------------------------------------------------------------------------- */

static void test_find_time(void **state)
{
    struct fx *f = *state;
    struct coll_plog *pl = f->pl;
    /* Batch i: 4 records with timestamps 1000 + 10 i + {0,1,2,3}. */
    for (int i = 0; i < 100; i++)
        append(pl, 4, 1000 + 10 * i, 40);
    assert_true(pl->nsegs > 2);
    for (int64_t ts = 990; ts < 2010; ts++) {
        int64_t want = -1;
        for (int i = 0; i < 100 && want < 0; i++)
            for (int k = 0; k < 4 && want < 0; k++)
                if (1000 + 10 * i + k >= ts)
                    want = 4 * i + k;
        int64_t got;
        assert_int_equal(coll_plog_find_time(pl, ts, &got, NULL), 0);
        if (got != want)
            fail_msg("ts %" PRId64 ": got %" PRId64 ", want %" PRId64, ts, got, want);
    }
    /* After a clean reopen (the time index from the files, the final entries included). */
    fx_close(f);
    fx_open(f);
    int64_t got;
    assert_int_equal(coll_plog_find_time(f->pl, 1503, &got, NULL), 0);
    assert_int_equal(got, 4 * 50 + 3);
    assert_int_equal(coll_plog_find_time(f->pl, 1994, &got, NULL), 0);
    assert_int_equal(got, -1);
    /* Out-of-order timestamps: a later batch with an older timestamp is still found. */
    append(f->pl, 1, 500, 10);
    assert_int_equal(coll_plog_find_time(f->pl, 400, &got, NULL), 0);
    assert_int_equal(got, 0);
}

/* ---- Retention ------------------------------------------------------------------------------- */

static void test_retention_time(void **state)
{
    struct fx *f = *state;
    g_conf.retention_ms = 10000;
    fx_close(f);
    fx_open(f);
    struct coll_plog *pl = f->pl;
    /* Records stamped 1000 ms apart; segments of ~4 KiB hold a handful of batches. */
    for (int i = 0; i < 60; i++)
        append(pl, 1, g_now - 60000 + i * 1000, 300);
    size_t nsegs = pl->nsegs;
    assert_true(nsegs > 4);
    /* Nothing is older than 60 s yet from the clock's point of view: move the clock. */
    int64_t newest0 = pl->segs[0]->max_ts;
    g_now = newest0 + 10000; /* exactly at the limit: kept */
    assert_int_equal(coll_plog_retain(pl, g_now, NULL), 0);
    g_now = newest0 + 10001;
    assert_int_equal(coll_plog_retain(pl, g_now, NULL), 1);
    assert_int_equal(pl->nsegs, nsegs - 1);
    assert_int_equal(pl->log_start, pl->segs[0]->base);
    char p[PATH_MAX];
    seg_path(f, 0, ".log", p, sizeof(p));
    assert_int_equal(access(p, F_OK), -1);
    int64_t start = pl->log_start;
    verify_reads(pl, 1000);
    /* A reader holding a region of a segment about to go keeps reading it. */
    struct coll_region r;
    assert_int_equal(coll_plog_read(pl, start, 1 << 20, &r, NULL), 0);
    /* Everything expired: the active segment is rolled and all data goes. */
    g_now += 1000000;
    int n = coll_plog_retain(pl, g_now, NULL);
    assert_int_equal(n, (int)nsegs - 1);
    assert_int_equal(pl->nsegs, 1);
    assert_int_equal(pl->log_start, pl->next_offset);
    uint8_t hdr[12];
    assert_int_equal(pread(r.fd, hdr, 12, (off_t)r.pos), 12);
    assert_int_equal((int64_t)sl_be64(hdr), start);
    coll_region_release(&r);
    /* The start offset survives an unclean restart, and only moves forward. */
    int64_t end = pl->next_offset;
    fx_close(f);
    fx_unclean(f);
    fx_open(f);
    assert_int_equal(f->pl->log_start, end);
    assert_int_equal(f->pl->next_offset, end);
    assert_int_equal(append(f->pl, 1, g_now, 10), end);
}

static void test_retention_size(void **state)
{
    struct fx *f = *state;
    g_conf.retention_bytes = 10000;
    g_conf.retention_ms = -1;
    fx_close(f);
    fx_open(f);
    struct coll_plog *pl = f->pl;
    for (int i = 0; i < 80; i++)
        append(pl, 1, 0, 300);
    uint64_t total = coll_plog_size(pl);
    assert_true(total > 20000);
    int n = coll_plog_retain(pl, g_now, NULL);
    assert_true(n > 0);
    uint64_t after = coll_plog_size(pl);
    /* Kafka's rule: at least retention_bytes stays, and dropping one more would go below. */
    assert_true(after >= 10000);
    assert_true(after - pl->segs[0]->size < 10000);
    assert_int_equal(coll_plog_retain(pl, g_now, NULL), 0);
    verify_reads(pl, 2000);
    /* Persisted start offset. */
    int64_t start = pl->log_start;
    assert_true(start > 0);
    fx_close(f);
    fx_open(f);
    assert_int_equal(f->pl->log_start, start);
}

/* ---- Durability ------------------------------------------------------------------------------ */

struct acks {
    int calls;
    int status[512];
    int order[512];
};

struct ack {
    struct acks *all;
    int idx;
};

static void on_ack(void *arg, int status)
{
    struct ack *k = arg;
    k->all->order[k->all->calls] = k->idx;
    k->all->status[k->all->calls] = status;
    k->all->calls++;
}

static void run_until(struct ev_loop *loop, struct acks *a, int n)
{
    for (int i = 0; i < 5000 && a->calls < n; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        usleep(1000);
    }
}

static void durable_policy(struct fx *f, enum coll_fsync_policy pol)
{
    g_conf.fsync = pol;
    g_conf.fsync_interval_ms = 20;
    fx_close(f);
    fx_open(f);
    struct sl_buf b;
    sl_buf_init(&b);
    struct acks a = {0};
    struct ack ks[40];
    for (int i = 0; i < 40; i++) {
        ks[i] = (struct ack){&a, i};
        make_batch(&b, 2, g_now, 100, false);
        struct coll_append_res res;
        /* Never from inside append. */
        int before = a.calls;
        assert_int_equal(coll_plog_append(f->pl, b.data, b.len, on_ack, &ks[i], &res, NULL), 0);
        assert_int_equal(a.calls, before);
        if (i % 10 == 9)
            ev_run(f->loop, EVRUN_NOWAIT);
    }
    run_until(f->loop, &a, 40);
    assert_int_equal(a.calls, 40);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(a.order[i], i);
        assert_int_equal(a.status[i], 0);
    }
    assert_int_equal(coll_plog_durable_offset(f->pl), f->pl->next_offset);
    sl_buf_fini(&b);
}

static void test_durable_always(void **state)
{
    durable_policy(*state, COLL_FSYNC_ALWAYS);
}

static void test_durable_interval(void **state)
{
    durable_policy(*state, COLL_FSYNC_INTERVAL);
}

static void test_durable_never(void **state)
{
    durable_policy(*state, COLL_FSYNC_NEVER);
}

static int failing_sync(int fd)
{
    errno = EIO;
    return -1;
}

static void test_fsync_failure(void **state)
{
    struct fx *f = *state;
    g_conf.fsync = COLL_FSYNC_ALWAYS;
    fx_close(f);
    fx_open(f);
    coll_flusher_set_sync_fn(coll_storage_flusher(f->st), failing_sync);
    struct sl_buf b;
    sl_buf_init(&b);
    make_batch(&b, 2, g_now, 100, false);
    struct acks a = {0};
    struct ack k0 = {&a, 0}, k1 = {&a, 1};
    struct coll_append_res res;
    assert_int_equal(coll_plog_append(f->pl, b.data, b.len, on_ack, &k0, &res, NULL), 0);
    assert_int_equal(coll_plog_append(f->pl, b.data, b.len, on_ack, &k1, &res, NULL), 0);
    run_until(f->loop, &a, 2);
    assert_int_equal(a.calls, 2);
    assert_int_equal(a.status[0], -EIO);
    assert_int_equal(a.status[1], -EIO);
    /* Never acknowledged afterwards: appends are refused. */
    struct sl_err err;
    assert_int_equal(coll_plog_append(f->pl, b.data, b.len, on_ack, &k0, &res, &err), -EIO);
    assert_int_equal(res.kafka_err, KAFKA_E_KAFKA_STORAGE_ERROR);
    for (int i = 0; i < 20; i++)
        ev_run(f->loop, EVRUN_NOWAIT);
    assert_int_equal(a.calls, 2);
    coll_flusher_set_sync_fn(coll_storage_flusher(f->st), NULL);
    /* Not clean: the next start recovers (and the data written is intact). */
    fx_close(f);
    fx_open(f);
    assert_false(coll_storage_was_clean(f->st));
    assert_int_equal(f->pl->next_offset, 4);
    verify_reads(f->pl, 100);
    sl_buf_fini(&b);
}

/* A write that fails (here: RLIMIT_FSIZE, as ENOSPC would) leaves nothing readable, and appends
 * resume once the limit is lifted. */
static void test_write_failure(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 3; i++)
        append(f->pl, 1, g_now, 100);
    uint64_t size = f->pl->segs[0]->size;
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = size + 50; /* the next batch gets torn at 50 bytes */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    struct sl_buf b;
    sl_buf_init(&b);
    make_batch(&b, 1, g_now, 100, false);
    struct coll_append_res res;
    struct sl_err err;
    int rc = coll_plog_append(f->pl, b.data, b.len, NULL, NULL, &res, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    assert_int_equal(rc, -EFBIG);
    assert_int_equal(res.kafka_err, KAFKA_E_KAFKA_STORAGE_ERROR);
    assert_int_equal(f->pl->next_offset, 3);
    char p[PATH_MAX];
    seg_path(f, 0, ".log", p, sizeof(p));
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal((uint64_t)st.st_size, size);
    verify_reads(f->pl, 10000);
    make_batch(&b, 1, g_now, 100, false);
    assert_int_equal(coll_plog_append(f->pl, b.data, b.len, NULL, NULL, &res, NULL), 0);
    assert_int_equal(res.base_offset, 3);
    verify_reads(f->pl, 10000);
    sl_buf_fini(&b);
}

/* ---- Recovery -------------------------------------------------------------------------------- */

static uint8_t *read_all(const char *p, size_t *n)
{
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    fstat(fd, &st);
    *n = (size_t)st.st_size;
    uint8_t *b = malloc(*n + 1);
    assert_int_equal(read(fd, b, *n), (ssize_t)*n);
    close(fd);
    return b;
}

static void write_all(const char *p, const uint8_t *b, size_t n)
{
    int fd = open(p, O_WRONLY | O_TRUNC | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, n), (ssize_t)n);
    close(fd);
}

/* Truncating the last batch at every byte: recovery keeps exactly the batches before it. */
static void test_recover_torn_tail(void **state)
{
    struct fx *f = *state;
    g_conf.segment_bytes = 1 << 20;
    fx_close(f);
    fx_open(f);
    for (int i = 0; i < 9; i++)
        append(f->pl, 2, g_now, 20);
    uint64_t good = f->pl->segs[0]->size;
    append(f->pl, 3, g_now, 40);
    fx_close(f);
    char p[PATH_MAX];
    seg_path(f, 0, ".log", p, sizeof(p));
    size_t n;
    uint8_t *orig = read_all(p, &n);
    for (size_t cut = good; cut < n; cut++) {
        write_all(p, orig, cut);
        fx_unclean(f);
        fx_open(f);
        assert_false(coll_storage_was_clean(f->st));
        assert_int_equal(f->pl->next_offset, 18);
        assert_int_equal(f->pl->segs[0]->size, good);
        assert_int_equal(f->pl->cut_bytes, cut - good);
        verify_reads(f->pl, 100);
        fx_close(f);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal((uint64_t)st.st_size, good);
    }
    /* The whole file: nothing cut. */
    write_all(p, orig, n);
    fx_unclean(f);
    fx_open(f);
    assert_int_equal(f->pl->next_offset, 21);
    assert_int_equal(f->pl->cut_bytes, 0);
    verify_reads(f->pl, 100);
    free(orig);
}

/* Zeros (a preallocated tail) and garbage after the last batch are cut. */
static void test_recover_zero_and_garbage_tail(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 5; i++)
        append(f->pl, 1, g_now, 20);
    uint64_t good = f->pl->segs[0]->size;
    fx_close(f);
    char p[PATH_MAX];
    seg_path(f, 0, ".log", p, sizeof(p));
    for (int kind = 0; kind < 2; kind++) {
        size_t n;
        uint8_t *orig = read_all(p, &n);
        assert_int_equal(n, good);
        uint8_t *b = malloc(n + 8192);
        memcpy(b, orig, n);
        for (size_t i = 0; i < 8192; i++)
            b[n + i] = kind == 0 ? 0 : (uint8_t)(i * 131 + 7);
        write_all(p, b, n + 8192);
        fx_unclean(f);
        fx_open(f);
        assert_int_equal(f->pl->next_offset, 5);
        assert_int_equal(f->pl->cut_bytes, 8192);
        verify_reads(f->pl, 100);
        /* Appends go right after the last good batch. */
        assert_int_equal(append(f->pl, 1, g_now, 20), 5);
        fx_close(f);
        /* Undo the extra batch for the next round. */
        write_all(p, orig, n);
        char ip[PATH_MAX];
        seg_path(f, 0, ".index", ip, sizeof(ip));
        unlink(ip);
        free(b);
        free(orig);
    }
}

/* A flipped bit in a middle batch: the log is cut there, later segments go too. */
static void test_recover_flipped_bit(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 60; i++)
        append(f->pl, 1, g_now, 200);
    assert_true(f->pl->nsegs >= 3);
    int64_t base1 = f->pl->segs[1]->base;
    int64_t base2 = f->pl->segs[2]->base;
    fx_close(f);
    /* Forget the recovery point, so the whole log is checked. */
    char rp[PATH_MAX + 32];
    snprintf(rp, sizeof(rp), "%s/t-0/" COLL_FILE_RECOVERY_POINT, f->dir);
    assert_int_equal(unlink(rp), 0);
    char p[PATH_MAX];
    seg_path(f, base1, ".log", p, sizeof(p));
    size_t n;
    uint8_t *b = read_all(p, &n);
    /* The third batch of segment 1: flip a bit in its value. */
    struct sl_batch_header h;
    assert_int_equal(sl_batch_parse_header(&h, b, n, 0, NULL), 0);
    size_t at = h.size;
    assert_int_equal(sl_batch_parse_header(&h, b + at, n - at, 0, NULL), 0);
    at += h.size;
    b[at + h.size - 20] ^= 0x04;
    write_all(p, b, n);
    fx_unclean(f);
    fx_open(f);
    assert_int_equal(f->pl->nsegs, 2);
    assert_int_equal(f->pl->next_offset, base1 + 2);
    assert_int_equal(f->pl->segs[1]->size, at);
    verify_reads(f->pl, 3000);
    seg_path(f, base2, ".log", p, sizeof(p));
    assert_int_equal(access(p, F_OK), -1);
    free(b);
}

/* Without the recovery point file being lost, only the segments after it are scanned: a bit
 * flipped in an old segment's data is not looked at on an unclean start, but a damaged index
 * of it is still rebuilt. */
static void test_recover_missing_index(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 60; i++)
        append(f->pl, 1, g_now, 200);
    size_t nsegs = f->pl->nsegs;
    int64_t next = f->pl->next_offset;
    int64_t base1 = f->pl->segs[1]->base;
    fx_close(f);
    char p[PATH_MAX];
    seg_path(f, base1, ".index", p, sizeof(p));
    assert_int_equal(unlink(p), 0);
    char tp[PATH_MAX];
    seg_path(f, 0, ".timeindex", tp, sizeof(tp));
    assert_int_equal(truncate(tp, 5), 0);
    /* Leftovers that must disappear. */
    char junk[PATH_MAX + 32];
    snprintf(junk, sizeof(junk), "%s/t-0/log-start-offset.tmp", f->dir);
    write_all(junk, (const uint8_t *)"12", 2);
    char orphan[PATH_MAX];
    seg_path(f, 99999, ".index", orphan, sizeof(orphan));
    write_all(orphan, (const uint8_t *)"12345678", 8);
    fx_open(f);
    assert_true(coll_storage_was_clean(f->st));
    assert_int_equal(f->pl->nsegs, nsegs);
    assert_int_equal(f->pl->next_offset, next);
    verify_reads(f->pl, 1000);
    int64_t got;
    assert_int_equal(coll_plog_find_time(f->pl, g_now, &got, NULL), 0);
    assert_int_equal(got, 0);
    assert_int_equal(access(junk, F_OK), -1);
    assert_int_equal(access(orphan, F_OK), -1);
    fx_close(f);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_true(st.st_size > 0 && st.st_size % 8 == 0);
}

/* A partition that cannot be opened stays offline; the others are served. */
static void test_damaged_partition_isolated(void **state)
{
    struct fx *f = *state;
    struct sl_err err;
    assert_int_equal(coll_storage_create(f->st, "u", 3, NULL, NULL, &err), 0);
    append(f->pl, 1, g_now, 10);
    fx_close(f);
    /* A directory where a .log should be: open() fails. */
    char p[PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/u-3/00000000000000000000.log", f->dir);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(mkdir(p, 0755), 0);
    fx_open(f);
    assert_non_null(f->pl);
    assert_null(coll_storage_get(f->st, "u", 3));
    assert_true(coll_storage_offline(f->st, "u", 3));
    assert_int_equal(append(f->pl, 1, g_now, 10), 1);
    assert_false(coll_storage_offline(f->st, "t", 0));
}

static void test_create_delete(void **state)
{
    struct fx *f = *state;
    struct sl_err err;
    assert_int_equal(coll_storage_create(f->st, "../x", 0, NULL, NULL, &err), -EINVAL);
    assert_int_equal(coll_storage_create(f->st, "..", 0, NULL, NULL, &err), -EINVAL);
    assert_int_equal(coll_storage_create(f->st, "t", 0, NULL, NULL, &err), -EEXIST);
    assert_int_equal(coll_storage_create(f->st, "t", -1, NULL, NULL, &err), -EINVAL);
    struct coll_log_conf bad = g_conf;
    bad.index_interval = 0;
    assert_int_equal(coll_storage_create(f->st, "v", 0, &bad, NULL, &err), SL_ECONFIG);
    struct coll_plog *pl;
    assert_int_equal(coll_storage_create(f->st, "a.b-c", 7, NULL, &pl, &err), 0);
    append(pl, 1, g_now, 10);
    assert_int_equal(coll_storage_delete(f->st, "a.b-c", 7, &err), 0);
    assert_null(coll_storage_get(f->st, "a.b-c", 7));
    char p[PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/a.b-c-7", f->dir);
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(coll_storage_delete(f->st, "a.b-c", 7, &err), -ENOENT);
    /* Reopen: the topic with a dash in its name is parsed back. */
    assert_int_equal(coll_storage_create(f->st, "a.b-c", 8, NULL, &pl, &err), 0);
    fx_close(f);
    fx_open(f);
    assert_non_null(coll_storage_get(f->st, "a.b-c", 8));
}

static void test_conf_check(void **state)
{
    struct coll_log_conf c = COLL_LOG_CONF_DEFAULT;
    assert_int_equal(coll_log_conf_check(&c, NULL), 0);
    c.segment_bytes = 1023;
    assert_int_equal(coll_log_conf_check(&c, NULL), SL_ECONFIG);
    c.segment_bytes = INT32_MAX;
    assert_int_equal(coll_log_conf_check(&c, NULL), 0);
    c.segment_bytes = (int64_t)INT32_MAX + 1;
    assert_int_equal(coll_log_conf_check(&c, NULL), SL_ECONFIG);
    c = COLL_LOG_CONF_DEFAULT;
    c.max_batch_bytes = c.segment_bytes + 1;
    assert_int_equal(coll_log_conf_check(&c, NULL), SL_ECONFIG);
    c = COLL_LOG_CONF_DEFAULT;
    c.retention_ms = 0;
    assert_int_equal(coll_log_conf_check(&c, NULL), SL_ECONFIG);
    c.retention_ms = -1;
    assert_int_equal(coll_log_conf_check(&c, NULL), 0);
    c.fsync = (enum coll_fsync_policy)7;
    assert_int_equal(coll_log_conf_check(&c, NULL), SL_ECONFIG);
    (void)state;
}

/* ---- Findings of the review: durability ordering, detach, limits, index failures ------------- */

/* A sync hook that counts calls and, from call number g_block_from on, waits while g_blocked. */

static int blocking_sync(int fd)
{
    int n = atomic_fetch_add(&g_sync_calls, 1) + 1;
    int from = atomic_load(&g_block_from);
    if (from > 0 && n >= from) {
        atomic_fetch_add(&g_blocked_now, 1);
        while (atomic_load(&g_blocked))
            usleep(500);
        atomic_fetch_sub(&g_blocked_now, 1);
    }
    return fdatasync(fd);
}

static void hook_arm(struct fx *f, int block_from)
{
    atomic_store(&g_sync_calls, 0);
    atomic_store(&g_block_from, block_from);
    atomic_store(&g_blocked, block_from > 0);
    atomic_store(&g_blocked_now, 0);
    coll_flusher_set_sync_fn(coll_storage_flusher(f->st), blocking_sync);
}

/* Runs the loop until the flusher thread sits in the hook. */
static void wait_blocked(struct fx *f)
{
    for (int i = 0; i < 5000 && atomic_load(&g_blocked_now) == 0; i++) {
        ev_run(f->loop, EVRUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(atomic_load(&g_blocked_now), 1);
}

/* Runs the loop for ~ms and checks that no acknowledgement arrived. */
static void expect_no_acks(struct fx *f, struct acks *a, int ms)
{
    for (int i = 0; i < ms; i++) {
        ev_run(f->loop, EVRUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(a->calls, 0);
}

static void reopen_with(struct fx *f, enum coll_fsync_policy pol, int64_t seg_bytes)
{
    g_conf.fsync = pol;
    g_conf.segment_bytes = seg_bytes;
    g_conf.max_batch_bytes = SL_MIN(seg_bytes, (int64_t)4096);
    fx_close(f);
    fx_open(f);
}

/* fsync: always acknowledges only after an fdatasync, and one fdatasync covers every append
 * that arrived while the previous one ran (group commit). */
static void test_ack_waits_for_sync(void **state)
{
    struct fx *f = *state;
    reopen_with(f, COLL_FSYNC_ALWAYS, 1 << 20);
    hook_arm(f, 1);
    struct sl_buf b;
    sl_buf_init(&b);
    struct acks a = {0};
    struct ack ks[40];
    struct coll_append_res res;
    for (int i = 0; i < 40; i++) {
        ks[i] = (struct ack){&a, i};
        make_batch(&b, 1, g_now, 50, false);
        assert_int_equal(coll_plog_append(f->pl, b.data, b.len, on_ack, &ks[i], &res, NULL), 0);
        if (i == 0)
            wait_blocked(f); /* the first sync is under way (and stuck) */
        else
            ev_run(f->loop, EVRUN_NOWAIT);
    }
    expect_no_acks(f, &a, 100);
    assert_int_equal(coll_plog_durable_offset(f->pl), 0);
    atomic_store(&g_blocked, false);
    run_until(f->loop, &a, 40);
    assert_int_equal(a.calls, 40);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(a.order[i], i);
        assert_int_equal(a.status[i], 0);
    }
    /* One sync for the first append, one for the 39 that came during it. */
    int syncs = atomic_load(&g_sync_calls);
    assert_true(syncs >= 2 && syncs < 40);
    coll_flusher_set_sync_fn(coll_storage_flusher(f->st), NULL);
    sl_buf_fini(&b);
}

/* Appends with callbacks and no loop run until the partition has rolled `rolls` times. */
static int append_rolls(struct fx *f, struct acks *a, struct ack *ks, int max, size_t rolls)
{
    struct sl_buf b;
    sl_buf_init(&b);
    int n = 0;
    while (f->pl->nsegs < rolls + 1) {
        assert_true(n < max);
        if (a)
            ks[n] = (struct ack){a, n};
        make_batch(&b, 1, g_now, 100, false);
        struct coll_append_res res;
        assert_int_equal(coll_plog_append(f->pl, b.data, b.len, a ? on_ack : NULL,
                                          a ? &ks[n] : NULL, &res, NULL), 0);
        n++;
    }
    sl_buf_fini(&b);
    return n;
}

/* More rolls between two flusher rounds than one round takes (64 files, ~21 rolls): nothing is
 * acknowledged before the round that syncs the last sealed file. */
static void test_many_rolls_between_flushes(void **state)
{
    struct fx *f = *state;
    reopen_with(f, COLL_FSYNC_ALWAYS, 1024);
    /* Round 1 syncs 64 sealed files and the active .log: block the first call of round 2. */
    hook_arm(f, 66);
    static struct acks a;
    memset(&a, 0, sizeof(a));
    static struct ack ks[512];
    int n = append_rolls(f, &a, ks, 512, 25);
    wait_blocked(f);
    assert_int_equal(atomic_load(&g_sync_calls), 66);
    expect_no_acks(f, &a, 100);
    assert_int_equal(coll_plog_durable_offset(f->pl), 0);
    atomic_store(&g_blocked, false);
    run_until(f->loop, &a, n);
    assert_int_equal(a.calls, n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(a.order[i], i);
        assert_int_equal(a.status[i], 0);
    }
    /* Every sealed file (3 per roll) and the active .log twice. */
    assert_true(atomic_load(&g_sync_calls) >= 25 * 3 + 2);
    assert_int_equal(coll_plog_durable_offset(f->pl), f->pl->next_offset);
    coll_flusher_set_sync_fn(coll_storage_flusher(f->st), NULL);
}

static void *unblock_later(void *arg)
{
    usleep(100 * 1000);
    atomic_store(&g_blocked, false);
    return NULL;
}

/* Deleting (detaching) a partition while the flusher works on it, with sealed files left for
 * another round: once delete returns, the flusher never touches it again. */
static void test_detach_during_flush(void **state)
{
    struct fx *f = *state;
    reopen_with(f, COLL_FSYNC_NEVER, 1024);
    append_rolls(f, NULL, NULL, 1000, 25);
    hook_arm(f, 1);
    wait_blocked(f);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, unblock_later, NULL), 0);
    struct sl_err err;
    assert_int_equal(coll_storage_delete(f->st, "t", 0, &err), 0);
    f->pl = NULL;
    pthread_join(t, NULL);
    int calls = atomic_load(&g_sync_calls);
    for (int i = 0; i < 50; i++) {
        ev_run(f->loop, EVRUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(atomic_load(&g_sync_calls), calls);
    coll_flusher_set_sync_fn(coll_storage_flusher(f->st), NULL);
}

/* Sets a batch's lastOffsetDelta (recordCount stays: a gap, as compaction leaves in a log, which
 * only non-strict parsing accepts) and its CRC. */
static void set_last_offset_delta(struct sl_buf *b, int32_t lod)
{
    sl_put_be32(b->data + SL_BATCH_OFF_LAST_OFFSET_DELTA, (uint32_t)lod);
    sl_put_be32(b->data + SL_BATCH_OFF_CRC, sl_crc32c(0, b->data + SL_BATCH_OFF_ATTRIBUTES,
                                                      b->len - SL_BATCH_OFF_ATTRIBUTES));
}

/* A segment spans at most INT32_MAX offsets past its base (Kafka's rule). A producer cannot
 * send such a batch (strict: lastOffsetDelta = recordCount - 1), so the log is made on disk: a
 * batch ending exactly INT32_MAX past the base is accepted by recovery and the next append
 * rolls; one offset further and recovery cuts it. */
static void test_roll_at_int32_offsets(void **state)
{
    struct fx *f = *state;
    append(f->pl, 1, g_now, 10);
    fx_close(f);
    char p[PATH_MAX], ip[PATH_MAX], tp[PATH_MAX], rp[PATH_MAX + 32];
    seg_path(f, 0, ".log", p, sizeof(p));
    seg_path(f, 0, ".index", ip, sizeof(ip));
    seg_path(f, 0, ".timeindex", tp, sizeof(tp));
    snprintf(rp, sizeof(rp), "%s/t-0/" COLL_FILE_RECOVERY_POINT, f->dir);
    size_t n;
    uint8_t *first = read_all(p, &n);
    struct sl_buf b;
    sl_buf_init(&b);
    make_batch(&b, 1, g_now, 10, false);
    sl_put_be64(b.data + SL_BATCH_OFF_BASE_OFFSET, 1);
    uint8_t *two = malloc(n + b.len);
    for (int over = 1; over >= 0; over--) {
        set_last_offset_delta(&b, INT32_MAX - 1 + over); /* last offset INT32_MAX + over */
        memcpy(two, first, n);
        memcpy(two + n, b.data, b.len);
        write_all(p, two, n + b.len);
        unlink(ip);
        unlink(tp);
        unlink(rp);
        fx_unclean(f);
        fx_open(f);
        if (over) {
            assert_int_equal(f->pl->next_offset, 1);
            assert_int_equal(f->pl->cut_bytes, b.len);
            fx_close(f);
            continue;
        }
        assert_int_equal(f->pl->cut_bytes, 0);
        assert_int_equal(f->pl->nsegs, 1);
        assert_int_equal(f->pl->next_offset, (int64_t)INT32_MAX + 1);
        struct coll_region r;
        assert_int_equal(coll_plog_read(f->pl, INT32_MAX, 1 << 20, &r, NULL), 0);
        assert_int_equal(r.first_offset, 1);
        coll_region_release(&r);
        assert_int_equal(append(f->pl, 1, g_now, 10), (int64_t)INT32_MAX + 1);
        assert_int_equal(f->pl->nsegs, 2);
        assert_int_equal(f->pl->segs[1]->base, (int64_t)INT32_MAX + 1);
        assert_int_equal(coll_plog_read(f->pl, (int64_t)INT32_MAX + 1, 1 << 20, &r, NULL), 0);
        assert_true(r.seg == f->pl->segs[1]);
        coll_region_release(&r);
        fx_close(f);
        fx_unclean(f);
        unlink(rp);
        fx_open(f);
        assert_int_equal(f->pl->nsegs, 2);
        assert_int_equal(f->pl->next_offset, (int64_t)INT32_MAX + 2);
        assert_int_equal(f->pl->cut_bytes, 0);
    }
    free(two);
    free(first);
    sl_buf_fini(&b);
}

/* Child of test_index_write_failure: fills segment 0 with 4 batches (3 .index and 3 .timeindex
 * entries), waits until they are synced, then lets the file size limit (24 bytes: all of the
 * .index, 2 of the 3 .timeindex entries) break the index write of the roll, and dies without
 * closing once the recovery point names segment 1. Returns 0 or the step that went wrong. */
static int index_failure_child(struct fx *f)
{
    struct coll_storage_opts o = {.data_dir = f->dir, .loop = f->loop, .now_ms = fake_now,
                                  .topic_conf = fake_conf};
    if (coll_storage_open(&o, &f->st, NULL))
        return 10;
    struct coll_plog *pl = coll_storage_get(f->st, "t", 0);
    struct sl_buf b;
    sl_buf_init(&b);
    for (int i = 0; i < 5; i++) {
        make_batch(&b, 1, 1000 + 10 * i, 170, false);
        struct coll_append_res res;
        if (i == 4) {
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit old, lim;
            getrlimit(RLIMIT_FSIZE, &old);
            lim = old;
            lim.rlim_cur = 24;
            setrlimit(RLIMIT_FSIZE, &lim);
            int rc = coll_plog_append(pl, b.data, b.len, NULL, NULL, &res, NULL);
            setrlimit(RLIMIT_FSIZE, &old);
            if (rc != -EFBIG)
                return 11; /* the roll happened, the write into the new segment failed */
            break;
        }
        if (coll_plog_append(pl, b.data, b.len, NULL, NULL, &res, NULL))
            return 12;
    }
    if (pl->nsegs != 2 || pl->segs[0]->idx_n != 3 || pl->segs[0]->tidx_n != 3 ||
        !pl->segs[0]->index_write_failed)
        return 13;
    char rp[PATH_MAX + 32];
    snprintf(rp, sizeof(rp), "%s/t-0/" COLL_FILE_RECOVERY_POINT, f->dir);
    int64_t v = -1;
    for (int i = 0; i < 5000 && (coll_read_offset_file(rp, &v) || v != 4); i++) {
        ev_run(f->loop, EVRUN_NOWAIT);
        usleep(1000);
    }
    return v == 4 ? 0 : 14;
}

/* An index write that fails at a roll, then a crash: the segment is below the recovery point,
 * so its indexes are loaded, not rebuilt, unless they are gone. They must be: a short
 * .timeindex would give it too low a max timestamp (early retention, missed time lookups). */
static void test_index_write_failure(void **state)
{
    struct fx *f = *state;
    g_conf.segment_bytes = 1024;
    g_conf.max_batch_bytes = 1024;
    g_conf.index_interval = 1;
    g_conf.fsync = COLL_FSYNC_ALWAYS;
    fx_close(f);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(index_failure_child(f));
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    fx_open(f);
    assert_false(coll_storage_was_clean(f->st));
    assert_int_equal(f->pl->nsegs, 2);
    struct coll_segment *seg = f->pl->segs[0];
    assert_int_equal(seg->max_ts, 1030);
    assert_int_equal(seg->max_ts_offset, 3);
    int64_t got;
    assert_int_equal(coll_plog_find_time(f->pl, 1030, &got, NULL), 0);
    assert_int_equal(got, 3);
    assert_int_equal(coll_plog_find_time(f->pl, 1021, &got, NULL), 0);
    assert_int_equal(got, 3);
    verify_reads(f->pl, 100);
    fx_close(f);
    /* Rebuilt files, whole and with the final time entry. */
    char p[PATH_MAX];
    struct stat st;
    seg_path(f, 0, ".index", p, sizeof(p));
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, 3 * 8);
    seg_path(f, 0, ".timeindex", p, sizeof(p));
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, 3 * 12);
}

/* Time index entries carry the offset of the batch holding the largest timestamp (Kafka's
 * offsetOfMaxTimestampSoFar), and find-by-time returns the first record, in offset order, with
 * a timestamp >= t, whatever the order of the timestamps. */
static void test_time_index_kafka(void **state)
{
    struct fx *f = *state;
    g_conf.index_interval = 1;
    reopen_with(f, COLL_FSYNC_NEVER, 4096);
    /* Batch i holds 2 records (offsets 2i, 2i+1) with timestamps ts[i], ts[i] + 1. */
    static const int64_t ts[] = {100, 500, 200, 300, 600, 50, 600, 700};
    for (size_t i = 0; i < SL_ARRAY_LEN(ts); i++)
        append(f->pl, 2, ts[i], 20);
    assert_int_equal(f->pl->nsegs, 1);
    struct coll_segment *seg = f->pl->segs[0];
    /* Entries at batches 1.. (index_interval 1) when the max grew: batches 1, 4, 7. */
    assert_int_equal(seg->tidx_n, 3);
    assert_int_equal(seg->tidx[0].ts, 501);
    assert_int_equal(seg->tidx[0].rel, 3);
    assert_int_equal(seg->tidx[1].ts, 601);
    assert_int_equal(seg->tidx[1].rel, 9);
    assert_int_equal(seg->tidx[2].ts, 701);
    assert_int_equal(seg->tidx[2].rel, 15);
    assert_int_equal(seg->max_ts_offset, 15);
    /* Batch 6 ties batch 4's maximum: the offset stays batch 4's, as in Kafka. */
    append(f->pl, 1, 650, 20); /* batch 8: offset 16; the max is still 701 at 15 */
    assert_int_equal(seg->max_ts_offset, 15);
    fx_close(f);
    fx_open(f);
    seg = f->pl->segs[0];
    assert_int_equal(seg->max_ts, 701);
    assert_int_equal(seg->max_ts_offset, 15);

    /* Several segments with shuffled timestamps, checked against a linear search. */
    g_conf.index_interval = 64;
    reopen_with(f, COLL_FSYNC_NEVER, 1024);
    int64_t start = f->pl->next_offset;
    int64_t rec_ts[600];
    int nrec = 0;
    srand(7);
    while (nrec < 560) {
        int k = 1 + rand() % 3;
        int64_t t0 = 2000 + rand() % 1000;
        append(f->pl, k, t0, 20);
        for (int j = 0; j < k; j++)
            rec_ts[nrec++] = t0 + j;
    }
    assert_true(f->pl->nsegs > 5);
    for (int round = 0; round < 2; round++) {
        for (int64_t t = 1990; t <= 3010; t += 3) {
            int64_t want = -1;
            for (int i = 0; i < nrec && want < 0; i++)
                if (rec_ts[i] >= t)
                    want = start + i;
            int64_t got;
            assert_int_equal(coll_plog_find_time(f->pl, t, &got, NULL), 0);
            if (got != want)
                fail_msg("round %d ts %" PRId64 ": got %" PRId64 ", want %" PRId64, round, t, got,
                         want);
        }
        fx_close(f);
        fx_open(f);
    }
}

/* A clean start whose last indexed batch is damaged: no index entry may be left pointing at
 * the cut, or at what later appends put there. */
static void test_stale_index_after_cut(void **state)
{
    struct fx *f = *state;
    reopen_with(f, COLL_FSYNC_NEVER, 1 << 20);
    for (int i = 0; i < 12; i++)
        append(f->pl, 5, g_now + i, 40);
    struct coll_segment *seg = f->pl->segs[0];
    assert_true(seg->idx_n >= 3);
    uint32_t last_pos = seg->idx[seg->idx_n - 1].pos;
    uint64_t size = seg->size;
    fx_close(f);
    char p[PATH_MAX];
    seg_path(f, 0, ".log", p, sizeof(p));
    size_t n;
    uint8_t *b = read_all(p, &n);
    assert_int_equal(n, size);
    b[last_pos + 70] ^= 0x01; /* inside the records: the CRC no longer matches */
    write_all(p, b, n);
    free(b);
    fx_open(f); /* clean: the marker is there */
    assert_true(coll_storage_was_clean(f->st));
    seg = f->pl->segs[0];
    assert_int_equal(seg->size, last_pos);
    for (size_t i = 0; i < seg->idx_n; i++) {
        assert_true(seg->idx[i].pos < seg->size);
        assert_true(seg->base + (int64_t)seg->idx[i].rel < seg->next_offset);
    }
    for (size_t i = 0; i < seg->tidx_n; i++)
        assert_true(seg->base + (int64_t)seg->tidx[i].rel < seg->next_offset);
    /* Smaller batches now fill the cut: lookups and a later clean load stay right. */
    for (int i = 0; i < 30; i++)
        append(f->pl, 1, g_now + 100 + i, 10);
    verify_reads(f->pl, 300);
    int64_t next = f->pl->next_offset;
    fx_close(f);
    seg_path(f, 0, ".index", p, sizeof(p));
    b = read_all(p, &n);
    for (size_t i = 8; i < n; i += 8)
        assert_true(sl_be32(b + i) > sl_be32(b + i - 8) && sl_be32(b + i + 4) > sl_be32(b + i - 4));
    free(b);
    fx_open(f);
    assert_int_equal(f->pl->next_offset, next);
    verify_reads(f->pl, 300);
}

/* A 249-byte topic (the longest allowed) can be deleted: its "<...>.deleted" name fits. */
static void test_delete_long_topic(void **state)
{
    struct fx *f = *state;
    char topic[250];
    memset(topic, 'x', 249);
    topic[249] = '\0';
    struct coll_plog *pl;
    struct sl_err err = {{0}};
    assert_int_equal(coll_storage_create(f->st, topic, 7, NULL, &pl, &err), 0);
    append(pl, 1, g_now, 10);
    if (coll_storage_delete(f->st, topic, 7, &err))
        fail_msg("delete: %s", err.msg);
    assert_null(coll_storage_get(f->st, topic, 7));
    /* Nothing is left of it, and twice the same name works too. */
    assert_int_equal(coll_storage_create(f->st, topic, 7, NULL, &pl, &err), 0);
    assert_int_equal(coll_storage_delete(f->st, topic, 7, &err), 0);
    fx_close(f);
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | grep -c xxx) = 0", f->dir);
    assert_int_equal(system(cmd), 0);
    fx_open(f);
    assert_non_null(f->pl);
}

/* Segments whose batches carry no timestamp (maxTimestamp -1) expire by their file's
 * modification time, as in Kafka. */
static void test_retention_no_timestamps(void **state)
{
    struct fx *f = *state;
    g_conf.retention_ms = 10000;
    reopen_with(f, COLL_FSYNC_NEVER, 1024);
    struct sl_buf b;
    sl_buf_init(&b);
    while (f->pl->nsegs < 3) {
        make_batch(&b, 1, 0, 200, false);
        /* No timestamp at all: maxTimestamp and firstTimestamp -1. */
        sl_put_be64(b.data + SL_BATCH_OFF_FIRST_TIMESTAMP, UINT64_MAX);
        sl_put_be64(b.data + SL_BATCH_OFF_MAX_TIMESTAMP, UINT64_MAX);
        sl_put_be32(b.data + SL_BATCH_OFF_CRC, sl_crc32c(0, b.data + SL_BATCH_OFF_ATTRIBUTES,
                                                         b.len - SL_BATCH_OFF_ATTRIBUTES));
        struct coll_append_res res;
        struct sl_err err = {{0}};
        if (coll_plog_append(f->pl, b.data, b.len, NULL, NULL, &res, &err))
            fail_msg("append: %s", err.msg);
    }
    sl_buf_fini(&b);
    assert_int_equal(f->pl->segs[0]->max_ts, -1);
    int64_t now = g_now;
    /* Segment 0 last modified 11 s ago, segment 1 9 s ago. */
    struct timespec tm[2] = {{(now - 11000) / 1000, 0}, {(now - 11000) / 1000, 0}};
    assert_int_equal(futimens(f->pl->segs[0]->log_fd, tm), 0);
    tm[0].tv_sec = tm[1].tv_sec = (now - 9000) / 1000;
    assert_int_equal(futimens(f->pl->segs[1]->log_fd, tm), 0);
    int64_t base1 = f->pl->segs[1]->base;
    assert_int_equal(coll_plog_retain(f->pl, now, NULL), 1);
    assert_int_equal(f->pl->segs[0]->base, base1);
    assert_int_equal(f->pl->log_start, base1);
    assert_int_equal(coll_plog_retain(f->pl, now, NULL), 0);
    assert_int_equal(coll_plog_retain(f->pl, now + 2001, NULL), 1);
}

int main(void)
{
    snprintf(g_root, sizeof(g_root), "/tmp/unit_storage.XXXXXX");
    if (!mkdtemp(g_root))
        return 1;
    sl_log_threshold = SL_LOG_CRIT;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_check),
        cmocka_unit_test_setup_teardown(test_index_math, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_cadence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_read_roll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_extent_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roll_by_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durable_always, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durable_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durable_never, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_zero_and_garbage_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_flipped_bit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_missing_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_partition_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_waits_for_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_rolls_between_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach_during_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roll_at_int32_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_write_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time_index_kafka, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_index_after_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_long_topic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_no_timestamps, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(g_root);
    return rc;
}
