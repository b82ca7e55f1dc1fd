/* Unit tests for gzip compress/decompress: round trips, RFC 1952 framing, limits, bad input,
 * concatenated members and allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/base.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/gzip.h"
#include "common/mem.h"

#include <errno.h>
#include <string.h>
#include <zlib.h>

/* Deterministic filler: text-like (compressible) when text is set, else pseudo-random bytes
 * that deflate cannot shrink. */
static void fill(uint8_t *p, size_t n, uint32_t seed, int text)
{
    static const char words[] = "GET /index.html 200 host=web-1 level=info message=hello ";
    uint32_t x = seed * 2654435761u + 1;
    size_t shift = 0;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        if (i % 40 == 0)
            shift = x >> 26; /* text jumps now and then, as log lines do */
        p[i] = text ? (uint8_t)words[(i + shift) % (sizeof(words) - 1)] : (uint8_t)(x >> 16);
    }
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Checks the RFC 1952 frame of a single member with zlib's independent crc32: magic, method,
 * trailer CRC32 and ISIZE of the original input. */
static void assert_gzip_frame(const uint8_t *z, size_t zn, const uint8_t *orig, size_t n)
{
    assert_true(zn >= 18);
    assert_int_equal(z[0], 0x1f);
    assert_int_equal(z[1], 0x8b);
    assert_int_equal(z[2], 8);
    assert_int_equal(z[3] & 0xe0, 0); /* reserved flag bits */
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, orig, (uInt)n);
    assert_int_equal(le32(z + zn - 8), (uint32_t)crc);
    assert_int_equal(le32(z + zn - 4), (uint32_t)n);
}

static void test_round_trip_sizes_and_levels(void **state)
{
    const size_t sizes[] = {0, 1, 2, 100, 4095, 65536, 1u << 20};
    const int levels[] = {-1, 0, 1, 6, 9};
    static uint8_t src[1u << 20];
    for (size_t s = 0; s < SL_ARRAY_LEN(sizes); s++) {
        for (int text = 0; text <= 1; text++) {
            fill(src, sizes[s], (uint32_t)s, text);
            for (size_t l = 0; l < SL_ARRAY_LEN(levels); l++) {
                struct sl_buf z, d;
                sl_buf_init(&z);
                sl_buf_init(&d);
                assert_int_equal(sl_gzip_compress(&z, src, sizes[s], levels[l]), 0);
                assert_gzip_frame(z.data, z.len, src, sizes[s]);
                struct sl_err err = {{0}};
                assert_int_equal(sl_gzip_decompress(&d, z.data, z.len, sizes[s], &err), 0);
                assert_int_equal(d.len, sizes[s]);
                if (sizes[s])
                    assert_memory_equal(d.data, src, sizes[s]);
                if (text && sizes[s] >= 4095 && levels[l] != 0)
                    assert_true(z.len < sizes[s] / 2);
                sl_buf_fini(&z);
                sl_buf_fini(&d);
            }
        }
    }
}

static void test_compress_is_deterministic_and_appends(void **state)
{
    const char msg[] = "the same input and level give the same bytes";
    struct sl_buf a, b;
    sl_buf_init(&a);
    sl_buf_init(&b);
    sl_buf_append_str(&b, "prefix");
    assert_int_equal(sl_gzip_compress(&a, msg, sizeof(msg), 9), 0);
    assert_int_equal(sl_gzip_compress(&b, msg, sizeof(msg), 9), 0);
    assert_int_equal(b.len, a.len + 6);
    assert_memory_equal(b.data, "prefix", 6);
    assert_memory_equal(b.data + 6, a.data, a.len);
    /* MTIME is zero and there is no file name, so nothing varies with time or place. */
    assert_int_equal(le32(a.data + 4), 0);
    assert_int_equal(a.data[3], 0);

    /* Decompress appends too and leaves the prefix alone. */
    struct sl_buf d;
    sl_buf_init(&d);
    sl_buf_append_str(&d, "xy");
    assert_int_equal(sl_gzip_decompress(&d, a.data, a.len, sizeof(msg), NULL), 0);
    assert_int_equal(d.len, 2 + sizeof(msg));
    assert_memory_equal(d.data, "xy", 2);
    assert_memory_equal(d.data + 2, msg, sizeof(msg));
    sl_buf_fini(&a);
    sl_buf_fini(&b);
    sl_buf_fini(&d);
}

