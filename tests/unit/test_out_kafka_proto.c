/* Unit tests for plugins/out_kafka_proto.c: request frames byte for byte, response decoding,
 * and every truncation and oversized count of a response refused without a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/mem.h"
#include "plugins/out_kafka_proto.h"

#include <string.h>

static const uint8_t apiversions_v0[] = {
    0, 0,  0,   14,            /* size */
    0, 18, 0,   0,             /* api key 18, version 0 */
    0, 0,  0,   9,             /* correlation id */
    0, 4,  'c', 'l', 'i', 'd', /* client id */
};

static void test_apiversions_request(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    assert_int_equal(out_kafka_proto_apiversions_req(&b, 9, "clid"), 0);
    assert_int_equal(b.len, sizeof(apiversions_v0));
    assert_memory_equal(b.data, apiversions_v0, sizeof(apiversions_v0));
    sl_buf_fini(&b);
}

static void test_metadata_request(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    const char *topics[] = {"ab", "c"};
    assert_int_equal(out_kafka_proto_metadata_req(&b, 4, 7, NULL, topics, 2, true), 0);
    static const uint8_t want[] = {
        0, 0, 0, 22, 0, 3, 0,   4,   0, 0, 0,   7, 0xff, 0xff, /* header, null client id */
        0, 0, 0, 2,  0, 2, 'a', 'b', 0, 1, 'c',                /* topics */
        1,                                                     /* allow_auto_topic_creation */
    };
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    /* v1 has no auto-create byte. */
    sl_buf_reset(&b);
    assert_int_equal(out_kafka_proto_metadata_req(&b, 1, 7, NULL, topics, 2, true), 0);
    assert_int_equal(b.len, sizeof(want) - 1);
    assert_int_equal(sl_be32(b.data), (uint32_t)(sizeof(want) - 1 - 4));
    sl_buf_fini(&b);
}

static void test_produce_request(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    assert_int_equal(out_kafka_proto_produce_req(&b, 7, 3, "x", -1, 30000, "t", 5, 100), 0);
    static const uint8_t want[] = {
        0,    0,    0,    0,                                         /* size: patched below */
        0,    0,    0,    7,    0, 0, 0,   3, 0, 1, 'x', 0xff, 0xff, /* transactional_id null */
        0xff, 0xff,                                                  /* acks -1 */
        0,    0,    0x75, 0x30,                                      /* timeout 30000 */
        0,    0,    0,    1,    0, 1, 't',                           /* one topic */
        0,    0,    0,    1,    0, 0, 0,   5,                        /* one partition: 5 */
        0,    0,    0,    100,                                       /* records length */
    };
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data + 4, want + 4, sizeof(want) - 4);
    /* The size counts the 100 batch bytes the caller sends after. */
    assert_int_equal(sl_be32(b.data), (uint32_t)(sizeof(want) - 4 + 100));
    assert_int_equal(
        out_kafka_proto_produce_req(&b, 7, 3, "x", -1, 1, "t", 5, (size_t)INT32_MAX + 1),
        SL_ETOOBIG);
    sl_buf_fini(&b);
}

/* Builds a Metadata v4 response body: 2 brokers, topic "logs" with 2 partitions. */
static void build_metadata(struct sl_buf *b, int16_t version)
{
    if (version >= 3)
        sl_buf_put_i32(b, 0); /* throttle */
    sl_buf_put_i32(b, 2);
    sl_buf_put_i32(b, 1);
    sl_buf_put_string(b, SL_BYTES_STR("h1"));
    sl_buf_put_i32(b, 9092);
    sl_buf_put_string(b, SL_BYTES_NULL);
    sl_buf_put_i32(b, 2);
    sl_buf_put_string(b, SL_BYTES_STR("h2"));
    sl_buf_put_i32(b, 9093);
    sl_buf_put_string(b, SL_BYTES_STR("rack"));
    if (version >= 2)
        sl_buf_put_string(b, SL_BYTES_STR("cluster"));
    sl_buf_put_i32(b, 1); /* controller */
    sl_buf_put_i32(b, 1);
    sl_buf_put_i16(b, 0);
    sl_buf_put_string(b, SL_BYTES_STR("logs"));
    sl_buf_put_i8(b, 0);
    sl_buf_put_i32(b, 2);
    for (int p = 0; p < 2; p++) {
        sl_buf_put_i16(b, p == 1 ? KAFKA_E_LEADER_NOT_AVAILABLE : 0);
        sl_buf_put_i32(b, p);
        sl_buf_put_i32(b, p == 1 ? -1 : 2);
        sl_buf_put_i32(b, 1);
        sl_buf_put_i32(b, 2); /* replicas */
        sl_buf_put_i32(b, 0); /* isr */
    }
}

