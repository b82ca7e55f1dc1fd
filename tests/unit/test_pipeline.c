/* Unit tests for agent/pipeline.c with a fake output: partitioning like Kafka's default
 * partitioner, batch closing at batch_bytes / linger / flush, the encoded batches themselves,
 * backpressure on memory and on unknown topics, and checkpoint spans on ack or shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/pipeline.h"
#include "common/batch.h"
#include "common/mem.h"
#include "common/murmur2.h"
#include "plugins/plugin.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_SENT 4096

struct fake_out {
    int32_t nparts;
    int partitions_calls;
    struct plugin_batch *sent[MAX_SENT];
    int nsent;
};

static int32_t fake_partitions(void *self, const char *topic)
{
    struct fake_out *o = self;
    o->partitions_calls++;
    return o->nparts;
}

static void fake_send(void *self, struct plugin_batch *b)
{
    struct fake_out *o = self;
    assert_true(o->nsent < MAX_SENT);
    o->sent[o->nsent++] = b;
}

static size_t fake_queued(const void *self)
{
    return 0;
}

static const struct plugin_output_ops fake_ops = {fake_partitions, fake_send, fake_queued};
static const struct plugin fake_plugin = {
    .name = "fake", .kind = PLUGIN_OUTPUT, .output = &fake_ops};

struct fixture {
    struct ev_loop *loop;
    struct fake_out out;
    struct agent_pipeline *p;
    struct plugin_sink *sink;
    struct plugin_topic *topic;
};

static int resumed;
static void on_resume(struct plugin_waiter *w)
{
    resumed++;
}

static bool g_encode_thread; /* setup_with's pipelines encode on the encoder thread */

static void setup_with(struct fixture *f, int32_t nparts, int64_t batch_bytes, int64_t linger,
                       int64_t memory, enum sl_batch_codec codec)
{
    memset(f, 0, sizeof(*f));
    f->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(f->loop);
    f->out.nparts = nparts;
    struct agent_pipeline_opts o = {.batch_bytes = batch_bytes,
                                    .linger_ms = linger,
                                    .codec = codec,
                                    .level = 1,
                                    .memory_limit = memory,
                                    .encode_thread = g_encode_thread};
    struct sl_err err = {{0}};
    assert_int_equal(agent_pipeline_new(f->loop, &o, &fake_plugin, &f->out, NULL, &f->p, &err), 0);
    f->sink = agent_pipeline_sink(f->p);
    f->topic = f->sink->topic_get(f->sink, "logs");
    assert_non_null(f->topic);
    assert_ptr_equal(f->sink->topic_get(f->sink, "logs"), f->topic); /* same handle */
    f->sink->topic_put(f->sink, f->topic);
    resumed = 0;
}

static void finish_all(struct fixture *f, int status)
{
    for (int i = 0; i < f->out.nsent; i++)
        f->out.sent[i]->done(f->out.sent[i], status);
    f->out.nsent = 0;
}

static void teardown_fixture(struct fixture *f)
{
    finish_all(f, SL_ECLOSED);
    f->sink->topic_put(f->sink, f->topic);
    agent_pipeline_free(f->p);
    /* No watcher may be left behind. */
    assert_false(ev_run(f->loop, EVRUN_NOWAIT));
    ev_loop_destroy(f->loop);
}

static int emit(struct fixture *f, const char *key, const char *value,
                struct plugin_ack_owner *owner, uint64_t end, struct plugin_waiter *w)
{
    struct plugin_record r = {.key = key ? SL_BYTES_STR(key) : SL_BYTES_NULL,
                              .value = SL_BYTES_STR(value),
                              .timestamp = 1700000000000,
                              .owner = owner,
                              .end = end};
    return f->sink->emit(f->sink, f->topic, &r, w);
}

