/* Unit tests for the growable buffer, its Kafka writers and backpatched holes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/mem.h"

#include <errno.h>
#include <string.h>

static void expect_bytes(const struct sl_buf *b, const uint8_t *want, size_t n)
{
    assert_int_equal(b->err, 0);
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
}

static void test_fixed_width_big_endian(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    sl_buf_put_i8(&b, -1);
    sl_buf_put_i16(&b, 0x1234);
    sl_buf_put_i32(&b, -2);
    sl_buf_put_u32(&b, 0xdeadbeef);
    sl_buf_put_i64(&b, INT64_MIN);
    const uint8_t want[] = {0xff, 0x12, 0x34, 0xff, 0xff, 0xff, 0xfe, 0xde, 0xad, 0xbe,
                            0xef, 0x80, 0,    0,    0,    0,    0,    0,    0};
    expect_bytes(&b, want, sizeof(want));
    sl_buf_fini(&b);
}

static void test_varints_match_kafka_encoding(void **state)
{
    /* Kafka's ByteUtils: zigzag maps 0,-1,1,-2 to 0,1,2,3. */
    struct {
        int64_t v;
        uint8_t enc[10];
        size_t n;
    } cases[] = {
        {0, {0x00}, 1},
        {-1, {0x01}, 1},
        {1, {0x02}, 1},
        {-64, {0x7f}, 1},
        {64, {0x80, 0x01}, 2},
        {300, {0xd8, 0x04}, 2},
        {INT32_MAX, {0xfe, 0xff, 0xff, 0xff, 0x0f}, 5},
        {INT32_MIN, {0xff, 0xff, 0xff, 0xff, 0x0f}, 5},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sl_buf b;
        sl_buf_init(&b);
        sl_buf_put_varint(&b, (int32_t)cases[i].v);
        expect_bytes(&b, cases[i].enc, cases[i].n);
        sl_buf_reset(&b);
        sl_buf_put_varlong(&b, cases[i].v);
        expect_bytes(&b, cases[i].enc, cases[i].n);
        sl_buf_fini(&b);
    }
    struct sl_buf b;
    sl_buf_init(&b);
    sl_buf_put_varlong(&b, INT64_MIN);
    const uint8_t min64[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    expect_bytes(&b, min64, sizeof(min64));
    sl_buf_reset(&b);
    sl_buf_put_uvarint(&b, UINT32_MAX);
    const uint8_t umax[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    expect_bytes(&b, umax, sizeof(umax));
    sl_buf_fini(&b);
}

static void test_strings_and_bytes(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    sl_buf_put_string(&b, SL_BYTES_STR("ab"));
    sl_buf_put_string(&b, SL_BYTES_NULL);
    sl_buf_put_bytes(&b, SL_BYTES_STR("c"));
    sl_buf_put_bytes(&b, SL_BYTES_NULL);
    sl_buf_put_varbytes(&b, SL_BYTES_STR("d"));
    sl_buf_put_varbytes(&b, SL_BYTES_NULL);
    sl_buf_put_string(&b, SL_BYTES_STR(""));
    const uint8_t want[] = {0,   2,    'a',  'b',  0xff, 0xff, 0,   0,    0, 1,
                            'c', 0xff, 0xff, 0xff, 0xff, 0x02, 'd', 0x01, 0, 0};
    expect_bytes(&b, want, sizeof(want));
    sl_buf_fini(&b);
}

static void test_string_over_int16_is_sticky_error(void **state)
{
    static uint8_t big[INT16_MAX + 1];
    struct sl_buf b;
    sl_buf_init(&b);
    assert_int_equal(sl_buf_put_string(&b, (struct sl_bytes){big, sizeof(big)}), SL_ETOOBIG);
    /* Sticky: later writes are no-ops and report the first error. */
    assert_int_equal(sl_buf_put_i32(&b, 1), SL_ETOOBIG);
    assert_int_equal(b.len, 0);
    assert_int_equal(sl_buf_put_string(&b, (struct sl_bytes){big, INT16_MAX}), SL_ETOOBIG);
    sl_buf_reset(&b);
    assert_int_equal(sl_buf_put_string(&b, (struct sl_bytes){big, INT16_MAX}), 0);
    assert_int_equal(b.len, 2 + INT16_MAX);
    sl_buf_fini(&b);
}

static void test_holes_are_backpatched(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    size_t len_at = sl_buf_hole(&b, 4);
    /* Force several reallocations between hole and patch: offsets must survive them. */
    for (int i = 0; i < 1000; i++)
        sl_buf_put_i32(&b, i);
    size_t crc_at = sl_buf_hole(&b, 8);
    sl_buf_patch_i32(&b, len_at, (int32_t)(b.len - 4));
    sl_buf_patch_i64(&b, crc_at, 0x0102030405060708);
    sl_buf_patch_i16(&b, 4, 0x7777);
    assert_int_equal(b.err, 0);
    assert_int_equal(sl_be32(b.data), 4000 + 8);
    assert_int_equal(sl_be64(b.data + crc_at), 0x0102030405060708);
    assert_int_equal(sl_be16(b.data + 4), 0x7777);
    /* A patch that does not fit is ignored, never written past the end. */
    size_t before = b.len;
    sl_buf_patch_u32(&b, b.len - 3, 0xffffffff);
    sl_buf_patch_u32(&b, SIZE_MAX - 1, 1);
    assert_int_equal(b.len, before);
    assert_int_equal(sl_be32(b.data + b.len - 4), 0x05060708);
    sl_buf_fini(&b);
}

static void test_view_bounds(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    sl_buf_append_str(&b, "hello");
    assert_true(sl_bytes_eq_str(sl_buf_view(&b, 1, 3), "ell"));
    assert_true(sl_bytes_eq_str(sl_buf_view(&b, 5, 0), ""));
    assert_null(sl_buf_view(&b, 6, 0).p);
    assert_null(sl_buf_view(&b, 2, 4).p);
    assert_null(sl_buf_view(&b, 1, SIZE_MAX).p);
    sl_buf_truncate(&b, 2);
    assert_int_equal(b.len, 2);
    sl_buf_truncate(&b, 10);
    assert_int_equal(b.len, 2);
    sl_buf_fini(&b);
    sl_buf_fini(NULL);
}

static void test_fresh_buffer_views_are_empty_not_null(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    struct sl_bytes v = sl_buf_view(&b, 0, 0);
    assert_non_null(v.p);
    assert_int_equal(v.len, 0);
    assert_int_equal(sl_buf_hole(&b, 0), 0);
    assert_int_equal(b.err, 0);
    /* Written as BYTES it is an empty value (length 0), not a null (length -1). */
    struct sl_buf out;
    sl_buf_init(&out);
    sl_buf_put_bytes(&out, v);
    const uint8_t want[] = {0, 0, 0, 0};
    expect_bytes(&out, want, sizeof(want));
    sl_buf_fini(&out);
    sl_buf_fini(&b);
}

static void test_printf_and_equality(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    sl_buf_printf(&b, "%s=%d", "x", 42);
    sl_buf_printf(&b, "%s", "");
    assert_true(sl_bytes_eq_str(sl_buf_view(&b, 0, b.len), "x=42"));
    assert_true(sl_bytes_eq(SL_BYTES_NULL, SL_BYTES_NULL));
    assert_false(sl_bytes_eq(SL_BYTES_NULL, SL_BYTES_STR("")));
    assert_false(sl_bytes_eq(SL_BYTES_STR("a"), SL_BYTES_STR("b")));
    assert_false(sl_bytes_eq_str(SL_BYTES_NULL, ""));
    sl_buf_fini(&b);
}

static void test_reserve_overflow(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    sl_buf_append_str(&b, "x");
    assert_int_equal(sl_buf_reserve(&b, SIZE_MAX), SL_ETOOBIG);
    assert_int_equal(sl_buf_error(&b), SL_ETOOBIG);
    assert_int_equal(b.len, 1);
    sl_buf_fini(&b);
}

static void test_allocation_failure_sweep(void **state)
{
    /* Fail the Nth allocation for every N a full encode needs: the error is sticky, nothing
     * leaks, and once N passes the total the encode succeeds with the right bytes. */
    struct sl_buf ok;
    sl_buf_init(&ok);
    for (int i = 0; i < 500; i++)
        sl_buf_put_i64(&ok, i);
    for (long n = 0;; n++) {
        struct sl_buf b;
        sl_buf_init(&b);
        sl_mem_fail_after(n, 0);
        for (int i = 0; i < 500; i++)
            sl_buf_put_i64(&b, i);
        long failed = sl_mem_failures();
        sl_mem_fail_after(-1, 0);
        if (!failed) {
            assert_int_equal(b.err, 0);
            assert_int_equal(b.len, ok.len);
            assert_memory_equal(b.data, ok.data, ok.len);
            sl_buf_fini(&b);
            break;
        }
        assert_int_equal(b.err, -ENOMEM);
        sl_buf_fini(&b);
        assert_true(n < 100);
    }
    sl_buf_fini(&ok);
}

static void test_mem_countdown(void **state)
{
    sl_mem_fail_after(1, 0);
    void *a = sl_malloc(8);
    void *b = sl_malloc(8);
    void *c = sl_strdup("x");
    assert_non_null(a);
    assert_null(b);
    assert_non_null(c);
    assert_int_equal(sl_mem_failures(), 1);
    sl_free(a);
    sl_free(c);
    sl_mem_fail_after(0, 1);
    assert_null(sl_calloc(1, 1));
    assert_null(sl_strndup("abc", 2));
    assert_int_equal(sl_mem_failures(), 2);
    sl_mem_fail_after(-1, 0);
    char *d = sl_strndup("abc", 2);
    assert_string_equal(d, "ab");
    SL_FREE(d);
    assert_null(d);
}

static void test_err_helpers(void **state)
{
    struct sl_err e;
    assert_int_equal(sl_err_set(&e, SL_EPARSE, "bad %s", "x"), SL_EPARSE);
    assert_string_equal(e.msg, "bad x");
    sl_err_prefix(&e, "conf %d: ", 7);
    assert_string_equal(e.msg, "conf 7: bad x");
    assert_int_equal(sl_err_set(NULL, SL_ETRUNC, "ignored"), SL_ETRUNC);
    sl_err_prefix(NULL, "x");
    assert_string_equal(sl_strerror(-ENOENT), strerror(ENOENT));
    assert_string_equal(sl_strerror(SL_ECORRUPT), "checksum mismatch or corrupt data");
    assert_string_equal(sl_strerror(-999999), "unknown error");
    char longer[1024];
    memset(longer, 'a', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    sl_err_set(&e, SL_EPARSE, "%s", longer);
    assert_int_equal(strlen(e.msg), sizeof(e.msg) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_width_big_endian),
        cmocka_unit_test(test_varints_match_kafka_encoding),
        cmocka_unit_test(test_strings_and_bytes),
        cmocka_unit_test(test_string_over_int16_is_sticky_error),
        cmocka_unit_test(test_holes_are_backpatched),
        cmocka_unit_test(test_view_bounds),
        cmocka_unit_test(test_fresh_buffer_views_are_empty_not_null),
        cmocka_unit_test(test_printf_and_equality),
        cmocka_unit_test(test_reserve_overflow),
        cmocka_unit_test(test_allocation_failure_sweep),
        cmocka_unit_test(test_mem_countdown),
        cmocka_unit_test(test_err_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
