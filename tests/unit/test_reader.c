/* Unit tests for the sticky-error reader and its Kafka primitives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/reader.h"

#include <string.h>

static void test_fixed_width(void **state)
{
    const uint8_t in[] = {0xff, 0x12, 0x34, 0xff, 0xff, 0xff, 0xfe, 0xde, 0xad, 0xbe,
                          0xef, 0x80, 0,    0,    0,    0,    0,    0,    1};
    struct sl_reader r;
    sl_reader_init(&r, in, sizeof(in));
    assert_int_equal(sl_reader_i8(&r), -1);
    assert_int_equal(sl_reader_i16(&r), 0x1234);
    assert_int_equal(sl_reader_i32(&r), -2);
    assert_int_equal(sl_reader_u32(&r), 0xdeadbeef);
    assert_true(sl_reader_i64(&r) == INT64_MIN + 1);
    assert_int_equal(r.err, 0);
    assert_int_equal(sl_reader_left(&r), 0);
}

static void test_truncation_at_every_width(void **state)
{
    const uint8_t in[8] = {0};
    for (size_t avail = 0; avail < 8; avail++) {
        struct sl_reader r;
        sl_reader_init(&r, in, avail);
        (void)sl_reader_i64(&r);
        assert_int_equal(r.err, SL_ETRUNC);
        assert_int_equal(r.err_pos, 0);
        /* Sticky: position frozen, later reads are zero. */
        assert_int_equal(sl_reader_i8(&r), 0);
        assert_int_equal(r.pos, 0);
        assert_int_equal(sl_reader_left(&r), 0);
    }
    struct sl_reader r;
    sl_reader_init(&r, in, 3);
    (void)sl_reader_i16(&r);
    (void)sl_reader_i16(&r);
    assert_int_equal(r.err, SL_ETRUNC);
    assert_int_equal(r.err_pos, 2);
}

static void test_varint_round_trip_and_limits(void **state)
{
    const int64_t values[] = {0,         1,         -1,        63,
                              -64,       64,        -65,       8191,
                              8192,      INT32_MAX, INT32_MIN, (int64_t)INT32_MAX + 1,
                              INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        struct sl_buf b;
        sl_buf_init(&b);
        sl_buf_put_varlong(&b, values[i]);
        struct sl_reader r;
        sl_reader_init(&r, b.data, b.len);
        assert_true(sl_reader_varlong(&r) == values[i]);
        assert_int_equal(r.err, 0);
        assert_int_equal(sl_reader_left(&r), 0);
        if (values[i] >= INT32_MIN && values[i] <= INT32_MAX) {
            sl_buf_reset(&b);
            sl_buf_put_varint(&b, (int32_t)values[i]);
            sl_reader_init(&r, b.data, b.len);
            assert_true(sl_reader_varint(&r) == values[i]);
            assert_int_equal(r.err, 0);
        }
        /* Every proper prefix is a truncation. */
        for (size_t cut = 0; cut + 1 < b.len; cut++) {
            sl_reader_init(&r, b.data, cut);
            (void)sl_reader_varlong(&r);
            assert_int_equal(r.err, SL_ETRUNC);
        }
        sl_buf_fini(&b);
    }
}