static void test_bad_level(void **state)
{
    struct sl_buf z;
    sl_buf_init(&z);
    sl_buf_append_str(&z, "keep");
    assert_int_equal(sl_gzip_compress(&z, "x", 1, 10), -EINVAL);
    assert_int_equal(sl_gzip_compress(&z, "x", 1, -2), -EINVAL);
    assert_int_equal(z.len, 4);
    assert_int_equal(z.err, 0);
    sl_buf_fini(&z);
}

static void test_empty_input_is_not_a_stream(void **state)
{
    struct sl_buf d;
    sl_buf_init(&d);
    struct sl_err err = {{0}};
    assert_int_equal(sl_gzip_decompress(&d, NULL, 0, 100, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "empty"));
    assert_int_equal(d.len, 0);
    sl_buf_fini(&d);
}

static void test_output_limit_is_exact(void **state)
{
    uint8_t src[5000];
    fill(src, sizeof(src), 7, 1);
    struct sl_buf z, d;
    sl_buf_init(&z);
    sl_buf_init(&d);
    assert_int_equal(sl_gzip_compress(&z, src, sizeof(src), -1), 0);

    assert_int_equal(sl_gzip_decompress(&d, z.data, z.len, sizeof(src), NULL), 0);
    assert_int_equal(d.len, sizeof(src));

    sl_buf_reset(&d);
    sl_buf_append_str(&d, "ab");
    struct sl_err err = {{0}};
    assert_int_equal(sl_gzip_decompress(&d, z.data, z.len, sizeof(src) - 1, &err), SL_ETOOBIG);
    assert_non_null(strstr(err.msg, "limit"));
    assert_int_equal(d.len, 2); /* cut back to its length at entry */

    assert_int_equal(sl_gzip_decompress(&d, z.data, z.len, 0, NULL), SL_ETOOBIG);
    assert_int_equal(d.len, 2);

    /* An empty payload fits a zero limit. */
    sl_buf_reset(&z);
    assert_int_equal(sl_gzip_compress(&z, NULL, 0, -1), 0);
    assert_int_equal(sl_gzip_decompress(&d, z.data, z.len, 0, NULL), 0);
    assert_int_equal(d.len, 2);
    sl_buf_fini(&z);
    sl_buf_fini(&d);
}

static void test_bomb_is_refused_before_filling_memory(void **state)
{
    /* 64 MiB of zeros shrink to ~64 KiB; a 1 MiB limit must stop it with little memory. */
    size_t big = 64u << 20;
    uint8_t *zeros = calloc(1, big);
    assert_non_null(zeros);
    struct sl_buf z, d;
    sl_buf_init(&z);
    sl_buf_init(&d);
    assert_int_equal(sl_gzip_compress(&z, zeros, big, 9), 0);
    free(zeros);
    assert_true(z.len < big / 500);
    assert_int_equal(sl_gzip_decompress(&d, z.data, z.len, 1u << 20, NULL), SL_ETOOBIG);
    assert_int_equal(d.len, 0);
    assert_true(d.cap <= (2u << 20));
    sl_buf_fini(&z);
    sl_buf_fini(&d);
}