static void test_metadata_response(void **state)
{
    for (int16_t v = 1; v <= 4; v++) {
        struct sl_buf b;
        sl_buf_init(&b);
        build_metadata(&b, v);
        struct kafka_meta m;
        struct sl_err err = {{0}};
        assert_int_equal(out_kafka_proto_metadata_parse(b.data, b.len, v, &m, &err), 0);
        assert_int_equal(m.nbrokers, 2);
        assert_int_equal(m.brokers[1].node_id, 2);
        assert_true(sl_bytes_eq_str(m.brokers[1].host, "h2"));
        assert_int_equal(m.brokers[1].port, 9093);
        assert_int_equal(m.controller_id, 1);
        assert_int_equal(m.ntopics, 1);
        assert_true(sl_bytes_eq_str(m.topics[0].name, "logs"));
        assert_int_equal(m.topics[0].npartitions, 2);
        assert_int_equal(m.topics[0].partitions[0].leader, 2);
        assert_int_equal(m.topics[0].partitions[1].leader, -1);
        assert_int_equal(m.topics[0].partitions[1].error_code, KAFKA_E_LEADER_NOT_AVAILABLE);
        out_kafka_proto_meta_fini(&m);
        /* Every truncation is an error, never a crash or a leak. */
        for (size_t n = 0; n < b.len; n++) {
            assert_int_not_equal(out_kafka_proto_metadata_parse(b.data, n, v, &m, &err), 0);
            out_kafka_proto_meta_fini(&m);
        }
        sl_buf_fini(&b);
    }
}

static void test_metadata_huge_counts(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    sl_buf_put_i32(&b, 0x7fffffff); /* brokers: 2^31-1 in a few bytes */
    sl_buf_put_i32(&b, 0);
    struct kafka_meta m;
    struct sl_err err = {{0}};
    assert_int_equal(out_kafka_proto_metadata_parse(b.data, b.len, 1, &m, &err), SL_ETOOBIG);
    assert_non_null(strstr(err.msg, "Metadata"));
    out_kafka_proto_meta_fini(&m);
    sl_buf_reset(&b);
    sl_buf_put_i32(&b, -1); /* null brokers */
    sl_buf_put_i32(&b, 1);
    sl_buf_put_i32(&b, 0);
    assert_int_equal(out_kafka_proto_metadata_parse(b.data, b.len, 1, &m, &err), SL_EPARSE);
    out_kafka_proto_meta_fini(&m);
    sl_buf_fini(&b);
}

static void build_produce(struct sl_buf *b, int16_t version, int16_t code)
{
    sl_buf_put_i32(b, 1);
    sl_buf_put_string(b, SL_BYTES_STR("logs"));
    sl_buf_put_i32(b, 2);
    for (int p = 0; p < 2; p++) {
        sl_buf_put_i32(b, p);
        sl_buf_put_i16(b, p == 1 ? code : 0);
        sl_buf_put_i64(b, 1000 + p);
        sl_buf_put_i64(b, -1);
        if (version >= 5)
            sl_buf_put_i64(b, 0);
    }
    sl_buf_put_i32(b, 0);
}

