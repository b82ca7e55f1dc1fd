/* Unit tests for collector/cli/sink_gz.c: every level gives one gzip member that reads back to
 * the input (text, incompressible bytes that outgrow igzip's first buffer, nothing at all), the
 * buffer is reused across calls, and a level out of range is refused by name. Members are read
 * back with common/gzip.c (zlib), an independent decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "collector/cli/sink_gz.h"
#include "common/buf.h"
#include "common/gzip.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Compresses in with g and checks the member: gzip magic, and zlib reads back exactly in. */
static size_t round_trip(struct sink_gz *g, const uint8_t *in, size_t n)
{
    const uint8_t *member = NULL;
    int64_t len = sink_gz_member(g, in, n, &member);
    assert_true(len > 18); /* header and trailer at least */
    assert_non_null(member);
    assert_int_equal(member[0], 0x1f);
    assert_int_equal(member[1], 0x8b);
    struct sl_buf out;
    sl_buf_init(&out);
    struct sl_err err = {{0}};
    assert_int_equal(sl_gzip_decompress(&out, member, (size_t)len, n + 1, &err), 0);
    assert_int_equal(out.len, n);
    if (n)
        assert_memory_equal(out.data, in, n);
    sl_buf_fini(&out);
    return (size_t)len;
}

/* JSON log lines like the sink's, n bytes of them at most. */
static size_t log_lines(uint8_t *p, size_t cap)
{
    size_t at = 0;
    for (int i = 0; at + 200 < cap; i++)
        at += (size_t)snprintf((char *)p + at, cap - at,
                               "{\"id\": %d, \"host\": \"web-%d\", \"message\": \"GET /item/%d "
                               "200 %d\"}\n",
                               i, i % 7, i, i * 7 % 1000);
    return at;
}

static void test_levels_read_back(void **state)
{
    (void)state;
    size_t cap = 600 * 1024;
    uint8_t *text = malloc(cap);
    assert_non_null(text);
    size_t n = log_lines(text, cap);
    for (int level = SINK_GZ_LEVEL_MIN; level <= SINK_GZ_LEVEL_MAX; level++) {
        struct sink_gz *g = NULL;
        struct sl_err err = {{0}};
        assert_int_equal(sink_gz_new(level, &g, &err), 0);
        size_t len = round_trip(g, text, n);
        assert_true(len < n / 4); /* these lines compress well at every level */
        round_trip(g, text, 1000); /* the buffer is reused for a shorter input */
        round_trip(g, text, 0);
        sink_gz_free(g);
    }
    free(text);
}

/* Random bytes do not compress: igzip's first buffer (half the input) is too small and it is
 * given more until the member is whole. */
static void test_incompressible_grows(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    uint8_t *noise = malloc(n);
    assert_non_null(noise);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise[i] = (uint8_t)x;
    }
    int levels[] = {1, 6};
    for (size_t k = 0; k < 2; k++) {
        struct sink_gz *g = NULL;
        assert_int_equal(sink_gz_new(levels[k], &g, NULL), 0);
        size_t len = round_trip(g, noise, n);
        assert_true(len >= n);
        sink_gz_free(g);
    }
    free(noise);
}

static void test_bad_level(void **state)
{
    (void)state;
    struct sink_gz *g = NULL;
    struct sl_err err = {{0}};
    assert_int_equal(sink_gz_new(0, &g, &err), -EINVAL);
    assert_null(g);
    assert_non_null(strstr(err.msg, "gzip level 0 is not between 1 and 9"));
    assert_int_equal(sink_gz_new(10, &g, NULL), -EINVAL);
    sink_gz_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels_read_back),
        cmocka_unit_test(test_incompressible_grows),
        cmocka_unit_test(test_bad_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