static void test_varint_overflow_is_parse_error(void **state)
{
    /* Six bytes with continuation: too long for a 32-bit varint. */
    const uint8_t six[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    struct sl_reader r;
    sl_reader_init(&r, six, sizeof(six));
    (void)sl_reader_varint(&r);
    assert_int_equal(r.err, SL_EPARSE);
    assert_int_equal(r.err_pos, 0);
    /* Fifth byte carrying bits above 32. */
    const uint8_t high[] = {0xff, 0xff, 0xff, 0xff, 0x1f};
    sl_reader_init(&r, high, sizeof(high));
    (void)sl_reader_uvarint(&r);
    assert_int_equal(r.err, SL_EPARSE);
    const uint8_t max32[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    sl_reader_init(&r, max32, sizeof(max32));
    assert_int_equal(sl_reader_uvarint(&r), UINT32_MAX);
    assert_int_equal(r.err, 0);
    /* Eleven bytes for a varlong, and a tenth byte above bit 63. */
    const uint8_t eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    sl_reader_init(&r, eleven, sizeof(eleven));
    (void)sl_reader_varlong(&r);
    assert_int_equal(r.err, SL_EPARSE);
    const uint8_t ten_high[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    sl_reader_init(&r, ten_high, sizeof(ten_high));
    (void)sl_reader_varlong(&r);
    assert_int_equal(r.err, SL_EPARSE);
}

static void test_nullable_strings_and_bytes(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    sl_buf_put_string(&b, SL_BYTES_STR("topic"));
    sl_buf_put_string(&b, SL_BYTES_NULL);
    sl_buf_put_bytes(&b, SL_BYTES_STR(""));
    sl_buf_put_bytes(&b, SL_BYTES_NULL);
    sl_buf_put_varbytes(&b, SL_BYTES_STR("v"));
    sl_buf_put_varbytes(&b, SL_BYTES_NULL);
    struct sl_reader r;
    sl_reader_init(&r, b.data, b.len);
    assert_true(sl_bytes_eq_str(sl_reader_string(&r), "topic"));
    assert_null(sl_reader_string(&r).p);
    struct sl_bytes empty = sl_reader_bytes(&r);
    assert_non_null(empty.p);
    assert_int_equal(empty.len, 0);
    assert_null(sl_reader_bytes(&r).p);
    assert_true(sl_bytes_eq_str(sl_reader_varbytes(&r), "v"));
    assert_null(sl_reader_varbytes(&r).p);
    assert_int_equal(r.err, 0);
    assert_int_equal(sl_reader_left(&r), 0);
    sl_buf_fini(&b);
}

static void test_bad_lengths(void **state)
{
    struct sl_reader r;
    const uint8_t neg2[] = {0xff, 0xfe, 'x'};
    sl_reader_init(&r, neg2, sizeof(neg2));
    assert_null(sl_reader_string(&r).p);
    assert_int_equal(r.err, SL_EPARSE);
    assert_int_equal(r.err_pos, 0);

    /* A length past the end: truncation reported at the length field. */
    const uint8_t longer[] = {0x00, 0x00, 0x00, 0x10, 'a', 'b'};
    sl_reader_init(&r, longer, sizeof(longer));
    assert_null(sl_reader_bytes(&r).p);
    assert_int_equal(r.err, SL_ETRUNC);
    assert_int_equal(r.err_pos, 0);

    const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff};
    sl_reader_init(&r, huge, sizeof(huge));
    assert_null(sl_reader_bytes(&r).p);
    assert_int_equal(r.err, SL_ETRUNC);

    const uint8_t varneg[] = {0x03}; /* zigzag -2 */
    sl_reader_init(&r, varneg, sizeof(varneg));
    assert_null(sl_reader_varbytes(&r).p);
    assert_int_equal(r.err, SL_EPARSE);
}

static void test_array_counts_bounded_before_allocation(void **state)
{
    struct sl_reader r;
    const uint8_t max31[] = {0x7f, 0xff, 0xff, 0xff};
    sl_reader_init(&r, max31, sizeof(max31));
    assert_int_equal(sl_reader_array(&r, 1000, 1), 0);
    assert_int_equal(r.err, SL_ETOOBIG);
    assert_int_equal(r.err_pos, 0);

    /* Under max but more elements than bytes left could hold. */
    const uint8_t three[] = {0, 0, 0, 3, 1, 2, 3, 4, 5};
    sl_reader_init(&r, three, sizeof(three));
    assert_int_equal(sl_reader_array(&r, 10, 2), 0);
    assert_int_equal(r.err, SL_ETOOBIG);
    sl_reader_init(&r, three, sizeof(three));
    assert_int_equal(sl_reader_array(&r, 10, 1), 3);
    assert_int_equal(r.err, 0);
    sl_reader_init(&r, three, sizeof(three));
    assert_int_equal(sl_reader_array(&r, 3, 0), 3);
    sl_reader_init(&r, three, sizeof(three));
    assert_int_equal(sl_reader_array(&r, 2, 0), 0);
    assert_int_equal(r.err, SL_ETOOBIG);

    const uint8_t null_array[] = {0xff, 0xff, 0xff, 0xff};
    sl_reader_init(&r, null_array, sizeof(null_array));
    assert_int_equal(sl_reader_array(&r, 10, 1), -1);
    assert_int_equal(r.err, 0);

    const uint8_t neg5[] = {0xff, 0xff, 0xff, 0xfb};
    sl_reader_init(&r, neg5, sizeof(neg5));
    assert_int_equal(sl_reader_array(&r, 10, 1), 0);
    assert_int_equal(r.err, SL_EPARSE);
}

static void test_describe_names_field_and_offset(void **state)
{
    const uint8_t in[] = {0, 1, 0, 0};
    struct sl_reader r;
    sl_reader_init(&r, in, sizeof(in));
    (void)sl_reader_i16(&r);
    (void)sl_reader_i32(&r);
    struct sl_err e;
    assert_int_equal(sl_reader_describe(&r, &e, "Produce v7"), SL_ETRUNC);
    assert_string_equal(e.msg, "Produce v7: int32 at offset 2 (2 bytes left): input truncated");
    sl_reader_init(&r, in, sizeof(in));
    assert_int_equal(sl_reader_describe(&r, &e, "x"), 0);
}

static void test_raw_and_skip(void **state)
{
    const uint8_t in[] = {1, 2, 3, 4};
    struct sl_reader r;
    sl_reader_init(&r, in, sizeof(in));
    sl_reader_skip(&r, 1);
    struct sl_bytes v = sl_reader_raw(&r, 2);
    assert_int_equal(v.len, 2);
    assert_int_equal(v.p[0], 2);
    sl_reader_skip(&r, 2);
    assert_int_equal(r.err, SL_ETRUNC);
    assert_int_equal(r.err_pos, 3);
    assert_null(sl_reader_raw(&r, 0).p);
    assert_int_equal(sl_reader_fail(&r, SL_EPARSE, "later"), SL_ETRUNC);
}

static void test_empty_reader_yields_empty_views(void **state)
{
    struct sl_reader r;
    sl_reader_init(&r, NULL, 0);
    struct sl_bytes v = sl_reader_raw(&r, 0);
    assert_non_null(v.p);
    assert_int_equal(v.len, 0);
    assert_int_equal(r.err, 0);
    (void)sl_reader_i8(&r);
    assert_int_equal(r.err, SL_ETRUNC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_width),
        cmocka_unit_test(test_truncation_at_every_width),
        cmocka_unit_test(test_varint_round_trip_and_limits),
        cmocka_unit_test(test_varint_overflow_is_parse_error),
        cmocka_unit_test(test_nullable_strings_and_bytes),
        cmocka_unit_test(test_bad_lengths),
        cmocka_unit_test(test_array_counts_bounded_before_allocation),
        cmocka_unit_test(test_describe_names_field_and_offset),
        cmocka_unit_test(test_raw_and_skip),
        cmocka_unit_test(test_empty_reader_yields_empty_views),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