static void test_produce_response(void **state)
{
    for (int16_t v = 3; v <= 7; v++) {
        struct sl_buf b;
        sl_buf_init(&b);
        build_produce(&b, v, KAFKA_E_NOT_LEADER_FOR_PARTITION);
        int16_t code = -99;
        int64_t base = 0;
        struct sl_err err = {{0}};
        assert_int_equal(
            out_kafka_proto_produce_parse(b.data, b.len, v, "logs", 1, &code, &base, &err), 0);
        assert_int_equal(code, KAFKA_E_NOT_LEADER_FOR_PARTITION);
        assert_int_equal(base, 1001);
        assert_int_equal(
            out_kafka_proto_produce_parse(b.data, b.len, v, "logs", 0, &code, &base, &err), 0);
        assert_int_equal(code, 0);
        assert_int_equal(base, 1000);
        assert_int_equal(
            out_kafka_proto_produce_parse(b.data, b.len, v, "logs", 2, &code, &base, &err),
            SL_EPARSE);
        assert_int_equal(
            out_kafka_proto_produce_parse(b.data, b.len, v, "other", 0, &code, &base, &err),
            SL_EPARSE);
        for (size_t n = 0; n < b.len; n++)
            assert_int_not_equal(
                out_kafka_proto_produce_parse(b.data, n, v, "logs", 0, &code, &base, &err), 0);
        sl_buf_fini(&b);
    }
}

static void test_apiversions_response(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    sl_buf_put_i16(&b, 0);
    sl_buf_put_i32(&b, 3);
    int16_t rows[3][3] = {{0, 0, 9}, {3, 0, 12}, {200, 0, 1}};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            sl_buf_put_i16(&b, rows[i][j]);
    struct kafka_api_versions v;
    struct sl_err err = {{0}};
    assert_int_equal(out_kafka_proto_apiversions_parse(b.data, b.len, &v, &err), 0);
    assert_int_equal(v.error_code, 0);
    assert_int_equal(v.max[KAFKA_API_PRODUCE], 9);
    assert_int_equal(v.max[KAFKA_API_METADATA], 12);
    assert_int_equal(v.max[KAFKA_API_APIVERSIONS], -1);
    for (size_t n = 0; n < b.len; n++)
        assert_int_not_equal(out_kafka_proto_apiversions_parse(b.data, n, &v, &err), 0);
    sl_buf_fini(&b);
}

static void test_err_actions(void **state)
{
    assert_int_equal(out_kafka_proto_err_action(0), KAFKA_ERR_OK);
    assert_int_equal(out_kafka_proto_err_action(KAFKA_E_NOT_LEADER_FOR_PARTITION),
                     KAFKA_ERR_REFRESH);
    assert_int_equal(out_kafka_proto_err_action(KAFKA_E_LEADER_NOT_AVAILABLE), KAFKA_ERR_REFRESH);
    assert_int_equal(out_kafka_proto_err_action(KAFKA_E_REQUEST_TIMED_OUT), KAFKA_ERR_RETRY);
    assert_int_equal(out_kafka_proto_err_action(KAFKA_E_NOT_ENOUGH_REPLICAS), KAFKA_ERR_RETRY);
    assert_int_equal(out_kafka_proto_err_action(KAFKA_E_MESSAGE_TOO_LARGE), KAFKA_ERR_FATAL);
    assert_int_equal(out_kafka_proto_err_action(KAFKA_E_INVALID_RECORD), KAFKA_ERR_FATAL);
    /* Unknown codes are retried: giving up would lose records. */
    assert_int_equal(out_kafka_proto_err_action(12345), KAFKA_ERR_RETRY);
    assert_int_equal(out_kafka_proto_err_action(-1), KAFKA_ERR_RETRY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apiversions_request),  cmocka_unit_test(test_metadata_request),
        cmocka_unit_test(test_produce_request),      cmocka_unit_test(test_metadata_response),
        cmocka_unit_test(test_metadata_huge_counts), cmocka_unit_test(test_produce_response),
        cmocka_unit_test(test_apiversions_response), cmocka_unit_test(test_err_actions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
