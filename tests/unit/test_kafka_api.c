/* Unit tests for the collector's Kafka request handling without a network: request header and
 * every API's decoder at its boundaries (each truncation of a valid request is refused and
 * changes nothing), ApiVersions fallback, produce/fetch/list-offsets round trips through a real
 * storage, the idempotent producer window, and the option table. */
#include "collector/server_priv.h"
#include "collector/storage.h"
#include "collector/topic_store.h"
#include "common/batch.h"
#include "common/log.h"
#include "common/mem.h"

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

struct env {
    struct ev_loop *loop;
    struct coll_storage *st;
    struct coll_server *srv;
    struct coll_server_conf conf;
    size_t nlisteners;
    struct coll_log_conf log;
    struct coll_topic_store *topics;
    char dir[64];
};

static struct env *g_env;

static const struct coll_log_conf *topic_conf(void *arg, const char *topic)
{
    return &g_env->log;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int setup(void **state)
{
    sl_log_threshold = SL_LOG_CRIT;
    struct env *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    g_env = e;
    snprintf(e->dir, sizeof(e->dir), "/tmp/sl-unit-kafka-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    static const char yaml[] = "default_partitions: 2\nmax_fetch_wait: 0s\n";
    struct sl_conf_errors errs;
    assert_int_equal(sl_conf_load_string(&coll_server_conf_section, &e->conf, "t", yaml,
                                         sizeof(yaml) - 1, &errs),
                     0);
    e->nlisteners = e->conf.listeners.len;
    e->conf.listeners.len = 0;
    e->log = COLL_LOG_CONF_DEFAULT;
    e->log.fsync = COLL_FSYNC_NEVER;
    e->loop = ev_loop_new(EVFLAG_AUTO);
    struct coll_storage_opts so = {.data_dir = e->dir, .loop = e->loop, .topic_conf = topic_conf};
    struct sl_err err = {{0}};
    assert_int_equal(coll_storage_open(&so, &e->st, &err), 0);
    assert_int_equal(coll_server_new(e->loop, &e->conf, e->st, NULL, &e->srv, &err), 0);
    assert_int_equal(coll_topic_store_open(e->dir, &e->topics, &err), 0);
    coll_server_set_topic_store(e->srv, e->topics);
    assert_int_equal(coll_server_create_topic(e->srv, "t", 1, 2, NULL), KAFKA_E_NONE);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    coll_server_free(e->srv);
    coll_topic_store_free(e->topics);
    coll_storage_close(e->st);
    /* Every watcher of the server and storage is gone. */
    assert_false(ev_run(e->loop, EVRUN_NOWAIT));
    ev_loop_destroy(e->loop);
    e->conf.listeners.len = e->nlisteners;
    sl_conf_free(&coll_server_conf_section, &e->conf);
    nftw(e->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(e);
    return 0;
}

/* ---- request building ---------------------------------------------------------------------- */

static void put_header(struct sl_buf *b, int16_t api, int16_t ver, int32_t corr)
{
    sl_buf_put_i16(b, api);
    sl_buf_put_i16(b, ver);
    sl_buf_put_i32(b, corr);
    sl_buf_put_string(b, SL_BYTES_STR("unit"));
}

static void make_batch(struct sl_buf *out, int n, int64_t ts, int64_t pid, int32_t seq)
{
    struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
    o.producer_id = pid;
    o.producer_epoch = pid >= 0 ? 0 : -1;
    o.base_sequence = seq;
    struct sl_batch_builder bb;
    assert_int_equal(sl_batch_builder_init(&bb, &o), 0);
    for (int i = 0; i < n; i++) {
        char v[32];
        snprintf(v, sizeof(v), "value-%d", i);
        assert_int_equal(sl_batch_builder_add(&bb, ts + i, SL_BYTES_NULL, SL_BYTES_STR(v), NULL, 0),
                         0);
    }
    sl_buf_reset(out);
    assert_int_equal(sl_batch_builder_finish(&bb, out), 0);
    sl_batch_builder_fini(&bb);
}

static void make_produce(struct sl_buf *b, int16_t ver, int16_t acks, const char *topic,
                         int32_t part, const struct sl_buf *batch)
{
    put_header(b, 0, ver, 42);
    sl_buf_put_string(b, SL_BYTES_NULL);
    sl_buf_put_i16(b, acks);
    sl_buf_put_i32(b, 1000);
    sl_buf_put_i32(b, 1);
    sl_buf_put_string(b, SL_BYTES_STR(topic));
    sl_buf_put_i32(b, 1);
    sl_buf_put_i32(b, part);
    sl_buf_put_bytes(b, (struct sl_bytes){batch->data, batch->len});
}

static void make_fetch(struct sl_buf *b, int16_t ver, const char *topic, int32_t part,
                       int64_t offset, int32_t max_bytes)
{
    put_header(b, 1, ver, 43);
    sl_buf_put_i32(b, -1);
    sl_buf_put_i32(b, 0);
    sl_buf_put_i32(b, 1);
    sl_buf_put_i32(b, max_bytes);
    sl_buf_put_i8(b, 0);
    if (ver >= 7) {
        sl_buf_put_i32(b, 0);
        sl_buf_put_i32(b, -1);
    }
    sl_buf_put_i32(b, 1);
    sl_buf_put_string(b, SL_BYTES_STR(topic));
    sl_buf_put_i32(b, 1);
    sl_buf_put_i32(b, part);
    if (ver >= 9)
        sl_buf_put_i32(b, -1);
    sl_buf_put_i64(b, offset);
    if (ver >= 5)
        sl_buf_put_i64(b, 0);
    sl_buf_put_i32(b, max_bytes);
    if (ver >= 7)
        sl_buf_put_i32(b, 0);
    if (ver >= 11)
        sl_buf_put_string(b, SL_BYTES_STR(""));
}

/* Runs one frame (copied: handlers write into it). Returns the handler's result; *out gets the
 * response slot when there is one (free it with coll_resp_free). */
static int run(struct env *e, const uint8_t *frame, size_t len, struct coll_resp **out)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, frame, len);
    struct coll_resp *r = sl_calloc(1, sizeof(*r));
    assert_non_null(r);
    sl_buf_init(&r->buf);
    struct coll_req req = {.srv = e->srv, .resp = r, .peer = "unit"};
    struct sl_err err = {{0}};
    int rc = coll_dispatch(&req, copy, len, &err);
    free(copy);
    if (rc < 0)
        assert_true(err.msg[0] != 0);
    if (rc == COLL_API_DONE && out) {
        *out = r;
    } else {
        assert_true(rc != COLL_API_ASYNC); /* max_fetch_wait 0s, acks != -1 in these tests */
        coll_resp_free(r);
        if (out)
            *out = NULL;
    }
    return rc;
}

/* The response body (after size and correlation id) as a reader. */
static struct sl_reader body(const struct coll_resp *r)
{
    struct sl_reader rd;
    sl_reader_init(&rd, r->buf.data + 8, r->buf.len - 8);
    return rd;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_api_versions(void **state)
{
    struct env *e = *state;
    for (int16_t v = 0; v <= 3; v++) {
        struct sl_buf b;
        sl_buf_init(&b);
        put_header(&b, 18, v, 7);
        struct coll_resp *r;
        assert_int_equal(run(e, b.data, b.len, &r), COLL_API_DONE);
        assert_int_equal((int32_t)sl_be32(r->buf.data + 4), 7);
        struct sl_reader rd = body(r);
        assert_int_equal(sl_reader_i16(&rd), v == 3 ? 35 : 0);
        int32_t n = sl_reader_array(&rd, 100, 6);
        bool saw_produce = false, saw_versions = false;
        for (int32_t i = 0; i < n; i++) {
            int16_t key = sl_reader_i16(&rd), min = sl_reader_i16(&rd), max = sl_reader_i16(&rd);
            assert_true(min <= max);
            if (key == 0) {
                saw_produce = min == 3 && max == 7;
            } else if (key == 18) {
                saw_versions = min == 0 && max == 2;
            }
        }
        assert_true(saw_produce && saw_versions);
        if (v >= 1 && v <= 2)
            assert_int_equal(sl_reader_i32(&rd), 0);
        assert_int_equal(sl_reader_left(&rd), 0); /* v3 is answered with the v0 body */
        assert_int_equal(rd.err, 0);
        coll_resp_free(r);
        sl_buf_fini(&b);
    }
}

static void test_header_and_unknown(void **state)
{
    struct env *e = *state;
    struct sl_buf b;
    sl_buf_init(&b);
    put_header(&b, 18, 0, 1);
    /* Every truncation of the header is refused. */
    for (size_t n = 0; n < b.len; n++)
        assert_true(run(e, b.data, n, NULL) < 0);
    /* Unknown keys (negative, past the table, holes) and versions outside the range. */
    const int16_t bad[][2] = {{-1, 0}, {63, 0}, {64, 0}, {32767, 0}, {9, 0},  {0, 2},
                              {0, 8},  {1, 3},  {1, 12}, {3, 5},     {3, -1}, {18, -1}};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        sl_buf_reset(&b);
        put_header(&b, bad[i][0], bad[i][1], 1);
        assert_true(run(e, b.data, b.len, NULL) < 0);
    }
    sl_buf_fini(&b);
}

/* Every proper prefix of a produce request is refused and appends nothing; the whole one
 * appends once. */
static void test_produce_truncations(void **state)
{
    struct env *e = *state;
    struct sl_buf batch, b;
    sl_buf_init(&batch);
    sl_buf_init(&b);
    make_batch(&batch, 3, 1700000000000, -1, -1);
    make_produce(&b, 7, 1, "t", 0, &batch);
    struct coll_plog *pl = coll_storage_get(e->st, "t", 0);
    assert_non_null(pl);
    for (size_t n = 0; n < b.len; n++) {
        int rc = run(e, b.data, n, NULL);
        assert_true(rc < 0);
        assert_int_equal(pl->next_offset, 0);
    }
    struct coll_resp *r;
    assert_int_equal(run(e, b.data, b.len, &r), COLL_API_DONE);
    assert_int_equal(pl->next_offset, 3);
    struct sl_reader rd = body(r);
    assert_int_equal(sl_reader_array(&rd, 10, 1), 1);
    assert_true(sl_bytes_eq_str(sl_reader_string(&rd), "t"));
    assert_int_equal(sl_reader_array(&rd, 10, 1), 1);
    assert_int_equal(sl_reader_i32(&rd), 0);
    assert_int_equal(sl_reader_i16(&rd), 0);
    assert_int_equal(sl_reader_i64(&rd), 0);  /* base offset */
    assert_int_equal(sl_reader_i64(&rd), -1); /* log append time */
    assert_int_equal(sl_reader_i64(&rd), 0);  /* log start (v5+) */
    assert_int_equal(sl_reader_i32(&rd), 0);  /* throttle */
    assert_int_equal(sl_reader_left(&rd), 0);
    coll_resp_free(r);

    /* acks=0: no response at all, but appended. */
    sl_buf_reset(&b);
    make_batch(&batch, 2, 1700000000100, -1, -1);
    make_produce(&b, 3, 0, "t", 0, &batch);
    assert_int_equal(run(e, b.data, b.len, NULL), COLL_API_NORESP);
    assert_int_equal(pl->next_offset, 5);
    sl_buf_fini(&batch);
    sl_buf_fini(&b);
}

static int16_t produce_err(struct env *e, const char *topic, int32_t part, struct sl_buf *batch,
                           int16_t acks, int64_t *base)
{
    struct sl_buf b;
    sl_buf_init(&b);
    make_produce(&b, 7, acks, topic, part, batch);
    struct coll_resp *r;
    assert_int_equal(run(e, b.data, b.len, &r), COLL_API_DONE);
    struct sl_reader rd = body(r);
    sl_reader_array(&rd, 10, 1);
    sl_reader_string(&rd);
    sl_reader_array(&rd, 10, 1);
    sl_reader_i32(&rd);
    int16_t err = sl_reader_i16(&rd);
    int64_t off = sl_reader_i64(&rd);
    if (base)
        *base = off;
    assert_int_equal(rd.err, 0);
    coll_resp_free(r);
    sl_buf_fini(&b);
    return err;
}

static void test_produce_errors(void **state)
{
    struct env *e = *state;
    struct sl_buf batch;
    sl_buf_init(&batch);
    make_batch(&batch, 1, 1700000000000, -1, -1);
    assert_int_equal(produce_err(e, "nope", 0, &batch, 1, NULL), 3);
    assert_int_equal(produce_err(e, "t", 2, &batch, 1, NULL), 3);
    assert_int_equal(produce_err(e, "t", -1, &batch, 1, NULL), 3);
    assert_int_equal(produce_err(e, "../x", 0, &batch, 1, NULL), 3);
    assert_int_equal(produce_err(e, "t", 0, &batch, 2, NULL), 21); /* INVALID_REQUIRED_ACKS */
    batch.data[batch.len - 1] ^= 1;
    assert_int_equal(produce_err(e, "t", 0, &batch, 1, NULL), 2); /* CORRUPT_MESSAGE */
    assert_int_equal(coll_storage_get(e->st, "t", 0)->next_offset, 0);
    sl_buf_fini(&batch);
}

/* Idempotence through Produce: in order appends, a retry is answered with its first offset
 * and not appended again, a gap is OUT_OF_ORDER_SEQUENCE_NUMBER. */
static void test_produce_idempotent(void **state)
{
    struct env *e = *state;
    struct sl_buf batch;
    sl_buf_init(&batch);
    int64_t base = -1;
    struct coll_plog *pl = coll_storage_get(e->st, "t", 1);
    make_batch(&batch, 4, 1700000000000, 99, 0);
    assert_int_equal(produce_err(e, "t", 1, &batch, 1, &base), 0);
    assert_int_equal(base, 0);
    make_batch(&batch, 4, 1700000000000, 99, 4);
    assert_int_equal(produce_err(e, "t", 1, &batch, 1, &base), 0);
    assert_int_equal(base, 4);
    make_batch(&batch, 4, 1700000000000, 99, 0); /* retry of the first */
    assert_int_equal(produce_err(e, "t", 1, &batch, 1, &base), 0);
    assert_int_equal(base, 0);
    assert_int_equal(pl->next_offset, 8);
    make_batch(&batch, 4, 1700000000000, 99, 12); /* gap */
    assert_int_equal(produce_err(e, "t", 1, &batch, 1, &base), 45);
    assert_int_equal(pl->next_offset, 8);
    sl_buf_fini(&batch);
}

static void test_pstate_window(void **state)
{
    struct coll_pstate ps;
    assert_int_equal(coll_pstate_init(&ps, 1000), 0);
    assert_int_equal(coll_pstate_new_id(&ps), 1000);
    assert_int_equal(coll_pstate_new_id(&ps), 1001);
    int64_t dup = -1;
    /* Unknown producer: any sequence. */
    assert_int_equal(coll_pstate_check(&ps, 5, 0, "a", 0, 77, 1, &dup), COLL_PSTATE_APPEND);
    /* Fill 7 batches of 10; only the last 5 are remembered. */
    for (int i = 0; i < 7; i++) {
        assert_int_equal(coll_pstate_check(&ps, 5, 0, "a", 0, i * 10, 10, &dup),
                         COLL_PSTATE_APPEND);
        assert_int_equal(coll_pstate_record(&ps, 5, 0, "a", 0, i * 10, 10, 100 + i * 10), 0);
    }
    assert_int_equal(coll_pstate_check(&ps, 5, 0, "a", 0, 20, 10, &dup), COLL_PSTATE_DUPLICATE);
    assert_int_equal(dup, 120);
    assert_int_equal(coll_pstate_check(&ps, 5, 0, "a", 0, 60, 10, &dup), COLL_PSTATE_DUPLICATE);
    assert_int_equal(dup, 160);
    /* Older than the window: out of order (not a duplicate we can prove). */
    assert_int_equal(coll_pstate_check(&ps, 5, 0, "a", 0, 10, 10, &dup), COLL_PSTATE_OUT_OF_ORDER);
    assert_int_equal(coll_pstate_check(&ps, 5, 0, "a", 0, 71, 1, &dup), COLL_PSTATE_OUT_OF_ORDER);
    assert_int_equal(coll_pstate_check(&ps, 5, 0, "a", 0, 70, 1, &dup), COLL_PSTATE_APPEND);
    /* Same sequence on another partition or producer is independent. */
    assert_int_equal(coll_pstate_check(&ps, 5, 0, "a", 1, 500, 1, &dup), COLL_PSTATE_APPEND);
    assert_int_equal(coll_pstate_check(&ps, 6, 0, "a", 0, 500, 1, &dup), COLL_PSTATE_APPEND);
    /* Epochs: older fenced, newer restarts. */
    assert_int_equal(coll_pstate_record(&ps, 5, 3, "a", 0, 0, 1, 200), 0);
    assert_int_equal(coll_pstate_check(&ps, 5, 2, "a", 0, 1, 1, &dup), COLL_PSTATE_FENCED);
    assert_int_equal(coll_pstate_check(&ps, 5, 4, "a", 0, 9, 1, &dup), COLL_PSTATE_APPEND);
    /* Wrap at INT32_MAX: the next sequence is 0. */
    assert_int_equal(coll_pstate_record(&ps, 8, 0, "a", 0, INT32_MAX - 1, 2, 0), 0);
    assert_int_equal(coll_pstate_check(&ps, 8, 0, "a", 0, 0, 1, &dup), COLL_PSTATE_APPEND);
    assert_int_equal(coll_pstate_check(&ps, 8, 0, "a", 0, 1, 1, &dup), COLL_PSTATE_OUT_OF_ORDER);
    /* Forgetting a partition forgets its producers there. */
    coll_pstate_forget_partition(&ps, "a", 0);
    assert_int_equal(coll_pstate_check(&ps, 5, 0, "a", 0, 20, 10, &dup), COLL_PSTATE_APPEND);
    coll_pstate_fini(&ps);
    coll_pstate_fini(&ps);
}

/* Produce, then fetch at the first, middle and end offsets: the whole batch holding the
 * offset comes back as a file region, with the right high watermark and log start. */
static void test_fetch_round_trip(void **state)
{
    struct env *e = *state;
    struct sl_buf batch;
    sl_buf_init(&batch);
    make_batch(&batch, 5, 1700000000000, -1, -1);
    size_t batch_len = batch.len;
    assert_int_equal(produce_err(e, "t", 0, &batch, 1, NULL), 0);
    make_batch(&batch, 5, 1700000001000, -1, -1);
    assert_int_equal(produce_err(e, "t", 0, &batch, 1, NULL), 0);
    const int16_t versions[] = {4, 5, 7, 9, 11};
    for (size_t vi = 0; vi < SL_ARRAY_LEN(versions); vi++) {
        int16_t v = versions[vi];
        const int64_t offsets[] = {0, 3, 5, 9, 10, 11, -1};
        for (size_t oi = 0; oi < SL_ARRAY_LEN(offsets); oi++) {
            struct sl_buf b;
            sl_buf_init(&b);
            make_fetch(&b, v, "t", 0, offsets[oi], 1);
            struct coll_resp *r;
            assert_int_equal(run(e, b.data, b.len, &r), COLL_API_DONE);
            struct sl_reader rd = body(r);
            sl_reader_i32(&rd);
            if (v >= 7) {
                assert_int_equal(sl_reader_i16(&rd), 0);
                assert_int_equal(sl_reader_i32(&rd), 0);
            }
            assert_int_equal(sl_reader_array(&rd, 10, 1), 1);
            assert_true(sl_bytes_eq_str(sl_reader_string(&rd), "t"));
            assert_int_equal(sl_reader_array(&rd, 10, 1), 1);
            assert_int_equal(sl_reader_i32(&rd), 0);
            int16_t err = sl_reader_i16(&rd);
            int64_t hw = sl_reader_i64(&rd);
            assert_int_equal(sl_reader_i64(&rd), hw);
            if (v >= 5)
                assert_int_equal(sl_reader_i64(&rd), 0);
            assert_int_equal(sl_reader_i32(&rd), -1);
            if (v >= 11)
                assert_int_equal(sl_reader_i32(&rd), -1);
            int32_t rlen = sl_reader_i32(&rd);
            assert_int_equal(sl_reader_left(&rd), 0);
            assert_int_equal(hw, 10);
            int64_t off = offsets[oi];
            if (off < 0 || off > 10) {
                assert_int_equal(err, KAFKA_E_OFFSET_OUT_OF_RANGE);
                assert_int_equal(rlen, 0);
            } else if (off == 10) {
                assert_int_equal(err, 0);
                assert_int_equal(rlen, 0);
            } else {
                /* max_bytes 1 still returns the whole batch holding the offset. */
                assert_int_equal(err, 0);
                assert_int_equal(rlen, (int32_t)batch_len);
                assert_int_equal(r->nfiles, 1);
                uint8_t head[12];
                assert_int_equal(
                    pread(r->files[0].region.fd, head, 12, (off_t)r->files[0].region.pos), 12);
                assert_int_equal((int64_t)sl_be64(head), off < 5 ? 0 : 5);
            }
            coll_resp_free(r);
            sl_buf_fini(&b);
        }
    }
    /* Truncations of a fetch are refused. */
    struct sl_buf b;
    sl_buf_init(&b);
    make_fetch(&b, 11, "t", 0, 0, 100);
    for (size_t n = 0; n < b.len; n++)
        assert_true(run(e, b.data, n, NULL) < 0);
    sl_buf_fini(&b);
    sl_buf_fini(&batch);
}

static void test_list_offsets(void **state)
{
    struct env *e = *state;
    struct sl_buf batch;
    sl_buf_init(&batch);
    make_batch(&batch, 5, 1700000000000, -1, -1);
    assert_int_equal(produce_err(e, "t", 0, &batch, 1, NULL), 0);
    make_batch(&batch, 5, 1700000010000, -1, -1);
    assert_int_equal(produce_err(e, "t", 0, &batch, 1, NULL), 0);
    const int64_t ts[] = {-2, -1, 0, 1700000000003, 1700000005000, 1700000010004, 1800000000000,
                          -3};
    const int64_t want[] = {0, 10, 0, 3, 5, 9, -1, -1};
    const int16_t werr[] = {0, 0, 0, 0, 0, 0, 0, KAFKA_E_INVALID_REQUEST};
    for (int16_t v = 1; v <= 2; v++) {
        struct sl_buf b;
        sl_buf_init(&b);
        put_header(&b, 2, v, 5);
        sl_buf_put_i32(&b, -1);
        if (v >= 2)
            sl_buf_put_i8(&b, 0);
        sl_buf_put_i32(&b, 1);
        sl_buf_put_string(&b, SL_BYTES_STR("t"));
        sl_buf_put_i32(&b, (int32_t)SL_ARRAY_LEN(ts));
        for (size_t i = 0; i < SL_ARRAY_LEN(ts); i++) {
            sl_buf_put_i32(&b, 0);
            sl_buf_put_i64(&b, ts[i]);
        }
        struct coll_resp *r;
        assert_int_equal(run(e, b.data, b.len, &r), COLL_API_DONE);
        struct sl_reader rd = body(r);
        if (v >= 2)
            sl_reader_i32(&rd);
        assert_int_equal(sl_reader_array(&rd, 10, 1), 1);
        sl_reader_string(&rd);
        assert_int_equal(sl_reader_array(&rd, 100, 1), (int32_t)SL_ARRAY_LEN(ts));
        for (size_t i = 0; i < SL_ARRAY_LEN(ts); i++) {
            assert_int_equal(sl_reader_i32(&rd), 0);
            assert_int_equal(sl_reader_i16(&rd), werr[i]);
            sl_reader_i64(&rd);
            assert_int_equal(sl_reader_i64(&rd), want[i]);
        }
        assert_int_equal(sl_reader_left(&rd), 0);
        coll_resp_free(r);
        for (size_t n = 0; n < b.len; n++)
            assert_true(run(e, b.data, n, NULL) < 0);
        sl_buf_fini(&b);
    }
    sl_buf_fini(&batch);
}

static void test_metadata(void **state)
{
    struct env *e = *state;
    for (int16_t v = 0; v <= 4; v++) {
        struct sl_buf b;
        sl_buf_init(&b);
        put_header(&b, 3, v, 9);
        sl_buf_put_i32(&b, 3);
        sl_buf_put_string(&b, SL_BYTES_STR("t"));
        char name[32];
        snprintf(name, sizeof(name), "auto%d", v);
        sl_buf_put_string(&b, SL_BYTES_STR(name));
        sl_buf_put_string(&b, SL_BYTES_STR("../x"));
        if (v >= 4)
            sl_buf_put_i8(&b, 1);
        struct coll_resp *r;
        assert_int_equal(run(e, b.data, b.len, &r), COLL_API_DONE);
        struct sl_reader rd = body(r);
        if (v >= 3)
            sl_reader_i32(&rd);
        assert_int_equal(sl_reader_array(&rd, 10, 1), 1);
        assert_int_equal(sl_reader_i32(&rd), COLL_NODE_ID);
        sl_reader_string(&rd);
        sl_reader_i32(&rd);
        if (v >= 1)
            sl_reader_string(&rd);
        if (v >= 2)
            sl_reader_string(&rd);
        if (v >= 1)
            assert_int_equal(sl_reader_i32(&rd), COLL_NODE_ID);
        assert_int_equal(sl_reader_array(&rd, 10, 1), 3);
        const int16_t werr[] = {0, 0, KAFKA_E_INVALID_TOPIC};
        const int32_t wparts[] = {2, 2, 0};
        for (int t = 0; t < 3; t++) {
            assert_int_equal(sl_reader_i16(&rd), werr[t]);
            sl_reader_string(&rd);
            if (v >= 1)
                sl_reader_i8(&rd);
            int32_t np = sl_reader_array(&rd, 100, 1);
            assert_int_equal(np, wparts[t]);
            for (int32_t p = 0; p < np; p++) {
                assert_int_equal(sl_reader_i16(&rd), 0);
                assert_int_equal(sl_reader_i32(&rd), p);
                assert_int_equal(sl_reader_i32(&rd), COLL_NODE_ID);
                assert_int_equal(sl_reader_array(&rd, 1, 4), 1);
                sl_reader_i32(&rd);
                assert_int_equal(sl_reader_array(&rd, 1, 4), 1);
                sl_reader_i32(&rd);
            }
        }
        assert_int_equal(sl_reader_left(&rd), 0);
        assert_int_equal(rd.err, 0);
        coll_resp_free(r);
        /* Counts beyond the bytes present are refused before anything is allocated. */
        sl_buf_reset(&b);
        put_header(&b, 3, v, 9);
        sl_buf_put_i32(&b, INT32_MAX);
        assert_true(run(e, b.data, b.len, NULL) < 0);
        sl_buf_fini(&b);
    }
    assert_false(coll_storage_get(e->st, "../x", 0));
}

static void test_create_delete(void **state)
{
    struct env *e = *state;
    struct sl_buf b;
    sl_buf_init(&b);
    put_header(&b, 19, 4, 3);
    const char *names[] = {"new3", "t", "bad/name", "rf2", "zero"};
    const int32_t nparts[] = {3, 1, 1, 1, 0};
    const int16_t rf[] = {1, 1, 1, 2, 1};
    sl_buf_put_i32(&b, 5);
    for (int i = 0; i < 5; i++) {
        sl_buf_put_string(&b, SL_BYTES_STR(names[i]));
        sl_buf_put_i32(&b, nparts[i]);
        sl_buf_put_i16(&b, rf[i]);
        sl_buf_put_i32(&b, 0);
        sl_buf_put_i32(&b, 1);
        sl_buf_put_string(&b, SL_BYTES_STR("retention.ms"));
        sl_buf_put_string(&b, SL_BYTES_STR("1000"));
    }
    sl_buf_put_i32(&b, 1000);
    sl_buf_put_i8(&b, 0);
    struct coll_resp *r;
    assert_int_equal(run(e, b.data, b.len, &r), COLL_API_DONE);
    struct sl_reader rd = body(r);
    sl_reader_i32(&rd);
    assert_int_equal(sl_reader_array(&rd, 10, 1), 5);
    const int16_t werr[] = {0, KAFKA_E_TOPIC_ALREADY_EXISTS, KAFKA_E_INVALID_TOPIC,
                            KAFKA_E_INVALID_REPLICATION_FACTOR, KAFKA_E_INVALID_PARTITIONS};
    for (int i = 0; i < 5; i++) {
        assert_true(sl_bytes_eq_str(sl_reader_string(&rd), names[i]));
        assert_int_equal(sl_reader_i16(&rd), werr[i]);
        struct sl_bytes msg = sl_reader_string(&rd);
        assert_true(werr[i] == 0 ? msg.p == NULL : msg.len > 0);
    }
    assert_int_equal(sl_reader_left(&rd), 0);
    coll_resp_free(r);
    assert_int_equal(coll_server_partitions(e->srv, "new3"), 3);
    for (size_t n = 0; n < b.len; n++)
        assert_true(run(e, b.data, n, NULL) < 0);

    sl_buf_reset(&b);
    put_header(&b, 20, 3, 4);
    sl_buf_put_i32(&b, 2);
    sl_buf_put_string(&b, SL_BYTES_STR("new3"));
    sl_buf_put_string(&b, SL_BYTES_STR("missing"));
    sl_buf_put_i32(&b, 1000);
    assert_int_equal(run(e, b.data, b.len, &r), COLL_API_DONE);
    rd = body(r);
    sl_reader_i32(&rd);
    assert_int_equal(sl_reader_array(&rd, 10, 1), 2);
    sl_reader_string(&rd);
    assert_int_equal(sl_reader_i16(&rd), 0);
    sl_reader_string(&rd);
    assert_int_equal(sl_reader_i16(&rd), KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION);
    coll_resp_free(r);
    assert_int_equal(coll_server_partitions(e->srv, "new3"), 0);
    sl_buf_fini(&b);
}

static void test_init_producer_id(void **state)
{
    struct env *e = *state;
    int64_t last = -1;
    for (int16_t v = 0; v <= 1; v++) {
        for (int txn = 0; txn <= 1; txn++) {
            struct sl_buf b;
            sl_buf_init(&b);
            put_header(&b, 22, v, 8);
            sl_buf_put_string(&b, txn ? SL_BYTES_STR("tx") : SL_BYTES_NULL);
            sl_buf_put_i32(&b, 60000);
            struct coll_resp *r;
            assert_int_equal(run(e, b.data, b.len, &r), COLL_API_DONE);
            struct sl_reader rd = body(r);
            sl_reader_i32(&rd);
            int16_t err = sl_reader_i16(&rd);
            int64_t pid = sl_reader_i64(&rd);
            int16_t epoch = sl_reader_i16(&rd);
            assert_int_equal(sl_reader_left(&rd), 0);
            if (txn) {
                assert_int_equal(err, KAFKA_E_TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
                assert_int_equal(pid, -1);
            } else {
                assert_int_equal(err, 0);
                assert_true(pid > last && pid > 0);
                assert_int_equal(epoch, 0);
                last = pid;
            }
            coll_resp_free(r);
            for (size_t n = 0; n < b.len; n++)
                assert_true(run(e, b.data, n, NULL) < 0);
            sl_buf_fini(&b);
        }
    }
}

static void test_conf_table(void **state)
{
    struct sl_conf_errors errs;
    int rc = sl_conf_table_check(&coll_server_conf_section, &errs);
    if (rc != 0)
        sl_conf_errors_print(&errs, stderr);
    assert_int_equal(rc, 0);
    struct coll_server_conf c;
    memset(&c, 0, sizeof(c));
    static const char bad[] = "max_request_size: 10\n";
    assert_int_equal(
        sl_conf_load_string(&coll_server_conf_section, &c, "x", bad, sizeof(bad) - 1, &errs),
        SL_ECONFIG);
    memset(&c, 0, sizeof(c));
    assert_int_equal(sl_conf_load_string(&coll_server_conf_section, &c, "x", "", 0, &errs), 0);
    assert_int_equal(c.max_request_size, 100 << 20);
    assert_int_equal(c.listeners.len, 2);
    assert_int_equal(c.listeners.items[0].port, 9092);
    assert_true(c.auto_create_topics);
    sl_conf_free(&coll_server_conf_section, &c);
}

/* Allocation failures while answering: never a crash, and every failure is reported. */
static void test_alloc_failures(void **state)
{
    struct env *e = *state;
    struct sl_buf b, batch;
    sl_buf_init(&b);
    sl_buf_init(&batch);
    make_batch(&batch, 2, 1700000000000, -1, -1);
    make_produce(&b, 7, 1, "t", 1, &batch);
    for (long n = 0; n < 40; n++) {
        uint8_t *copy = malloc(b.len);
        assert_non_null(copy);
        memcpy(copy, b.data, b.len);
        struct coll_resp *r = calloc(1, sizeof(*r)); /* not counted by the countdown */
        assert_non_null(r);
        sl_buf_init(&r->buf);
        struct coll_req req = {.srv = e->srv, .resp = r, .peer = "unit"};
        struct sl_err err = {{0}};
        sl_mem_fail_after(n, 1);
        int rc = coll_dispatch(&req, copy, b.len, &err);
        sl_mem_fail_after(-1, 0);
        assert_true(rc < 0 || rc == COLL_API_DONE);
        if (rc == COLL_API_DONE && sl_mem_failures() > 0)
            assert_true(sl_buf_error(&r->buf) != 0 || r->buf.len >= 8);
        for (size_t i = 0; i < r->nfiles; i++)
            coll_region_release(&r->files[i].region);
        sl_free(r->files);
        sl_buf_fini(&r->buf);
        free(r);
        free(copy);
    }
    sl_buf_fini(&b);
    sl_buf_fini(&batch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_api_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_and_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_produce_truncations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_produce_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_produce_idempotent, setup, teardown),
        cmocka_unit_test(test_pstate_window),
        cmocka_unit_test_setup_teardown(test_fetch_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_producer_id, setup, teardown),
        cmocka_unit_test(test_conf_table),
        cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
