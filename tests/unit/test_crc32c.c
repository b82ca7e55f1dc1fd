/* Unit tests for common/crc32c: published vectors, and the SSE4.2 path, the table path and a
 * bit-at-a-time reference agreeing on every length, alignment and split. */
#include "common/crc32c.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Longest input of the exhaustive length sweep; covers many 8-byte blocks plus every tail. */
#define SWEEP_MAX_LEN    300
#define SWEEP_ALIGNMENTS 16

/* The textbook bitwise CRC-32C: shares no table or instruction with the code under test. */
static uint32_t ref_crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    uint32_t c = ~crc;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int bit = 0; bit < 8; bit++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
    }
    return ~c;
}

/* Deterministic bytes (xorshift32), so a failure reproduces. */
static void fill_random(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed ? seed : 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)(x >> 24);
    }
}

struct impl {
    const char *name;
    uint32_t (*fn)(uint32_t crc, const void *p, size_t n);
};

/* Every implementation this machine can run; the hardware one only where it exists. */
static size_t impls(struct impl out[3])
{
    size_t n = 0;
    out[n++] = (struct impl){"sl_crc32c", sl_crc32c};
    out[n++] = (struct impl){"sl_crc32c_sw", sl_crc32c_sw};
    if (sl_crc32c_hw_available())
        out[n++] = (struct impl){"sl_crc32c_hw", sl_crc32c_hw};
    return n;
}

static void check_vector(const void *data, size_t len, uint32_t want)
{
    struct impl im[3];
    size_t n = impls(im);
    for (size_t i = 0; i < n; i++) {
        uint32_t got = im[i].fn(0, data, len);
        if (got != want)
            fail_msg("%s over %zu bytes: got 0x%08x, want 0x%08x", im[i].name, len, got, want);
    }
    assert_int_equal(ref_crc32c(0, data, len), want);
}

/* RFC 3720 (iSCSI) appendix B.4 and the usual check value. */
static void test_vectors(void **state)
{
    uint8_t buf[32];

    memset(buf, 0, sizeof(buf));
    check_vector(buf, sizeof(buf), 0x8A9136AAu);
    memset(buf, 0xff, sizeof(buf));
    check_vector(buf, sizeof(buf), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    check_vector(buf, sizeof(buf), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    check_vector(buf, sizeof(buf), 0x113FDB5Cu);
    check_vector("123456789", 9, 0xE3069283u);
    check_vector("a", 1, 0xC1D04330u);
}

/* Nothing to hash leaves the running value alone, NULL included. */
static void test_empty(void **state)
{
    struct impl im[3];
    size_t n = impls(im);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(im[i].fn(0, NULL, 0), 0);
        assert_int_equal(im[i].fn(0, "", 0), 0);
        assert_int_equal(im[i].fn(0xE3069283u, NULL, 0), 0xE3069283u);
        assert_int_equal(im[i].fn(0xFFFFFFFFu, "x", 0), 0xFFFFFFFFu);
    }
}

/* Every length 0..300 at every alignment 0..15, each input in its own allocation of exactly
 * its size, so an over-read trips AddressSanitizer. */
static void test_lengths_and_alignments(void **state)
{
    struct impl im[3];
    size_t n = impls(im);
    uint8_t src[SWEEP_MAX_LEN + SWEEP_ALIGNMENTS];
    uint32_t seed = 0x9E3779B9u;

    for (size_t len = 0; len <= SWEEP_MAX_LEN; len++) {
        for (size_t align = 0; align < SWEEP_ALIGNMENTS; align++) {
            /* malloc's result is 16-aligned, so block + align sits at alignment `align`. */
            size_t size = align + len;
            uint8_t *block = malloc(size ? size : 1);
            assert_non_null(block);
            uint8_t *p = block + align;
            fill_random(src, len, seed++);
            memcpy(p, src, len);
            uint32_t want = ref_crc32c(0, src, len);
            for (size_t i = 0; i < n; i++) {
                uint32_t got = im[i].fn(0, p, len);
                if (got != want)
                    fail_msg("%s len %zu align %zu: got 0x%08x, want 0x%08x", im[i].name, len,
                             align, got, want);
            }
            free(block);
        }
    }
}

/* Hardware and software agree on a large buffer, and on a nonzero starting value. */
static void test_large_and_seeded(void **state)
{
    size_t len = (1u << 20) + 13;
    uint8_t *p = malloc(len);
    assert_non_null(p);
    fill_random(p, len, 7);

    uint32_t want = ref_crc32c(0, p, len);
    assert_int_equal(sl_crc32c_sw(0, p, len), want);
    assert_int_equal(sl_crc32c(0, p, len), want);
    uint32_t want_seeded = ref_crc32c(0x12345678u, p + 3, len - 3);
    assert_int_equal(sl_crc32c_sw(0x12345678u, p + 3, len - 3), want_seeded);
    assert_int_equal(sl_crc32c(0x12345678u, p + 3, len - 3), want_seeded);
    if (sl_crc32c_hw_available()) {
        assert_int_equal(sl_crc32c_hw(0, p, len), want);
        assert_int_equal(sl_crc32c_hw(0x12345678u, p + 3, len - 3), want_seeded);
    }
    free(p);
}

/* crc(crc(0, a[0..i)), a[i..n)) == crc(0, a) for every split point, mixing implementations
 * across the split as the record batch writer may (one CRC started, continued elsewhere). */
static void test_chaining(void **state)
{
    struct impl im[3];
    size_t n = impls(im);
    enum { LEN = 257 };
    uint8_t a[LEN];
    fill_random(a, LEN, 12345);
    uint32_t whole = ref_crc32c(0, a, LEN);

    for (size_t split = 0; split <= LEN; split++) {
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < n; j++) {
                uint32_t head = im[i].fn(0, a, split);
                uint32_t got = im[j].fn(head, a + split, LEN - split);
                if (got != whole)
                    fail_msg("split %zu (%s then %s): got 0x%08x, want 0x%08x", split, im[i].name,
                             im[j].name, got, whole);
            }
        }
    }
    /* Byte by byte, the extreme split. */
    for (size_t i = 0; i < n; i++) {
        uint32_t c = 0;
        for (size_t k = 0; k < LEN; k++)
            c = im[i].fn(c, a + k, 1);
        assert_int_equal(c, whole);
    }
}