/* Decodes batch b and checks it holds `count` records, all with `key`. */
static void check_batch(const struct plugin_batch *b, int count, const char *key)
{
    struct sl_batch_header h;
    struct sl_buf scratch;
    struct sl_err err = {{0}};
    sl_buf_init(&scratch);
    assert_int_equal(
        sl_batch_validate(&h, b->data.data, b->data.len, &scratch, 1 << 26, SL_BATCH_STRICT, &err),
        0);
    assert_int_equal(h.size, b->data.len);
    assert_int_equal(h.record_count, count);
    assert_int_equal(b->records, count);
    struct sl_batch_iter it;
    assert_int_equal(
        sl_batch_iter_init(&it, &h, b->data.data, &scratch, 1 << 26, SL_BATCH_STRICT, &err), 0);
    struct sl_batch_record rec;
    int n = 0;
    while (sl_batch_iter_next(&it, &rec, &err) == 1) {
        if (key)
            assert_true(sl_bytes_eq_str(rec.key, key));
        else
            assert_null(rec.key.p);
        assert_int_equal(rec.timestamp, 1700000000000);
        n++;
    }
    assert_int_equal(n, count);
    sl_buf_fini(&scratch);
}

static void test_partitions_like_kafka(void **state)
{
    struct fixture f;
    setup_with(&f, 7, 1 << 20, 1000, 1 << 24, SL_BATCH_CODEC_GZIP);
    static const char *keys[] = {"web-1", "web-2", "db", "", "a-little-bit-long-string"};
    for (size_t i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++)
            assert_int_equal(emit(&f, keys[i], "v", NULL, 0, NULL), 0);
    assert_int_equal(f.out.nsent, 0); /* nothing closes before linger or size */
    agent_pipeline_flush(f.p);
    int seen = 0;
    for (size_t i = 0; i < 5; i++) {
        int32_t want = sl_murmur2_partition(keys[i], strlen(keys[i]), 7);
        for (int k = 0; k < f.out.nsent; k++) {
            if (f.out.sent[k]->partition != want)
                continue;
            assert_string_equal(f.out.sent[k]->topic, "logs");
            seen++;
        }
    }
    assert_true(seen >= 5);
    int total = 0;
    for (int k = 0; k < f.out.nsent; k++)
        total += f.out.sent[k]->records;
    assert_int_equal(total, 15);
    /* Partition of "web-1" alone. */
    for (int k = 0; k < f.out.nsent; k++)
        if (f.out.sent[k]->partition == sl_murmur2_partition("web-1", 5, 7) &&
            f.out.sent[k]->records == 3 &&
            sl_murmur2_partition("web-2", 5, 7) != f.out.sent[k]->partition &&
            sl_murmur2_partition("db", 2, 7) != f.out.sent[k]->partition &&
            sl_murmur2_partition("", 0, 7) != f.out.sent[k]->partition &&
            sl_murmur2_partition("a-little-bit-long-string", 24, 7) != f.out.sent[k]->partition)
            check_batch(f.out.sent[k], 3, "web-1");
    teardown_fixture(&f);
}

/* Null keys stick to one partition per batch. */
static void test_null_key_sticky(void **state)
{
    struct fixture f;
    setup_with(&f, 5, 1 << 20, 1000, 1 << 24, SL_BATCH_CODEC_NONE);
    for (int i = 0; i < 50; i++)
        assert_int_equal(emit(&f, NULL, "value", NULL, 0, NULL), 0);
    agent_pipeline_flush(f.p);
    assert_int_equal(f.out.nsent, 1);
    check_batch(f.out.sent[0], 50, NULL);
    teardown_fixture(&f);
}

static void test_batch_bytes_closes(void **state)
{
    struct fixture f;
    setup_with(&f, 1, 4096, 60000, 1 << 24, SL_BATCH_CODEC_GZIP);
    char value[101];
    memset(value, 'x', 100);
    value[100] = '\0';
    int n = 0;
    while (f.out.nsent == 0) {
        assert_int_equal(emit(&f, "k", value, NULL, 0, NULL), 0);
        n++;
        assert_true(n < 100);
    }
    /* The batch that closed holds what fitted under 4096 bytes, at least 30 records. */
    assert_true(f.out.sent[0]->records >= 30);
    assert_true(f.out.sent[0]->records <= n);
    check_batch(f.out.sent[0], f.out.sent[0]->records, "k");
    agent_pipeline_flush(f.p);
    int total = 0;
    for (int k = 0; k < f.out.nsent; k++)
        total += f.out.sent[k]->records;
    assert_int_equal(total, n);
    teardown_fixture(&f);
}