static void test_concatenated_members(void **state)
{
    const char a[] = "first member;", b[] = "second member";
    struct sl_buf z, d;
    sl_buf_init(&z);
    sl_buf_init(&d);
    assert_int_equal(sl_gzip_compress(&z, a, strlen(a), 1), 0);
    assert_int_equal(sl_gzip_compress(&z, NULL, 0, 1), 0); /* an empty member in between */
    assert_int_equal(sl_gzip_compress(&z, b, strlen(b), 9), 0);
    assert_int_equal(sl_gzip_decompress(&d, z.data, z.len, 1000, NULL), 0);
    assert_int_equal(d.len, strlen(a) + strlen(b));
    assert_memory_equal(d.data, "first member;second member", d.len);

    /* The limit counts the output of all members together. */
    sl_buf_reset(&d);
    assert_int_equal(sl_gzip_decompress(&d, z.data, z.len, strlen(a) + strlen(b) - 1, NULL),
                     SL_ETOOBIG);
    assert_int_equal(d.len, 0);

    /* A second member cut short is truncation, not a silent stop after the first. */
    struct sl_err err = {{0}};
    assert_int_equal(sl_gzip_decompress(&d, z.data, z.len - 1, 1000, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "member 3"));
    assert_int_equal(d.len, 0);
    sl_buf_fini(&z);
    sl_buf_fini(&d);
}

static void test_every_truncation_fails(void **state)
{
    uint8_t src[3000];
    fill(src, sizeof(src), 3, 1);
    struct sl_buf z, d;
    sl_buf_init(&z);
    sl_buf_init(&d);
    assert_int_equal(sl_gzip_compress(&z, src, sizeof(src), -1), 0);
    for (size_t cut = 0; cut < z.len; cut++) {
        struct sl_err err = {{0}};
        assert_int_equal(sl_gzip_decompress(&d, z.data, cut, sizeof(src), &err), SL_ECORRUPT);
        assert_int_equal(d.len, 0);
        if (cut > 0)
            assert_non_null(strstr(err.msg, "truncated"));
    }
    sl_buf_fini(&z);
    sl_buf_fini(&d);
}

/* Decompresses a damaged copy; returns the result code and whether a successful output equals
 * orig. */
static int decompress_damaged(const struct sl_buf *z, size_t at, uint8_t xor, const uint8_t *orig,
                              size_t n, struct sl_err *err)
{
    uint8_t *copy = malloc(z->len);
    assert_non_null(copy);
    memcpy(copy, z->data, z->len);
    copy[at] ^= xor;
    struct sl_buf d;
    sl_buf_init(&d);
    int rc = sl_gzip_decompress(&d, copy, z->len, n, err);
    if (rc)
        assert_int_equal(d.len, 0);
    else if (d.len != n || memcmp(d.data, orig, n) != 0)
        rc = 1; /* accepted and different: the one outcome that must never happen */
    sl_buf_fini(&d);
    free(copy);
    return rc;
}

static void test_corruption_is_detected(void **state)
{
    uint8_t src[2000];
    fill(src, sizeof(src), 11, 1);
    struct sl_buf z;
    sl_buf_init(&z);
    assert_int_equal(sl_gzip_compress(&z, src, sizeof(src), -1), 0);
    struct sl_err err = {{0}};
    const size_t n = sizeof(src);

    assert_int_equal(decompress_damaged(&z, 0, 0xff, src, n, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "header"));
    assert_non_null(strstr(err.msg, "offset"));
    assert_int_equal(decompress_damaged(&z, 2, 0x01, src, n, &err), SL_ECORRUPT);
    assert_int_equal(decompress_damaged(&z, z.len - 8, 0x01, src, n, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "data check"));
    assert_int_equal(decompress_damaged(&z, z.len - 1, 0x80, src, n, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "length check"));

    /* No single-bit flip is accepted with different output: the CRC32 and ISIZE back the
     * deflate structure up. A flip may still decode to the same bytes (a match distance into
     * repeated text, padding bits) and MTIME/XFL/OS (bytes 4..9) carry no meaning. */
    int rejected = 0, same = 0;
    for (size_t at = 0; at < z.len; at++) {
        for (int bit = 0; bit < 8; bit++) {
            int rc = decompress_damaged(&z, at, (uint8_t)(1u << bit), src, n, &err);
            assert_true(rc == 0 || rc == SL_ECORRUPT || rc == SL_ETOOBIG);
            if (rc)
                rejected++;
            else
                same++;
        }
    }
    assert_true(rejected > (int)(z.len - 10) * 8 * 9 / 10);
    assert_true(same >= 6 * 8); /* at least MTIME, XFL and OS */
    sl_buf_fini(&z);
}