/*
 * The hardware path hashes long inputs as blocks of three lanes (see crc32c.c); these mirror its
 * lane lengths so the sweeps below straddle every block boundary. If the lanes change, change
 * these too.
 */
#define LANE_SHORT 256
#define LANE_LONG  8192

/* Every implementation against the table path on p[0..len), from a zero and a nonzero start. */
static void check_against_sw(const uint8_t *p, size_t len, size_t align)
{
    struct impl im[3];
    size_t n = impls(im);
    static const uint32_t starts[] = {0, 0xA5C3E1F7u};

    for (size_t s = 0; s < sizeof(starts) / sizeof(starts[0]); s++) {
        uint32_t want = sl_crc32c_sw(starts[s], p, len);
        for (size_t i = 0; i < n; i++) {
            uint32_t got = im[i].fn(starts[s], p, len);
            if (got != want)
                fail_msg("%s len %zu align %zu start 0x%08x: got 0x%08x, want 0x%08x",
                         im[i].name, len, align, starts[s], got, want);
        }
    }
}

/* Copies src[0..len) into an allocation of exactly align + len bytes and checks it there, so
 * a lane that reads past the end trips AddressSanitizer. */
static void check_exact(const uint8_t *src, size_t len, size_t align)
{
    uint8_t *block = malloc(align + len ? align + len : 1);
    assert_non_null(block);
    memcpy(block + align, src, len);
    check_against_sw(block + align, len, align);
    free(block);
}

/* Every length from 0 through three short blocks and change, at every 8-byte alignment: the
 * single-chain cut-off, one, two and three short blocks, and every tail after them. */
static void test_short_block_boundaries(void **state)
{
    enum { MAX = 3 * (3 * LANE_SHORT) + 100 };
    uint8_t *src = malloc(MAX);
    assert_non_null(src);
    fill_random(src, MAX, 0xC0FFEEu);
    for (size_t len = 0; len <= MAX; len++) {
        for (size_t align = 0; align < 8; align++)
            check_exact(src, len, align);
    }
    free(src);
}

