/* Unit tests for the sluice command line's Kafka client (collector/cli): request bodies byte for
 * byte, answers decoded (and truncations refused), the fetch decoder's positions, the consumer
 * protocol, the range and roundrobin assignors, and the output helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "collector/cli/cli.h"
#include "collector/cli/kc_admin.h"
#include "collector/cli/kc_describe.h"
#include "collector/cli/kc_fetch.h"
#include "collector/cli/kc_group.h"
#include "collector/cli/kc_produce.h"
#include "common/mem.h"

#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

static int fcntl_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Builds an answer body in b and points r at it. */
static void reader_of(struct sl_reader *r, const struct sl_buf *b)
{
    sl_reader_init(r, b->data, b->len);
}

static void put_str(struct sl_buf *b, const char *s)
{
    sl_buf_put_string(b, s ? SL_BYTES_STR(s) : SL_BYTES_NULL);
}

/* ---- Framing ------------------------------------------------------------------------------ */

/* A connection whose broker is the other end of a socket pair (*peer). */
static void conn_pair(struct kc_conn *c, int *peer)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    memset(c, 0, sizeof(*c));
    c->fd = sv[0];
    assert_int_equal(fcntl_nonblock(sv[0]), 0);
    c->node_id = 1;
    c->client_id = "cli";
    snprintf(c->host, sizeof(c->host), "pair");
    sl_buf_init(&c->tx);
    sl_buf_init(&c->rx);
    *peer = sv[1];
}

static void conn_done(struct kc_conn *c, int peer)
{
    if (c->fd >= 0)
        close(c->fd);
    if (peer >= 0)
        close(peer);
    sl_buf_fini(&c->tx);
    sl_buf_fini(&c->rx);
}

