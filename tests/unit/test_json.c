/* Unit tests for common/json.c: escaping always yields valid UTF-8 JSON string
 * contents (invalid bytes become U+FFFD), and timestamps are RFC 3339 UTC with microseconds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/json.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static char *esc(const char *s, size_t n)
{
    static char out[4096];
    struct sl_buf b;
    sl_buf_init(&b);
    /* true exactly when nothing needed repair */
    assert_int_equal(sl_json_escape(&b, (const uint8_t *)s, n),
                     sl_utf8_valid((const uint8_t *)s, n));
    assert_int_equal(sl_buf_error(&b), 0);
    assert_true(b.len < sizeof(out));
    memcpy(out, b.data ? (const char *)b.data : "", b.len);
    out[b.len] = '\0';
    sl_buf_fini(&b);
    return out;
}

static void test_plain_and_escapes(void **state)
{
    assert_string_equal(esc("", 0), "");
    assert_string_equal(esc("hello world", 11), "hello world");
    assert_string_equal(esc("a\"b\\c", 5), "a\\\"b\\\\c");
    assert_string_equal(esc("\n\r\t\b\f", 5), "\\n\\r\\t\\b\\f");
    /* DEL is escaped too: JSON allows it raw, but it is a control character on a terminal. */
    assert_string_equal(esc("\x01\x1f\x7f", 3), "\\u0001\\u001f\\u007f");
    assert_string_equal(esc("a\0b", 3), "a\\u0000b");
    assert_string_equal(esc("/", 1), "/");
}

static void test_valid_utf8_kept(void **state)
{
    assert_string_equal(esc("\xc3\xa9t\xc3\xa9", 5), "\xc3\xa9t\xc3\xa9"); /* été */
    assert_string_equal(esc("\xe2\x82\xac", 3), "\xe2\x82\xac");           /* € */
    assert_string_equal(esc("\xf0\x9f\x98\x80", 4), "\xf0\x9f\x98\x80");   /* 😀 */
    assert_string_equal(esc("\xf4\x8f\xbf\xbf", 4), "\xf4\x8f\xbf\xbf");   /* U+10FFFF */
    assert_string_equal(esc("\xed\x9f\xbf", 3), "\xed\x9f\xbf");           /* U+D7FF */
}

static void test_invalid_utf8_replaced(void **state)
{
    const char *r = "\\ufffd";
    assert_string_equal(esc("\xff", 1), r);
    assert_string_equal(esc("\x80", 1), r);                    /* lone continuation */
    assert_string_equal(esc("\xc0\xaf", 2), "\\ufffd\\ufffd"); /* overlong '/' */
    assert_string_equal(esc("\xc1\xbf", 2), "\\ufffd\\ufffd");
    assert_string_equal(esc("\xe0\x80\xaf", 3), "\\ufffd\\ufffd\\ufffd"); /* overlong */
    assert_string_equal(esc("\xed\xa0\x80", 3), "\\ufffd\\ufffd\\ufffd"); /* surrogate */
    assert_string_equal(esc("\xf0\x80\x80\xaf", 4), "\\ufffd\\ufffd\\ufffd\\ufffd");
    assert_string_equal(esc("\xf4\x90\x80\x80", 4), "\\ufffd\\ufffd\\ufffd\\ufffd");
    assert_string_equal(esc("\xf5\x80\x80\x80", 4), "\\ufffd\\ufffd\\ufffd\\ufffd");
    assert_string_equal(esc("a\xc3", 2), "a\\ufffd");            /* cut at the end */
    assert_string_equal(esc("\xe2\x82x", 3), "\\ufffd\\ufffdx"); /* cut in the middle */
}

/* Valid UTF-8 without control bytes, '"' only after a backslash: what a JSON parser needs. */
static bool json_string_ok(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c < 0x20)
            return false;
        if (c == '\\') {
            i++;
            if (i >= n || !strchr("\"\\/bfnrtu", p[i]))
                return false;
            continue;
        }
        if (c == '"')
            return false;
        if (c >= 0x80) {
            size_t l = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
            if (l == 0 || i + l > n)
                return false;
            for (size_t k = 1; k < l; k++)
                if ((p[i + k] & 0xc0) != 0x80)
                    return false;
            i += l - 1;
        }
    }
    return true;
}

/* Random bytes of every kind always give a well-formed JSON string body. */
static void test_random_bytes(void **state)
{
    srandom(42);
    uint8_t in[512];
    struct sl_buf b;
    sl_buf_init(&b);
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)random() % sizeof(in);
        for (size_t i = 0; i < n; i++)
            in[i] = (uint8_t)random();
        sl_buf_reset(&b);
        assert_int_equal(sl_json_escape(&b, in, n), sl_utf8_valid(in, n));
        assert_int_equal(sl_buf_error(&b), 0);
        assert_true(json_string_ok(b.data, b.len));
        assert_true(b.len >= n); /* nothing dropped: each byte gives one or more */
    }
    sl_buf_fini(&b);
}

static void test_time(void **state)
{
    struct sl_json_clock c;
    sl_json_clock_init(&c);
    char out[32];
    assert_int_equal(sl_json_time_double(&c, 0.0, out), 27);
    assert_string_equal(out, "1970-01-01T00:00:00.000000Z");
    assert_int_equal(sl_json_time_double(&c, 1795341600.123456, out), 27);
    assert_string_equal(out, "2026-11-22T10:00:00.123456Z");
    /* Same second from the cache, then the next one. */
    assert_int_equal(sl_json_time_double(&c, 1795341600.9, out), 27);
    assert_string_equal(out, "2026-11-22T10:00:00.900000Z");
    assert_int_equal(sl_json_time_double(&c, 1795341600.9999996, out), 27);
    assert_string_equal(out, "2026-11-22T10:00:01.000000Z");
    assert_int_equal(sl_json_time_double(&c, 1e300, out), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_escapes),
        cmocka_unit_test(test_valid_utf8_kept),
        cmocka_unit_test(test_invalid_utf8_replaced),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