/* Lengths within a word of zero to three long blocks followed by zero, one or many short ones,
 * at every 8-byte alignment (an unaligned start shifts every boundary by the bytes eaten to
 * align). */
static void test_long_block_boundaries(void **state)
{
    static const size_t shorts[] = {0, 1, 2, 31, 32};
    size_t max = 3 * (3 * LANE_LONG) + 32 * (3 * LANE_SHORT) + 16;
    uint8_t *src = malloc(max);
    assert_non_null(src);
    fill_random(src, max, 0xBADC0DEu);

    for (size_t longs = 0; longs <= 3; longs++) {
        for (size_t s = 0; s < sizeof(shorts) / sizeof(shorts[0]); s++) {
            size_t base = longs * (3 * LANE_LONG) + shorts[s] * (3 * LANE_SHORT);
            for (size_t len = base > 9 ? base - 9 : 0; len <= base + 9; len++) {
                for (size_t align = 0; align < 8; align++)
                    check_exact(src, len, align);
            }
        }
    }
    free(src);
}

/* The folding paths (on CPUs that have them): every length across the 1 KiB and 8 KiB
 * thresholds, and lengths within a word of m * 376 (the mixed path's step: 256 folded bytes and
 * 40 per crc32 lane) for small and large m, so every leftover size is reached. */
static void test_fold_boundaries(void **state)
{
    static const size_t steps[] = {2, 3, 21, 22, 23, 100, 174, 175, 176, 2789};
    size_t max = 2789 * 376 + 16;
    uint8_t *src = malloc(max);
    assert_non_null(src);
    fill_random(src, max, 0xF01Du);
    for (size_t len = 1000; len <= 1100; len++)
        check_exact(src, len, len % 8);
    for (size_t len = 8100; len <= 8600; len++)
        check_exact(src, len, len % 8);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        for (size_t len = steps[i] * 376 - 9; len <= steps[i] * 376 + 9; len++)
            check_exact(src, len, len % 8);
    free(src);
}

/* Random lengths up to a few long blocks at random offsets and random starting values, each
 * also continued across a random split, since a split inside a lane must still chain. */
static void test_random_long(void **state)
{
    enum { BUF = 1 << 20, ROUNDS = 300, MAX_LEN = 12 * 3 * LANE_LONG };
    uint8_t *buf = malloc(BUF);
    assert_non_null(buf);
    fill_random(buf, BUF, 4242);
    struct impl im[3];
    size_t n = impls(im);
    uint32_t x = 0x2545F491u;

    for (int r = 0; r < ROUNDS; r++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        size_t len = x % (MAX_LEN + 1);
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        size_t off = x % (BUF - len + 1);
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        size_t split = len ? x % (len + 1) : 0;
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        uint32_t start = x;

        const uint8_t *p = buf + off;
        uint32_t want = sl_crc32c_sw(start, p, len);
        for (size_t i = 0; i < n; i++) {
            uint32_t got = im[i].fn(start, p, len);
            uint32_t chained = im[i].fn(im[i].fn(start, p, split), p + split, len - split);
            if (got != want || chained != want)
                fail_msg("%s len %zu off %zu split %zu start 0x%08x: got 0x%08x chained 0x%08x, "
                         "want 0x%08x", im[i].name, len, off, split, start, got, chained, want);
        }
    }
    free(buf);
}

/* The dispatcher picks the hardware path whenever the CPU has it. */
static void test_dispatch(void **state)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    assert_int_equal(sl_crc32c_hw_available(), __builtin_cpu_supports("sse4.2") != 0);
#else
    assert_false(sl_crc32c_hw_available());
#endif
    uint8_t buf[64];
    fill_random(buf, sizeof(buf), 99);
    /* Without SSE4.2, the hw entry point must still answer correctly rather than trap. */
    assert_int_equal(sl_crc32c_hw(0, buf, sizeof(buf)), ref_crc32c(0, buf, sizeof(buf)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_lengths_and_alignments),
        cmocka_unit_test(test_large_and_seeded),
        cmocka_unit_test(test_chaining),
        cmocka_unit_test(test_short_block_boundaries),
        cmocka_unit_test(test_long_block_boundaries),
        cmocka_unit_test(test_fold_boundaries),
        cmocka_unit_test(test_random_long),
        cmocka_unit_test(test_dispatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