/* The broker's side: reads one request frame into b. */
static void peer_read(int peer, struct sl_buf *b)
{
    uint8_t head[4];
    assert_int_equal(read(peer, head, 4), 4);
    uint32_t n = sl_be32(head);
    sl_buf_reset(b);
    assert_int_equal(sl_buf_reserve(b, n), 0);
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(peer, b->data + got, n - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    b->len = n;
}

static void peer_answer(int peer, int32_t size, int32_t corr, const char *body)
{
    uint8_t head[8];
    sl_put_be32(head, (uint32_t)size);
    sl_put_be32(head + 4, (uint32_t)corr);
    assert_int_equal(write(peer, head, 8), 8);
    if (body)
        assert_int_equal(write(peer, body, strlen(body)), (ssize_t)strlen(body));
}

static void test_conn_framing(void **state)
{
    struct kc_conn c;
    int peer;
    conn_pair(&c, &peer);
    struct sl_buf *b = kc_conn_begin(&c, KC_API_METADATA, 4);
    sl_buf_put_i32(b, 7);
    struct sl_err err = {{0}};
    assert_int_equal(kc_conn_send(&c, 1000, &err), 0);
    struct sl_buf got;
    sl_buf_init(&got);
    peer_read(peer, &got);
    static const uint8_t want[] = {0, 3, 0, 4, 0, 0, 0, 1, 0, 3, 'c', 'l', 'i', 0, 0, 0, 7};
    assert_int_equal(got.len, sizeof(want));
    assert_memory_equal(got.data, want, sizeof(want));
    peer_answer(peer, 4 + 3, 1, "xyz");
    struct sl_reader r;
    assert_int_equal(kc_conn_recv(&c, 1000, &r, &err), 0);
    assert_int_equal(r.len, 3);
    assert_memory_equal(r.p, "xyz", 3);
    /* Bytes left over are an error naming the API. */
    assert_int_equal(kc_conn_check(&c, &r, &err), SL_EPARSE);
    assert_non_null(strstr(err.msg, "Metadata v4"));

    /* An answer to another request closes the connection. */
    kc_conn_begin(&c, KC_API_FETCH, 11);
    assert_int_equal(kc_conn_send(&c, 1000, &err), 0);
    peer_read(peer, &got);
    assert_int_equal(sl_be32(got.data + 4), 2); /* correlation ids count up */
    peer_answer(peer, 4, 99, NULL);
    assert_int_equal(kc_conn_recv(&c, 1000, &r, &err), SL_EPARSE);
    assert_non_null(strstr(err.msg, "correlation id 99"));
    assert_int_equal(c.fd, -1);
    conn_done(&c, peer);

    /* A frame over the limit is refused before anything is allocated. */
    conn_pair(&c, &peer);
    kc_conn_begin(&c, KC_API_FETCH, 11);
    assert_int_equal(kc_conn_send(&c, 1000, &err), 0);
    peer_answer(peer, INT32_MAX, 1, NULL);
    assert_int_equal(kc_conn_recv(&c, 1000, &r, &err), SL_ETOOBIG);
    conn_done(&c, peer);

    /* No answer in time, and a broker that hangs up: the collector cannot be reached. */
    conn_pair(&c, &peer);
    kc_conn_begin(&c, KC_API_FETCH, 11);
    assert_int_equal(kc_conn_send(&c, 1000, &err), 0);
    assert_int_equal(kc_conn_recv(&c, 50, &r, &err), KC_EUNREACH);
    assert_non_null(strstr(err.msg, "no answer to Fetch"));
    assert_int_equal(kc_conn_send(&c, 1000, &err), SL_ECLOSED);
    conn_done(&c, peer);
    conn_pair(&c, &peer);
    kc_conn_begin(&c, KC_API_FETCH, 11);
    assert_int_equal(kc_conn_send(&c, 1000, &err), 0);
    peer_read(peer, &got);
    peer_answer(peer, 10, 1, "ab"); /* cut short */
    close(peer);
    peer = -1;
    assert_int_equal(kc_conn_recv(&c, 1000, &r, &err), KC_EUNREACH);
    assert_non_null(strstr(err.msg, "connection closed"));
    conn_done(&c, peer);
    sl_buf_fini(&got);
}

static void test_conn_version(void **state)
{
    struct kc_conn c;
    memset(&c, 0, sizeof(c));
    for (int i = 0; i < KC_API_KEYS; i++)
        c.vmin[i] = c.vmax[i] = -1;
    c.vmin[KC_API_FETCH] = 0;
    c.vmax[KC_API_FETCH] = 13;
    c.vmin[KC_API_JOIN_GROUP] = 6;
    c.vmax[KC_API_JOIN_GROUP] = 9;
    struct sl_err err;
    assert_int_equal(kc_conn_version(&c, KC_API_FETCH, 4, 11, &err), 11);
    assert_int_equal(kc_conn_version(&c, KC_API_JOIN_GROUP, 0, 5, &err), -1); /* flexible only */
    assert_non_null(strstr(err.msg, "JoinGroup v6-9"));
    assert_int_equal(kc_conn_version(&c, KC_API_HEARTBEAT, 0, 3, &err), -1);
    assert_non_null(strstr(err.msg, "does not support Heartbeat"));
}

/* ---- Metadata ----------------------------------------------------------------------------- */

static void test_meta_request(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    const char *topics[] = {"ab"};
    kc_meta_req(&b, 4, topics, 1, false);
    static const uint8_t want[] = {0, 0, 0, 1, 0, 2, 'a', 'b', 0};
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    sl_buf_reset(&b);
    kc_meta_req(&b, 1, NULL, 0, true); /* all topics: null array, no auto-create byte in v1 */
    static const uint8_t all[] = {0xff, 0xff, 0xff, 0xff};
    assert_int_equal(b.len, sizeof(all));
    assert_memory_equal(b.data, all, sizeof(all));
    sl_buf_fini(&b);
}

static void build_meta(struct sl_buf *b, int16_t v)
{
    if (v >= 3)
        sl_buf_put_i32(b, 0);
    sl_buf_put_i32(b, 1); /* brokers */
    sl_buf_put_i32(b, 7);
    put_str(b, "host-a");
    sl_buf_put_i32(b, 9093);
    put_str(b, NULL);
    if (v >= 2)
        put_str(b, "cluster");
    sl_buf_put_i32(b, 7); /* controller */
    sl_buf_put_i32(b, 1); /* topics */
    sl_buf_put_i16(b, 0);
    put_str(b, "logs");
    sl_buf_put_i8(b, 0);
    sl_buf_put_i32(b, 2);
    for (int p = 1; p >= 0; p--) { /* out of order: the decoder sorts */
        sl_buf_put_i16(b, 0);
        sl_buf_put_i32(b, p);
        sl_buf_put_i32(b, 7);
        sl_buf_put_i32(b, 1);
        sl_buf_put_i32(b, 7);
        sl_buf_put_i32(b, 1);
        sl_buf_put_i32(b, 7);
    }
}

static void test_meta_response(void **state)
{
    for (int16_t v = 1; v <= 4; v++) {
        struct sl_buf b;
        sl_buf_init(&b);
        build_meta(&b, v);
        struct sl_reader r;
        reader_of(&r, &b);
        struct kc_meta m = {0};
        struct sl_err err = {{0}};
        assert_int_equal(kc_meta_parse(&r, v, &m, &err), 0);
        assert_int_equal(r.pos, r.len);
        assert_int_equal(m.nbrokers, 1);
        assert_string_equal(m.brokers[0].host, "host-a");
        assert_int_equal(m.brokers[0].port, 9093);
        assert_int_equal(m.controller_id, 7);
        const struct kc_meta_topic *t = kc_meta_find(&m, "logs");
        assert_non_null(t);
        assert_int_equal(t->nparts, 2);
        assert_int_equal(t->parts[0].index, 0);
        assert_int_equal(t->parts[1].index, 1);
        assert_null(kc_meta_find(&m, "other"));
        kc_meta_fini(&m);
        /* Every truncation is an error, never a crash or a leak. */
        for (size_t cut = 0; cut < b.len; cut++) {
            struct kc_meta m2 = {0};
            sl_reader_init(&r, b.data, cut);
            assert_int_not_equal(kc_meta_parse(&r, v, &m2, &err), 0);
            kc_meta_fini(&m2);
        }
        sl_buf_fini(&b);
    }
}

static void test_meta_bad_broker(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    sl_buf_put_i32(&b, 1);
    sl_buf_put_i32(&b, 1);
    put_str(&b, "h");
    sl_buf_put_i32(&b, 70000); /* not a port */
    put_str(&b, NULL);
    sl_buf_put_i32(&b, 1);
    sl_buf_put_i32(&b, 0);
    struct sl_reader r;
    reader_of(&r, &b);
    struct kc_meta m = {0};
    struct sl_err err = {{0}};
    assert_int_equal(kc_meta_parse(&r, 1, &m, &err), SL_EPARSE);
    assert_non_null(strstr(err.msg, "70000"));
    kc_meta_fini(&m);
    sl_buf_fini(&b);
}

/* ---- ListOffsets / Produce / CreateTopics / DeleteTopics ---------------------------------- */

static void test_list_offsets(void **state)
{
    struct kc_offset_query q[3] = {
        {.partition = 0, .leader = 1, .timestamp = KC_OFFSET_EARLIEST},
        {.partition = 1, .leader = 2, .timestamp = 5},
        {.partition = 2, .leader = 1, .timestamp = KC_OFFSET_LATEST},
    };
    struct sl_buf b;
    sl_buf_init(&b);
    kc_list_offsets_req(&b, 2, "t", q, 3, 1); /* only leader 1's partitions */
    static const uint8_t want[] = {
        0xff, 0xff, 0xff, 0xff, 0,                                     /* replica_id, isolation */
        0,    0,    0,    1,    0,    1,    't',  0,    0,    0,    2, /* topics, name, partitions
                                                                        */
        0,    0,    0,    0,    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, /* 0: -2 */
        0,    0,    0,    2,    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* 2: -1 */
    };
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    /* The answer leaves partition 2 out: it is reported, not left as it was. */
    sl_buf_reset(&b);
    sl_buf_put_i32(&b, 0); /* throttle */
    sl_buf_put_i32(&b, 1);
    put_str(&b, "t");
    sl_buf_put_i32(&b, 1);
    sl_buf_put_i32(&b, 0);
    sl_buf_put_i16(&b, 0);
    sl_buf_put_i64(&b, -1);
    sl_buf_put_i64(&b, 42);
    struct sl_reader r;
    reader_of(&r, &b);
    struct sl_err err;
    assert_int_equal(kc_list_offsets_parse(&r, 2, "t", q, 3, 1, &err), 0);
    assert_int_equal(q[0].error_code, 0);
    assert_int_equal(q[0].offset, 42);
    assert_int_equal(q[2].error_code, KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(q[1].timestamp, 5); /* another leader's query is untouched */
    sl_buf_fini(&b);
}

static void test_produce(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    const uint8_t batch[3] = {1, 2, 3};
    kc_produce_req(&b, -1, 1000, "t", 2, (struct sl_bytes){batch, 3});
    static const uint8_t want[] = {
        0xff, 0xff,                        /* transactional_id: null */
        0xff, 0xff, 0, 0, 3, 0xe8,         /* acks -1, timeout 1000 */
        0,    0,    0, 1, 0, 1,    't',    /* topic_data */
        0,    0,    0, 1, 0, 0,    0,   2, /* partition_data, index 2 */
        0,    0,    0, 3, 1, 2,    3,      /* records */
    };
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    for (int16_t v = 3; v <= 7; v++) {
        sl_buf_reset(&b);
        sl_buf_put_i32(&b, 1);
        put_str(&b, "t");
        sl_buf_put_i32(&b, 1);
        sl_buf_put_i32(&b, 2);
        sl_buf_put_i16(&b, KAFKA_E_NOT_LEADER_FOR_PARTITION);
        sl_buf_put_i64(&b, 77);
        sl_buf_put_i64(&b, -1);
        if (v >= 5)
            sl_buf_put_i64(&b, 0);
        sl_buf_put_i32(&b, 0);
        struct sl_reader r;
        reader_of(&r, &b);
        int16_t code = 0;
        int64_t base = 0;
        struct sl_err err;
        assert_int_equal(kc_produce_parse(&r, v, "t", 2, &code, &base, &err), 0);
        assert_int_equal(code, KAFKA_E_NOT_LEADER_FOR_PARTITION);
        assert_int_equal(base, 77);
        assert_int_equal(r.pos, r.len);
        reader_of(&r, &b);
        assert_int_equal(kc_produce_parse(&r, v, "t", 3, &code, &base, &err), SL_EPARSE);
    }
    sl_buf_fini(&b);
}

static void test_create_delete(void **state)
{
    const char *cfg[] = {"retention.ms=1000"};
    struct kc_new_topic t[1] = {
        {.name = "x", .partitions = 3, .replication = -1, .configs = cfg, .nconfigs = 1}};
    struct sl_buf b;
    sl_buf_init(&b);
    kc_create_topics_req(&b, 1, t, 1, 500, true);
    static const uint8_t want[] = {
        0,   0,   0,   1,    0, 1,  'x', 0,   0,   0,   3,   0xff, 0xff, /* name, partitions,
                                                                            replication */
        0,   0,   0,   0,                                                /* assignments */
        0,   0,   0,   1,    0, 12, 'r', 'e', 't', 'e', 'n', 't',  'i',  'o',
        'n', '.', 'm', 's',  0, 4,  '1', '0', '0', '0', /* configs */
        0,   0,   1,   0xf4, 1,                         /* timeout, validate_only */
    };
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    sl_buf_reset(&b);
    sl_buf_put_i32(&b, 0);
    sl_buf_put_i32(&b, 1);
    put_str(&b, "x");
    sl_buf_put_i16(&b, KAFKA_E_TOPIC_ALREADY_EXISTS);
    put_str(&b, "topic 'x' already exists");
    struct sl_reader r;
    reader_of(&r, &b);
    struct sl_err err;
    assert_int_equal(kc_create_topics_parse(&r, 2, t, 1, &err), 0);
    assert_int_equal(t[0].error_code, KAFKA_E_TOPIC_ALREADY_EXISTS);
    assert_string_equal(t[0].message, "topic 'x' already exists");

    sl_buf_reset(&b);
    sl_buf_put_i32(&b, 0);
    sl_buf_put_i32(&b, 1);
    put_str(&b, "b");
    sl_buf_put_i16(&b, KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION);
    reader_of(&r, &b);
    const char *names[] = {"a", "b"};
    int16_t codes[2];
    assert_int_equal(kc_delete_topics_parse(&r, 1, names, 2, codes, &err), 0);
    assert_int_equal(codes[0], KAFKA_E_UNKNOWN_SERVER_ERROR); /* not answered */
    assert_int_equal(codes[1], KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION);
    sl_buf_fini(&b);
}

/* ---- DescribeConfigs, DescribeLogDirs ------------------------------------------------------ */

/* Appends one config entry of a DescribeConfigs answer (v0: src is is_default). */
static void put_config(struct sl_buf *b, int16_t v, const char *name, const char *value, int8_t src)
{
    put_str(b, name);
    put_str(b, value);
    sl_buf_put_i8(b, 0); /* read_only */
    sl_buf_put_i8(b, src);
    sl_buf_put_i8(b, 0); /* is_sensitive */
    if (v >= 1) {
        sl_buf_put_i32(b, 1);
        put_str(b, name);
        put_str(b, value);
        sl_buf_put_i8(b, src);
    }
}

static void test_describe_configs(void **state)
{
    (void)state;
    for (int16_t v = 0; v <= 1; v++) {
        struct sl_buf b;
        struct sl_reader r;
        struct sl_err err = {{0}};
        sl_buf_init(&b);
        sl_buf_put_i32(&b, 0);
        sl_buf_put_i32(&b, 2);
        /* Another topic's resource first: its configs must not leak into ours. */
        sl_buf_put_i16(&b, 0);
        put_str(&b, NULL);
        sl_buf_put_i8(&b, 2);
        put_str(&b, "other");
        sl_buf_put_i32(&b, 1);
        put_config(&b, v, "retention.ms", "1", v == 0 ? 0 : 4);
        sl_buf_put_i16(&b, 0);
        put_str(&b, NULL);
        sl_buf_put_i8(&b, 2);
        put_str(&b, "t");
        sl_buf_put_i32(&b, 3);
        put_config(&b, v, "retention.ms", "7200000", v == 0 ? 0 : 1);
        put_config(&b, v, "segment.bytes", "1073741824", v == 0 ? 1 : 5);
        put_config(&b, v, "unknown.one", "x", v == 0 ? 1 : 5);
        reader_of(&r, &b);
        struct kc_topic_config cfg[KC_TOPIC_NCONFIGS];
        assert_int_equal(kc_describe_configs_parse(&r, v, "t", cfg, &err), 0);
        assert_int_equal(r.pos, b.len);
        assert_true(cfg[0].found && !cfg[0].is_default);
        assert_string_equal(cfg[0].value, "7200000");
        assert_false(cfg[1].found); /* retention.bytes not answered */
        assert_true(cfg[2].found && cfg[2].is_default);
        assert_string_equal(cfg[2].value, "1073741824");
        assert_false(cfg[3].found);
        sl_buf_fini(&b);
    }
    /* A resource error names the topic and the broker's message. */
    struct sl_buf b;
    struct sl_reader r;
    struct sl_err err = {{0}};
    sl_buf_init(&b);
    sl_buf_put_i32(&b, 0);
    sl_buf_put_i32(&b, 1);
    sl_buf_put_i16(&b, KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION);
    put_str(&b, "gone");
    sl_buf_put_i8(&b, 2);
    put_str(&b, "t");
    sl_buf_put_i32(&b, 0);
    reader_of(&r, &b);
    struct kc_topic_config cfg[KC_TOPIC_NCONFIGS];
    assert_int_equal(kc_describe_configs_parse(&r, 1, "t", cfg, &err), KC_ENOTFOUND);
    assert_non_null(strstr(err.msg, "'t'"));
    assert_non_null(strstr(err.msg, "gone"));
    /* Truncated: the reader's error. */
    reader_of(&r, &b);
    r.len -= 3;
    assert_int_not_equal(kc_describe_configs_parse(&r, 1, "t", cfg, &err), 0);
    assert_int_not_equal(kc_describe_configs_parse(&r, 1, "t", cfg, &err), KC_ENOTFOUND);
    sl_buf_fini(&b);
}

static void test_log_dirs(void **state)
{
    (void)state;
    struct sl_buf b;
    struct sl_reader r;
    struct sl_err err = {{0}};
    sl_buf_init(&b);
    sl_buf_put_i32(&b, 0);
    sl_buf_put_i32(&b, 2); /* two dirs: partition 1 in both (a replica moving), summed */
    for (int d = 0; d < 2; d++) {
        sl_buf_put_i16(&b, 0);
        put_str(&b, d ? "/b" : "/a");
        sl_buf_put_i32(&b, 2);
        put_str(&b, "t");
        sl_buf_put_i32(&b, 1);
        sl_buf_put_i32(&b, d ? 1 : 0);
        sl_buf_put_i64(&b, d ? 500 : 100);
        sl_buf_put_i64(&b, 0);
        sl_buf_put_i8(&b, 0);
        put_str(&b, "other");
        sl_buf_put_i32(&b, 1);
        sl_buf_put_i32(&b, 1);
        sl_buf_put_i64(&b, 99999);
        sl_buf_put_i64(&b, 0);
        sl_buf_put_i8(&b, 0);
    }
    reader_of(&r, &b);
    const int32_t parts[] = {0, 1, 2};
    int64_t sizes[] = {-1, -1, -1};
    assert_int_equal(kc_log_dirs_parse(&r, "t", parts, 3, sizes, &err), 0);
    assert_int_equal(r.pos, b.len);
    assert_int_equal(sizes[0], 100);
    assert_int_equal(sizes[1], 500);
    assert_int_equal(sizes[2], -1); /* not reported: unknown */
    reader_of(&r, &b);
    r.len = 20;
    assert_int_not_equal(kc_log_dirs_parse(&r, "t", parts, 3, sizes, &err), 0);
    assert_non_null(strstr(err.msg, "DescribeLogDirs"));
    sl_buf_fini(&b);
}

/* ---- Fetch -------------------------------------------------------------------------------- */

/* Appends a batch of values "v<base+i>" at base_offset (gzip when asked). */
static void put_batch(struct sl_buf *out, int64_t base, int count, bool gzip)
{
    struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
    o.base_offset = base;
    o.codec = gzip ? SL_BATCH_CODEC_GZIP : SL_BATCH_CODEC_NONE;
    struct sl_batch_builder bb;
    assert_int_equal(sl_batch_builder_init(&bb, &o), 0);
    for (int i = 0; i < count; i++) {
        char v[32];
        snprintf(v, sizeof(v), "v%lld", (long long)(base + i));
        struct sl_batch_kv h = {SL_BYTES_STR("h"), SL_BYTES_STR("x")};
        assert_int_equal(sl_batch_builder_add(&bb, 1000 + i, SL_BYTES_NULL, SL_BYTES_STR(v), &h, 1),
                         0);
    }
    assert_int_equal(sl_batch_builder_finish(&bb, out), 0);
    sl_batch_builder_fini(&bb);
}

struct seen {
    char values[64][16];
    int n;
    int stop_after; /* 0: never */
};

static int record_fn(void *arg, struct kc_fetch_part *fp, const struct sl_batch_record *rec)
{
    struct seen *s = arg;
    assert_true(s->n < 64);
    snprintf(s->values[s->n], sizeof(s->values[0]), "%.*s", (int)rec->value.len,
             (const char *)rec->value.p);
    assert_int_equal(rec->offset, atoll(s->values[s->n] + 1)); /* "v<offset>" */
    s->n++;
    return s->stop_after && s->n >= s->stop_after;
}

/* A Fetch answer (version v) for topic "t" partition 0 holding `records`. */
static void build_fetch(struct sl_buf *b, int16_t v, int16_t code, const struct sl_buf *records)
{
    sl_buf_put_i32(b, 0);
    if (v >= 7) {
        sl_buf_put_i16(b, 0);
        sl_buf_put_i32(b, 0);
    }
    sl_buf_put_i32(b, 1);
    put_str(b, "t");
    sl_buf_put_i32(b, 1);
    sl_buf_put_i32(b, 0);
    sl_buf_put_i16(b, code);
    sl_buf_put_i64(b, 100); /* high watermark */
    sl_buf_put_i64(b, 100);
    if (v >= 5)
        sl_buf_put_i64(b, 0);
    sl_buf_put_i32(b, -1); /* aborted: null */
    if (v >= 11)
        sl_buf_put_i32(b, -1);
    sl_buf_put_bytes(b, records ? sl_buf_view(records, 0, records->len) : SL_BYTES_NULL);
}

static void test_fetch_request(void **state)
{
    struct kc_fetcher f;
    kc_fetcher_init(&f, NULL);
    assert_int_equal(kc_fetcher_add(&f, "t", 0, 1, 5, -1), 0);
    assert_int_equal(kc_fetcher_add(&f, "u", 0, 2, 0, -1), 0); /* another leader */
    assert_int_equal(kc_fetcher_add(&f, "t", 1, 1, 9, 9), 0);  /* already done */
    assert_int_equal(kc_fetcher_add(&f, "t", 2, 1, 0, -1), 0);
    struct sl_buf b;
    sl_buf_init(&b);
    kc_fetch_req(&b, 11, &f, 1);
    struct sl_reader r;
    reader_of(&r, &b);
    assert_int_equal(sl_reader_i32(&r), -1);  /* replica */
    assert_int_equal(sl_reader_i32(&r), 500); /* max_wait */
    assert_int_equal(sl_reader_i32(&r), 1);
    sl_reader_i32(&r);
    assert_int_equal(sl_reader_i8(&r), 0);
    assert_int_equal(sl_reader_i32(&r), 0);  /* session id */
    assert_int_equal(sl_reader_i32(&r), -1); /* session epoch */
    assert_int_equal(sl_reader_i32(&r), 1);  /* one topic: t */
    assert_true(sl_bytes_eq_str(sl_reader_string(&r), "t"));
    assert_int_equal(sl_reader_i32(&r), 2); /* partitions 0 and 2 */
    assert_int_equal(sl_reader_i32(&r), 0);
    assert_int_equal(sl_reader_i32(&r), -1); /* leader epoch */
    assert_int_equal(sl_reader_i64(&r), 5);
    assert_int_equal(sl_reader_i64(&r), -1);
    sl_reader_i32(&r);
    assert_int_equal(sl_reader_i32(&r), 2);
    sl_reader_skip(&r, 4 + 8 + 8 + 4);
    assert_int_equal(sl_reader_i32(&r), 0); /* forgotten */
    assert_true(sl_bytes_eq_str(sl_reader_string(&r), ""));
    assert_int_equal(r.err, 0);
    assert_int_equal(r.pos, r.len);
    sl_buf_fini(&b);
    kc_fetcher_fini(&f);
}

static void test_fetch_records(void **state)
{
    for (int16_t v = 4; v <= 11; v++) {
        struct sl_buf recs, b;
        sl_buf_init(&recs);
        sl_buf_init(&b);
        put_batch(&recs, 0, 5, false); /* 0..4: the position is 3, so 3 and 4 */
        put_batch(&recs, 5, 3, true);  /* 5..7, gzip */
        size_t whole = recs.len;
        put_batch(&recs, 8, 4, false);
        sl_buf_truncate(&recs, whole + 20); /* a cut batch at the end: asked again later */
        build_fetch(&b, v, 0, &recs);
        struct kc_fetcher f;
        kc_fetcher_init(&f, NULL);
        assert_int_equal(kc_fetcher_add(&f, "t", 0, 1, 3, -1), 0);
        struct seen s = {.n = 0};
        struct sl_reader r;
        reader_of(&r, &b);
        struct sl_err err = {{0}};
        assert_int_equal(kc_fetch_parse(&f, &r, v, 1, record_fn, &s, &err), 0);
        assert_int_equal(r.pos, r.len);
        assert_int_equal(s.n, 5);
        assert_string_equal(s.values[0], "v3");
        assert_string_equal(s.values[4], "v7");
        assert_int_equal(f.parts[0].offset, 8);
        assert_int_equal(f.parts[0].high_watermark, 100);
        assert_int_equal(f.records, 5);

        /* A stop offset ends the partition mid-batch; the callback's stop keeps the position
         * just past the last record handed out. */
        kc_fetcher_clear(&f);
        assert_int_equal(kc_fetcher_add(&f, "t", 0, 1, 0, 6), 0);
        s.n = 0;
        reader_of(&r, &b);
        assert_int_equal(kc_fetch_parse(&f, &r, v, 1, record_fn, &s, &err), 0);
        assert_int_equal(s.n, 6);
        assert_true(f.parts[0].done);
        assert_true(kc_fetcher_done(&f));
        kc_fetcher_clear(&f);
        assert_int_equal(kc_fetcher_add(&f, "t", 0, 1, 0, -1), 0);
        s.n = 0;
        s.stop_after = 2;
        reader_of(&r, &b);
        assert_int_equal(kc_fetch_parse(&f, &r, v, 1, record_fn, &s, &err), 1);
        assert_int_equal(s.n, 2);
        assert_int_equal(f.parts[0].offset, 2);

        /* An answer to a Fetch sent ahead from offset 8, which the stop above made wrong: the
         * partition's data is dropped and its position stays. */
        f.parts[0].asked = 8;
        s.n = 0;
        s.stop_after = 0;
        reader_of(&r, &b);
        assert_int_equal(kc_fetch_parse(&f, &r, v, 1, record_fn, &s, &err), 0);
        assert_int_equal(s.n, 0);
        assert_int_equal(f.parts[0].offset, 2);
        /* Asked from where it stands: handed out. */
        f.parts[0].asked = 2;
        reader_of(&r, &b);
        assert_int_equal(kc_fetch_parse(&f, &r, v, 1, record_fn, &s, &err), 0);
        assert_int_equal(s.n, 6);
        assert_int_equal(f.parts[0].offset, 8);
        kc_fetcher_fini(&f);
        sl_buf_fini(&recs);
        sl_buf_fini(&b);
    }
}

static void test_fetch_errors(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    struct kc_fetcher f;
    kc_fetcher_init(&f, NULL);
    assert_int_equal(kc_fetcher_add(&f, "t", 0, 1, 3, -1), 0);
    struct seen s = {.n = 0};
    struct sl_reader r;
    struct sl_err err = {{0}};
    /* Out of range: the position waits for a reset (ListOffsets) before the next fetch. */
    build_fetch(&b, 11, KAFKA_E_OFFSET_OUT_OF_RANGE, NULL);
    reader_of(&r, &b);
    assert_int_equal(kc_fetch_parse(&f, &r, 11, 1, record_fn, &s, &err), 0);
    assert_true(f.parts[0].offset < 0);
    /* Leader moved: refreshed from metadata next round. */
    f.parts[0].offset = 3;
    sl_buf_reset(&b);
    build_fetch(&b, 11, KAFKA_E_NOT_LEADER_FOR_PARTITION, NULL);
    reader_of(&r, &b);
    assert_int_equal(kc_fetch_parse(&f, &r, 11, 1, record_fn, &s, &err), 0);
    assert_int_equal(f.parts[0].leader, -1);
    /* A corrupt batch is an error naming the partition. */
    f.parts[0].leader = 1;
    struct sl_buf recs;
    sl_buf_init(&recs);
    put_batch(&recs, 0, 5, false);
    recs.data[recs.len - 1] ^= 1; /* CRC mismatch */
    sl_buf_reset(&b);
    build_fetch(&b, 11, 0, &recs);
    reader_of(&r, &b);
    assert_int_equal(kc_fetch_parse(&f, &r, 11, 1, record_fn, &s, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "t-0"));
    /* Truncated answers are refused. */
    for (size_t cut = 0; cut < b.len - 1; cut += 7) {
        sl_reader_init(&r, b.data, cut);
        assert_true(kc_fetch_parse(&f, &r, 11, 1, record_fn, &s, &err) < 0);
    }
    assert_int_equal(s.n, 0);
    sl_buf_fini(&recs);
    sl_buf_fini(&b);
    kc_fetcher_fini(&f);
}

/* ---- Groups ------------------------------------------------------------------------------- */

static void test_consumer_protocol(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    const char *topics[] = {"a", "bc"};
    kc_cproto_sub_encode(&b, topics, 2);
    static const uint8_t sub[] = {0, 0, 0,   0,   0,    2,    0,    1,   'a',
                                  0, 2, 'b', 'c', 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(b.len, sizeof(sub));
    assert_memory_equal(b.data, sub, sizeof(sub));
    struct kc_strlist got = {0};
    struct sl_err err;
    assert_int_equal(kc_cproto_sub_decode(sl_buf_view(&b, 0, b.len), &got, &err), 0);
    assert_int_equal(got.len, 2);
    assert_string_equal(got.items[1], "bc");
    kc_strlist_fini(&got);
    /* A v1 subscription (owned_partitions after user_data) decodes the same. */
    sl_buf_patch_i16(&b, 0, 1);
    sl_buf_put_i32(&b, 0);
    assert_int_equal(kc_cproto_sub_decode(sl_buf_view(&b, 0, b.len), &got, &err), 0);
    assert_int_equal(got.len, 2);
    kc_strlist_fini(&got);
    /* Cut short: the count cannot fit in what is left. */
    assert_int_equal(kc_cproto_sub_decode(sl_buf_view(&b, 0, 7), &got, &err), SL_ETOOBIG);
    kc_strlist_fini(&got);
    assert_int_equal(kc_cproto_sub_decode(sl_buf_view(&b, 0, 10), &got, &err), SL_ETRUNC);
    kc_strlist_fini(&got);

    struct kc_tplist a = {0};
    kc_tplist_add(&a, "a", 1, 0, -1);
    kc_tplist_add(&a, "a", 1, 2, -1);
    kc_tplist_add(&a, "bc", 2, 1, -1);
    sl_buf_reset(&b);
    kc_cproto_assign_encode(&b, &a);
    static const uint8_t asg[] = {0, 0,   0,   0, 0, 2, /* version, topics */
                                  0, 1,   'a', 0, 0, 0, 2, 0, 0, 0, 0, 0,    0,    0,    2,   0,
                                  2, 'b', 'c', 0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(b.len, sizeof(asg));
    assert_memory_equal(b.data, asg, sizeof(asg));
    struct kc_tplist back = {0};
    assert_int_equal(kc_cproto_assign_decode(sl_buf_view(&b, 0, b.len), &back, &err), 0);
    assert_int_equal(back.len, 3);
    assert_non_null(kc_tplist_find(&back, "bc", 1));
    kc_tplist_fini(&back);
    /* An empty assignment (a member given nothing) is no partitions. */
    assert_int_equal(kc_cproto_assign_decode((struct sl_bytes){NULL, 0}, &back, &err), 0);
    assert_int_equal(back.len, 0);
    kc_tplist_fini(&a);
    sl_buf_fini(&b);
}

static void member(struct kc_gmember *m, const char *id, const char *t1, const char *t2)
{
    memset(m, 0, sizeof(*m));
    m->member_id = sl_strdup(id);
    m->topics.items = sl_calloc(2, sizeof(char *));
    m->topics.items[m->topics.len++] = sl_strdup(t1);
    if (t2)
        m->topics.items[m->topics.len++] = sl_strdup(t2);
}

static void members_free(struct kc_gmember *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sl_free(m[i].member_id);
        kc_strlist_fini(&m[i].topics);
        kc_tplist_fini(&m[i].assigned);
    }
}

static void test_assign_range(void **state)
{
    /* Kafka's RangeAssignor javadoc: t0, t1 with 3 partitions each, members C0 and C1:
     * C0 [t0p0, t0p1, t1p0, t1p1], C1 [t0p2, t1p2]. Members arrive unsorted. */
    struct kc_gmember m[2];
    member(&m[0], "C1", "t0", "t1");
    member(&m[1], "C0", "t0", "t1");
    struct kc_topic_parts t[] = {{"t1", 3}, {"t0", 3}};
    assert_int_equal(kc_assign(KC_ASSIGN_RANGE, m, 2, t, 2), 0);
    assert_string_equal(m[0].member_id, "C0");
    assert_int_equal(m[0].assigned.len, 4);
    assert_non_null(kc_tplist_find(&m[0].assigned, "t0", 1));
    assert_non_null(kc_tplist_find(&m[0].assigned, "t1", 1));
    assert_int_equal(m[1].assigned.len, 2);
    assert_non_null(kc_tplist_find(&m[1].assigned, "t0", 2));
    assert_non_null(kc_tplist_find(&m[1].assigned, "t1", 2));
    members_free(m, 2);
}

static void test_assign_roundrobin(void **state)
{
    /* Kafka's RoundRobinAssignor javadoc: C0 [t0p0, t0p2, t1p1], C1 [t0p1, t1p0, t1p2]. */
    struct kc_gmember m[3];
    member(&m[0], "C0", "t0", "t1");
    member(&m[1], "C1", "t0", "t1");
    struct kc_topic_parts t[] = {{"t0", 3}, {"t1", 3}};
    assert_int_equal(kc_assign(KC_ASSIGN_ROUNDROBIN, m, 2, t, 2), 0);
    assert_int_equal(m[0].assigned.len, 3);
    assert_non_null(kc_tplist_find(&m[0].assigned, "t0", 0));
    assert_non_null(kc_tplist_find(&m[0].assigned, "t0", 2));
    assert_non_null(kc_tplist_find(&m[0].assigned, "t1", 1));
    assert_non_null(kc_tplist_find(&m[1].assigned, "t1", 2));
    members_free(m, 2);
    /* Unequal subscriptions: a member is skipped for topics it does not want; more members
     * than partitions leaves one without any. */
    member(&m[0], "A", "x", NULL);
    member(&m[1], "B", "x", "y");
    member(&m[2], "C", "z", NULL);
    struct kc_topic_parts t2[] = {{"x", 1}, {"y", 2}};
    assert_int_equal(kc_assign(KC_ASSIGN_ROUNDROBIN, m, 3, t2, 2), 0);
    assert_int_equal(m[0].assigned.len, 1);
    assert_int_equal(m[1].assigned.len, 2);
    assert_int_equal(m[2].assigned.len, 0);
    members_free(m, 3);
}

static void test_join_sync(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    enum kc_assignor prefs[] = {KC_ASSIGN_RANGE};
    const uint8_t meta[2] = {9, 9};
    kc_join_req(&b, 5, "g", 10000, 20000, "", prefs, 1, (struct sl_bytes){meta, 2});
    static const uint8_t want[] = {
        0, 1, 'g',  0,    0,   0x27, 0x10, 0,   0,   0x4e, 0x20, /* group, session, rebalance */
        0, 0, 0xff, 0xff,                                        /* member "", instance null */
        0, 8, 'c',  'o',  'n', 's',  'u',  'm', 'e', 'r',        /* protocol_type */
        0, 0, 0,    1,    0,   5,    'r',  'a', 'n', 'g',  'e',  0, 0, 0, 2, 9, 9,
    };
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    /* v0 has neither the rebalance timeout nor the instance id. */
    sl_buf_reset(&b);
    kc_join_req(&b, 0, "g", 10000, 20000, "", prefs, 1, (struct sl_bytes){meta, 2});
    assert_int_equal(b.len, sizeof(want) - 6);

    /* A leader's JoinGroup answer (v5: members with instance ids). */
    sl_buf_reset(&b);
    sl_buf_put_i32(&b, 0);
    sl_buf_put_i16(&b, 0);
    sl_buf_put_i32(&b, 4);
    put_str(&b, "range");
    put_str(&b, "m1");
    put_str(&b, "m1");
    sl_buf_put_i32(&b, 1);
    put_str(&b, "m1");
    put_str(&b, NULL);
    struct sl_buf sub;
    sl_buf_init(&sub);
    const char *topics[] = {"t"};
    kc_cproto_sub_encode(&sub, topics, 1);
    sl_buf_put_bytes(&b, sl_buf_view(&sub, 0, sub.len));
    struct sl_reader r;
    reader_of(&r, &b);
    struct kc_join_res j = {0};
    struct sl_err err;
    assert_int_equal(kc_join_parse(&r, 5, &j, &err), 0);
    assert_int_equal(r.pos, r.len);
    assert_int_equal(j.generation, 4);
    assert_string_equal(j.leader, "m1");
    assert_int_equal(j.nmembers, 1);
    assert_string_equal(j.members[0].topics.items[0], "t");
    struct kc_topic_parts tp[] = {{"t", 2}};
    assert_int_equal(kc_assign(KC_ASSIGN_RANGE, j.members, 1, tp, 1), 0);
    sl_buf_reset(&b);
    kc_sync_req(&b, 3, "g", 4, "m1", j.members, 1);
    reader_of(&r, &b);
    assert_true(sl_bytes_eq_str(sl_reader_string(&r), "g"));
    assert_int_equal(sl_reader_i32(&r), 4);
    assert_true(sl_bytes_eq_str(sl_reader_string(&r), "m1"));
    assert_null(sl_reader_string(&r).p); /* instance id */
    assert_int_equal(sl_reader_i32(&r), 1);
    assert_true(sl_bytes_eq_str(sl_reader_string(&r), "m1"));
    struct sl_bytes assignment = sl_reader_bytes(&r);
    assert_int_equal(r.pos, r.len);
    /* The SyncGroup answer carries it back. */
    struct sl_buf ans;
    sl_buf_init(&ans);
    sl_buf_put_i32(&ans, 0);
    sl_buf_put_i16(&ans, 0);
    sl_buf_put_bytes(&ans, assignment);
    reader_of(&r, &ans);
    int16_t code;
    struct kc_tplist mine = {0};
    assert_int_equal(kc_sync_parse(&r, 1, &code, &mine, &err), 0);
    assert_int_equal(code, 0);
    assert_int_equal(mine.len, 2);
    kc_tplist_fini(&mine);
    kc_join_res_fini(&j);
    sl_buf_fini(&ans);
    sl_buf_fini(&sub);
    sl_buf_fini(&b);
}

static void test_commit_fetch_offsets(void **state)
{
    struct kc_tplist l = {0};
    kc_tplist_add(&l, "t", 1, 1, 50);
    kc_tplist_add(&l, "t", 1, 0, 40);
    kc_tplist_sort(&l);
    struct sl_buf b;
    sl_buf_init(&b);
    for (int16_t v = 2; v <= 7; v++) {
        sl_buf_reset(&b);
        kc_commit_req(&b, v, "g", -1, "", &l);
        size_t part = 4 + 8 + (v >= 6 ? 4 : 0) + 2;
        size_t want = 3 + 4 + 2 + (v >= 7 ? 2 : 0) + (v <= 4 ? 8 : 0) + 4 + 3 + 4 + 2 * part;
        assert_int_equal(b.len, want);
    }
    sl_buf_reset(&b);
    kc_commit_req(&b, 2, "g", 3, "m", &l);
    struct sl_reader r;
    reader_of(&r, &b);
    sl_reader_string(&r);
    assert_int_equal(sl_reader_i32(&r), 3);
    sl_reader_string(&r);
    assert_int_equal(sl_reader_i64(&r), -1); /* retention: the broker's */
    assert_int_equal(sl_reader_i32(&r), 1);
    sl_reader_string(&r);
    assert_int_equal(sl_reader_i32(&r), 2);
    assert_int_equal(sl_reader_i32(&r), 0); /* sorted */
    assert_int_equal(sl_reader_i64(&r), 40);

    /* OffsetCommit answer: per-partition codes. */
    sl_buf_reset(&b);
    sl_buf_put_i32(&b, 0);
    sl_buf_put_i32(&b, 1);
    put_str(&b, "t");
    sl_buf_put_i32(&b, 2);
    sl_buf_put_i32(&b, 0);
    sl_buf_put_i16(&b, 0);
    sl_buf_put_i32(&b, 1);
    sl_buf_put_i16(&b, KAFKA_E_REBALANCE_IN_PROGRESS);
    reader_of(&r, &b);
    struct sl_err err;
    assert_int_equal(kc_commit_parse(&r, 3, &l, &err), 0);
    assert_int_equal(kc_tplist_find(&l, "t", 1)->error_code, KAFKA_E_REBALANCE_IN_PROGRESS);
    assert_int_equal(kc_err_kafka(&err, KAFKA_E_REBALANCE_IN_PROGRESS, "x"), KC_EREJOIN);

    /* OffsetFetch v5 answer, and the null topics of "every partition". */
    sl_buf_reset(&b);
    kc_offset_fetch_req(&b, 5, "g", NULL);
    static const uint8_t all[] = {0, 1, 'g', 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(b.len, sizeof(all));
    assert_memory_equal(b.data, all, sizeof(all));
    sl_buf_reset(&b);
    sl_buf_put_i32(&b, 0);
    sl_buf_put_i32(&b, 1);
    put_str(&b, "t");
    sl_buf_put_i32(&b, 1);
    sl_buf_put_i32(&b, 0);
    sl_buf_put_i64(&b, 40);
    sl_buf_put_i32(&b, -1);
    put_str(&b, NULL);
    sl_buf_put_i16(&b, 0);
    sl_buf_put_i16(&b, 0);
    reader_of(&r, &b);
    struct kc_tplist got = {0};
    int16_t code = -5;
    assert_int_equal(kc_offset_fetch_parse(&r, 5, &got, &code, &err), 0);
    assert_int_equal(r.pos, r.len);
    assert_int_equal(code, 0);
    assert_int_equal(got.len, 1);
    assert_int_equal(got.items[0].offset, 40);
    kc_tplist_fini(&got);
    kc_tplist_fini(&l);
    sl_buf_fini(&b);
}

static void test_describe_list_groups(void **state)
{
    struct sl_buf b, asg;
    sl_buf_init(&b);
    sl_buf_init(&asg);
    struct kc_tplist a = {0};
    kc_tplist_add(&a, "t", 1, 0, -1);
    kc_cproto_assign_encode(&asg, &a);
    sl_buf_put_i32(&b, 0);
    sl_buf_put_i32(&b, 1);
    sl_buf_put_i16(&b, 0);
    put_str(&b, "g");
    put_str(&b, "Stable");
    put_str(&b, "consumer");
    put_str(&b, "range");
    sl_buf_put_i32(&b, 1);
    put_str(&b, "m1");
    put_str(&b, "sluice");
    put_str(&b, "/127.0.0.1");
    sl_buf_put_bytes(&b, SL_BYTES_STR(""));
    sl_buf_put_bytes(&b, sl_buf_view(&asg, 0, asg.len));
    struct sl_reader r;
    reader_of(&r, &b);
    struct kc_group_desc d = {0};
    struct sl_err err;
    assert_int_equal(kc_describe_groups_parse(&r, 1, &d, &err), 0);
    assert_string_equal(d.state, "Stable");
    assert_int_equal(d.nmembers, 1);
    assert_string_equal(d.members[0].client_host, "/127.0.0.1");
    assert_non_null(kc_tplist_find(&d.members[0].assigned, "t", 0));
    kc_group_desc_fini(&d);

    sl_buf_reset(&b);
    sl_buf_put_i32(&b, 0);
    sl_buf_put_i16(&b, 0);
    sl_buf_put_i32(&b, 2);
    put_str(&b, "g1");
    put_str(&b, "consumer");
    put_str(&b, "g2");
    put_str(&b, "");
    reader_of(&r, &b);
    struct kc_group_info *g = NULL;
    size_t n = 0;
    assert_int_equal(kc_list_groups_parse(&r, 1, &g, &n, &err), 0);
    reader_of(&r, &b); /* a second broker naming the same groups adds none */
    assert_int_equal(kc_list_groups_parse(&r, 1, &g, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(g[1].group_id, "g2");
    kc_group_infos_free(g, n);
    kc_tplist_fini(&a);
    sl_buf_fini(&asg);
    sl_buf_fini(&b);
}

/* ---- Output helpers ----------------------------------------------------------------------- */

static void test_json_str(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    const char in[] = "a\"b\\c\n\x01 \xc3\xa9 \xff\xe2\x82";
    cli_json_str(&b, in, sizeof(in) - 1);
    sl_buf_append(&b, "", 1);
    assert_string_equal((char *)b.data, "\"a\\\"b\\\\c\\n\\u0001 \xc3\xa9 \\u00ff\\u00e2\\u0082\"");
    sl_buf_reset(&b);
    cli_json_str(&b, NULL, 0);
    sl_buf_append(&b, "", 1);
    assert_string_equal((char *)b.data, "null");
    sl_buf_fini(&b);
}

static void test_times(void **state)
{
    int64_t ms;
    struct sl_err err;
    assert_int_equal(cli_parse_time("2026-11-22T10:00:00Z", &ms, &err), 0);
    assert_int_equal(ms, 1795341600000LL);
    assert_int_equal(cli_parse_time("2026-11-22T11:00:00.5+01:00", &ms, &err), 0);
    assert_int_equal(ms, 1795341600500LL);
    assert_int_equal(cli_parse_time("2026-11-22 10:00", &ms, &err), 0);
    assert_int_equal(ms, 1795341600000LL);
    assert_int_equal(cli_parse_time("2026-11-22", &ms, &err), 0);
    assert_int_equal(ms, 1795305600000LL);
    assert_int_equal(cli_parse_time("@123", &ms, &err), 0);
    assert_int_equal(ms, 123);
    const char *bad[] = {"",  "2026-13-01", "2026-11-22T25:00",      "yesterday",
                         "@", "@-5",        "2026-11-22T10:00:00+1", "2026-11-22T10:00:00Zx"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cli_parse_time(bad[i], &ms, &err), SL_EPARSE);
    char buf[40];
    cli_format_time(1795341600123LL, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-22T10:00:00.123Z");
    cli_format_time(-1, buf, sizeof(buf));
    assert_string_equal(buf, "-");
}

static void test_table(void **state)
{
    static const char *const head[] = {"NAME", "COUNT"};
    struct cli_table t;
    cli_table_init(&t, head, 2);
    cli_table_row(&t, (const char *const[]){"alpha", "5"});
    cli_table_row(&t, (const char *const[]){"b", "12345"});
    char *out = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&out, &len);
    cli_table_print(&t, fp);
    fclose(fp);
    assert_string_equal(out, "NAME   COUNT\nalpha      5\nb      12345\n");
    free(out);
    cli_table_fini(&t);
}

static void test_exit_codes(void **state)
{
    assert_int_equal(cli_exit_code(0), CLI_EXIT_OK);
    assert_int_equal(cli_exit_code(KC_EUNREACH), CLI_EXIT_UNREACH);
    assert_int_equal(cli_exit_code(KC_ENOTFOUND), CLI_EXIT_NOTFOUND);
    assert_int_equal(cli_exit_code(KC_EKAFKA), CLI_EXIT_FAIL);
    assert_int_equal(kc_err_kafka(NULL, KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION, "x"), KC_ENOTFOUND);
    assert_string_equal(kc_err_name(KAFKA_E_MEMBER_ID_REQUIRED), "MEMBER_ID_REQUIRED");
    assert_string_equal(kc_err_name(9999), "UNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conn_framing),
        cmocka_unit_test(test_conn_version),
        cmocka_unit_test(test_meta_request),
        cmocka_unit_test(test_meta_response),
        cmocka_unit_test(test_meta_bad_broker),
        cmocka_unit_test(test_list_offsets),
        cmocka_unit_test(test_produce),
        cmocka_unit_test(test_create_delete),
        cmocka_unit_test(test_describe_configs),
        cmocka_unit_test(test_log_dirs),
        cmocka_unit_test(test_fetch_request),
        cmocka_unit_test(test_fetch_records),
        cmocka_unit_test(test_fetch_errors),
        cmocka_unit_test(test_consumer_protocol),
        cmocka_unit_test(test_assign_range),
        cmocka_unit_test(test_assign_roundrobin),
        cmocka_unit_test(test_join_sync),
        cmocka_unit_test(test_commit_fetch_offsets),
        cmocka_unit_test(test_describe_list_groups),
        cmocka_unit_test(test_json_str),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_exit_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