static void test_trailing_garbage_and_zlib_wrapper(void **state)
{
    struct sl_buf z, d;
    sl_buf_init(&z);
    sl_buf_init(&d);
    assert_int_equal(sl_gzip_compress(&z, "abc", 3, -1), 0);
    sl_buf_append(&z, "\0\0\0\0", 4);
    struct sl_err err = {{0}};
    assert_int_equal(sl_gzip_decompress(&d, z.data, z.len, 100, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "member 2"));
    assert_int_equal(d.len, 0);

    /* A zlib (RFC 1950) stream is not gzip. */
    uint8_t zl[64];
    uLongf zn = sizeof(zl);
    assert_int_equal(compress2(zl, &zn, (const Bytef *)"abc", 3, 6), Z_OK);
    assert_int_equal(sl_gzip_decompress(&d, zl, zn, 100, &err), SL_ECORRUPT);
    sl_buf_fini(&z);
    sl_buf_fini(&d);
}

static void test_sticky_buffer_error_is_returned(void **state)
{
    struct sl_buf d;
    sl_buf_init(&d);
    d.err = -ENOMEM;
    assert_int_equal(sl_gzip_compress(&d, "a", 1, -1), -ENOMEM);
    assert_int_equal(sl_gzip_decompress(&d, "a", 1, 10, NULL), -ENOMEM);
    assert_int_equal(d.len, 0);
    sl_buf_fini(&d);
}

static void test_allocation_failure_sweep(void **state)
{
    uint8_t src[70000];
    fill(src, sizeof(src), 5, 1);
    struct sl_buf z, d;
    sl_buf_init(&z);
    sl_buf_init(&d);
    long n;
    int rc = -1;
    for (n = 0; n < 100; n++) {
        sl_buf_fini(&z);
        sl_buf_append_str(&z, "p");
        sl_mem_fail_after(n, 0);
        rc = sl_gzip_compress(&z, src, sizeof(src), -1);
        long failed = sl_mem_failures();
        sl_mem_fail_after(-1, 0);
        if (rc == 0) {
            assert_int_equal(failed, 0);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_int_equal(z.len, 1);
    }
    assert_int_equal(rc, 0);
    assert_true(n > 1); /* deflate state and the output buffer at least */
    assert_int_equal(z.data[0], 'p');

    for (n = 0; n < 100; n++) {
        sl_buf_fini(&d);
        sl_mem_fail_after(n, 0);
        rc = sl_gzip_decompress(&d, z.data + 1, z.len - 1, sizeof(src), NULL);
        long failed = sl_mem_failures();
        sl_mem_fail_after(-1, 0);
        if (rc == 0) {
            assert_int_equal(failed, 0);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_int_equal(d.len, 0);
    }
    assert_int_equal(rc, 0);
    assert_true(n > 2); /* inflate state, its window, and output growth */
    assert_int_equal(d.len, sizeof(src));
    assert_memory_equal(d.data, src, sizeof(src));
    sl_buf_fini(&z);
    sl_buf_fini(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_sizes_and_levels),
        cmocka_unit_test(test_compress_is_deterministic_and_appends),
        cmocka_unit_test(test_bad_level),
        cmocka_unit_test(test_empty_input_is_not_a_stream),
        cmocka_unit_test(test_output_limit_is_exact),
        cmocka_unit_test(test_bomb_is_refused_before_filling_memory),
        cmocka_unit_test(test_concatenated_members),
        cmocka_unit_test(test_every_truncation_fails),
        cmocka_unit_test(test_corruption_is_detected),
        cmocka_unit_test(test_trailing_garbage_and_zlib_wrapper),
        cmocka_unit_test(test_sticky_buffer_error_is_returned),
        cmocka_unit_test(test_allocation_failure_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