static void test_linger_closes(void **state)
{
    struct fixture f;
    setup_with(&f, 2, 1 << 20, 20, 1 << 24, SL_BATCH_CODEC_GZIP);
    assert_int_equal(emit(&f, "k", "one", NULL, 0, NULL), 0);
    ev_tstamp start = ev_time();
    while (f.out.nsent == 0 && ev_time() - start < 2)
        ev_run(f.loop, EVRUN_ONCE);
    assert_int_equal(f.out.nsent, 1);
    assert_true(ev_time() - start >= 0.015);
    check_batch(f.out.sent[0], 1, "k");
    teardown_fixture(&f);
}

/* A topic whose partitions are unknown waits, then resumes when the output learns them. */
static void test_unknown_topic_waits(void **state)
{
    struct fixture f;
    setup_with(&f, 0, 1 << 20, 1000, 1 << 24, SL_BATCH_CODEC_NONE);
    struct plugin_waiter w = {.on_resume = on_resume};
    assert_int_equal(emit(&f, "k", "v", NULL, 0, &w), -EAGAIN);
    assert_true(w.queued);
    assert_int_equal(emit(&f, "k", "v", NULL, 0, &w), -EAGAIN); /* queued once */
    f.out.nparts = 3;
    agent_pipeline_on_topology(f.p);
    ev_run(f.loop, EVRUN_NOWAIT);
    assert_int_equal(resumed, 1);
    assert_false(w.queued);
    assert_int_equal(emit(&f, "k", "v", NULL, 0, &w), 0);
    teardown_fixture(&f);
}

/* At the memory limit inputs are told to wait; acknowledgements make room and resume them. */
static void test_memory_backpressure(void **state)
{
    struct fixture f;
    setup_with(&f, 1, 2048, 60000, 16384, SL_BATCH_CODEC_NONE);
    struct plugin_waiter w = {.on_resume = on_resume};
    char value[201];
    memset(value, 'y', 200);
    value[200] = '\0';
    int taken = 0, rc;
    while ((rc = emit(&f, "k", value, NULL, 0, &w)) == 0)
        taken++;
    assert_int_equal(rc, -EAGAIN);
    assert_true(taken >= 16384 / 260);
    struct agent_pipeline_stats st;
    agent_pipeline_stats(f.p, &st);
    assert_true(st.paused);
    assert_true(st.memory >= 16384);
    ev_run(f.loop, EVRUN_NOWAIT);
    assert_int_equal(resumed, 0); /* nothing freed yet */
    finish_all(&f, 0);
    agent_pipeline_stats(f.p, &st);
    assert_false(st.paused);
    ev_run(f.loop, EVRUN_NOWAIT);
    assert_int_equal(resumed, 1);
    assert_int_equal(emit(&f, "k", value, NULL, 0, &w), 0);
    teardown_fixture(&f);
}

static void test_acks_move_checkpoints(void **state)
{
    struct fixture f;
    setup_with(&f, 2, 1 << 20, 1000, 1 << 24, SL_BATCH_CODEC_GZIP);
    struct plugin_ack_owner o;
    plugin_ack_owner_init(&o, 0, NULL);
    /* Keys on both partitions (checked below), so two batches finish in either order. */
    const char *k0 = NULL, *k1 = NULL;
    static const char *cands[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    for (size_t i = 0; i < 8; i++) {
        if (sl_murmur2_partition(cands[i], 1, 2) == 0 && !k0)
            k0 = cands[i];
        if (sl_murmur2_partition(cands[i], 1, 2) == 1 && !k1)
            k1 = cands[i];
    }
    assert_non_null(k0);
    assert_non_null(k1);
    assert_int_equal(emit(&f, k0, "1", &o, 10, NULL), 0);
    assert_int_equal(emit(&f, k1, "2", &o, 20, NULL), 0);
    assert_int_equal(emit(&f, k0, "3", &o, 30, NULL), 0);
    agent_pipeline_flush(f.p);
    assert_int_equal(f.out.nsent, 2);
    struct plugin_batch *b0 = f.out.sent[0]->partition == 0 ? f.out.sent[0] : f.out.sent[1];
    struct plugin_batch *b1 = b0 == f.out.sent[0] ? f.out.sent[1] : f.out.sent[0];
    f.out.nsent = 0;
    b0->done(b0, 0);
    assert_int_equal(o.acked, 10); /* 20 (partition 1) is not acknowledged yet */
    b1->done(b1, 0);
    assert_int_equal(o.acked, 30);
    struct agent_pipeline_stats st;
    agent_pipeline_stats(f.p, &st);
    assert_int_equal(st.records_acked, 3);
    assert_int_equal(st.memory, 0);
    assert_true(agent_pipeline_idle(f.p));

    /* Not delivered (output freed): the checkpoint stays. A refusal for good moves it. */
    assert_int_equal(emit(&f, k0, "4", &o, 40, NULL), 0);
    agent_pipeline_flush(f.p);
    finish_all(&f, SL_ECLOSED);
    assert_int_equal(o.acked, 30);
    plugin_ack_owner_fini(&o);
    plugin_ack_owner_init(&o, 30, NULL);
    assert_int_equal(emit(&f, k0, "5", &o, 50, NULL), 0);
    agent_pipeline_flush(f.p);
    finish_all(&f, -EBADMSG);
    assert_int_equal(o.acked, 50);
    agent_pipeline_stats(f.p, &st);
    assert_int_equal(st.records_failed, 1);
    plugin_ack_owner_fini(&o);
    teardown_fixture(&f);
}

/* Open batches dropped at free: spans abandoned, nothing leaks. */
static void test_free_with_open_batches(void **state)
{
    struct fixture f;
    setup_with(&f, 3, 1 << 20, 60000, 1 << 24, SL_BATCH_CODEC_GZIP);
    struct plugin_ack_owner o;
    plugin_ack_owner_init(&o, 0, NULL);
    for (int i = 0; i < 10; i++)
        assert_int_equal(emit(&f, "k", "v", &o, (uint64_t)i + 1, NULL), 0);
    teardown_fixture(&f);
    assert_int_equal(o.acked, 0);
    plugin_ack_owner_fini(&o);
}

static void test_too_big_and_bad_opts(void **state)
{
    struct fixture f;
    setup_with(&f, 1, 1024, 1000, 65536, SL_BATCH_CODEC_NONE);
    size_t n = 200000;
    char *big = sl_malloc(n + 1);
    assert_non_null(big);
    memset(big, 'z', n);
    big[n] = '\0';
    assert_int_equal(emit(&f, "k", big, NULL, 0, NULL), SL_ETOOBIG);
    sl_free(big);
    teardown_fixture(&f);

    struct agent_pipeline *p = NULL;
    struct agent_pipeline_opts o = {.batch_bytes = 0, .linger_ms = 1, .memory_limit = 1};
    assert_int_equal(agent_pipeline_new(NULL, &o, &fake_plugin, NULL, NULL, &p, NULL), -EINVAL);
    o.batch_bytes = 10;
    o.codec = SL_BATCH_CODEC_ZSTD;
    assert_int_equal(agent_pipeline_new(NULL, &o, &fake_plugin, NULL, NULL, &p, NULL), -EINVAL);
    assert_null(p);
}

/* With the encoder thread: batches reach the output only through the loop, in closing
 * order (each record numbered, so order shows in the values); inputs wait while two batches
 * are queued for it and resume when it catches up; freeing with batches still on the thread
 * abandons them (ASan: nothing leaks). */
static void test_encoder_thread(void **state)
{
    g_encode_thread = true;
    struct fixture f;
    setup_with(&f, 1, 2048, 60000, 1 << 24, SL_BATCH_CODEC_GZIP);
    struct plugin_waiter w = {.on_resume = on_resume};
    char value[64];
    int n = 0, waits = 0;
    for (int guard = 0; n < 2000 && guard < 200000; guard++) {
        snprintf(value, sizeof(value), "%06d padding padding padding padding padding", n);
        int rc = emit(&f, NULL, value, NULL, 0, &w);
        if (rc == -EAGAIN) {
            waits++;
            ev_run(f.loop, EVRUN_ONCE); /* the encoder reports; the wake timer resumes us */
            continue;
        }
        assert_int_equal(rc, 0);
        n++;
    }
    assert_int_equal(n, 2000);
    assert_true(waits > 0); /* 2000 records make ~50 batches: the queue filled */
    assert_true(resumed > 0);
    agent_pipeline_flush(f.p);
    for (int i = 0; i < 20000 && !agent_pipeline_idle(f.p); i++) {
        ev_run(f.loop, EVRUN_NOWAIT);
        finish_all(&f, 0);
        usleep(100);
    }
    assert_true(agent_pipeline_idle(f.p));
    teardown_fixture(&f);

    /* The order check: a fresh pipeline whose sent batches are kept and decoded. */
    setup_with(&f, 1, 2048, 60000, 1 << 24, SL_BATCH_CODEC_GZIP);
    int next = 0;
    n = 0;
    for (int guard = 0; n < 600 && guard < 200000; guard++) {
        snprintf(value, sizeof(value), "%06d", n);
        int rc = emit(&f, NULL, value, NULL, 0, &w);
        if (rc == -EAGAIN) {
            ev_run(f.loop, EVRUN_ONCE);
            continue;
        }
        n++;
    }
    agent_pipeline_flush(f.p);
    for (int i = 0; i < 20000 && !agent_pipeline_idle(f.p); i++) {
        ev_run(f.loop, EVRUN_NOWAIT);
        for (int k = 0; k < f.out.nsent; k++) {
            struct sl_batch_header h;
            struct sl_buf scratch;
            struct sl_batch_iter it;
            struct sl_batch_record rec;
            sl_buf_init(&scratch);
            assert_int_equal(sl_batch_validate(&h, f.out.sent[k]->data.data,
                                               f.out.sent[k]->data.len, &scratch, 1 << 26,
                                               SL_BATCH_STRICT, NULL),
                             0);
            assert_int_equal(sl_batch_iter_init(&it, &h, f.out.sent[k]->data.data, &scratch,
                                                1 << 26, SL_BATCH_STRICT, NULL),
                             0);
            while (sl_batch_iter_next(&it, &rec, NULL) == 1) {
                char want[16];
                snprintf(want, sizeof(want), "%06d", next++);
                assert_true(sl_bytes_eq_str(rec.value, want));
            }
            sl_buf_fini(&scratch);
        }
        finish_all(&f, 0);
        usleep(100);
    }
    assert_int_equal(next, 600);
    teardown_fixture(&f);

    /* Freed with closed batches still queued for the thread. */
    setup_with(&f, 4, 1024, 60000, 1 << 24, SL_BATCH_CODEC_GZIP);
    for (int k = 0; k < 4; k++) {
        char key[8];
        snprintf(key, sizeof(key), "k%d", k);
        for (int i = 0; i < 20; i++)
            emit(&f, key, "some value to fill the batch with", NULL, 0, NULL);
    }
    agent_pipeline_flush(f.p);
    teardown_fixture(&f);
    g_encode_thread = false;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partitions_like_kafka), cmocka_unit_test(test_null_key_sticky),
        cmocka_unit_test(test_batch_bytes_closes),    cmocka_unit_test(test_linger_closes),
        cmocka_unit_test(test_unknown_topic_waits),   cmocka_unit_test(test_memory_backpressure),
        cmocka_unit_test(test_acks_move_checkpoints), cmocka_unit_test(test_free_with_open_batches),
        cmocka_unit_test(test_too_big_and_bad_opts),  cmocka_unit_test(test_encoder_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
