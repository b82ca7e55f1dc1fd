/* Unit tests for common/murmur2: Kafka's own vectors, the vectors kafka-python produced
 * (tests/data/murmur2_vectors.txt), every tail length, and the partition arithmetic. */
#include "common/murmur2.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define VECTORS_FILE "murmur2_vectors.txt"
/* The generator writes keys of 0..64 bytes; a longer one means the file is not what we think. */
#define VECTOR_MAX_KEY 64
/* Fewer parsed lines than this means the file was truncated or mangled. */
#define VECTOR_MIN_LINES 150

static int32_t murmur2_str(const char *s)
{
    return sl_murmur2(s, strlen(s));
}

/* Kafka's UtilsTest.testMurmur2, checked against kafka-python when the data file was made. */
static void test_kafka_vectors(void **state)
{
    assert_int_equal(murmur2_str("21"), -973932308);
    assert_int_equal(murmur2_str("foobar"), -790332482);
    assert_int_equal(murmur2_str("a-little-bit-long-string"), -985981536);
    assert_int_equal(murmur2_str("a-little-bit-longer-string"), -1486304829);
    assert_int_equal(murmur2_str("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
    assert_int_equal(murmur2_str("abc"), 479470107);
}

/* The empty key hashes like any other (only a null key skips hashing), NULL or not. */
static void test_empty_key(void **state)
{
    assert_int_equal(sl_murmur2(NULL, 0), sl_murmur2("", 0));
    assert_int_equal(sl_murmur2_partition(NULL, 0, 100), sl_murmur2_partition("", 0, 100));
    /* The length is part of the seed: the empty key differs from a single NUL byte. */
    assert_int_not_equal(sl_murmur2(NULL, 0), sl_murmur2("", 1));
}

/*
 * Every byte counts, whether in a 4-byte block or in a 1..3-byte tail: each step of murmur2 is
 * a bijection of the state for a fixed length, so changing one byte must change the hash. A
 * dropped tail case or a wrong tail index shows up here for every tail length.
 */
static void test_every_byte_counts(void **state)
{
    uint8_t key[20];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(0x31 + 7 * i);

    for (size_t len = 1; len <= sizeof(key); len++) {
        int32_t base = sl_murmur2(key, len);
        for (size_t pos = 0; pos < len; pos++) {
            for (unsigned delta = 1; delta < 256; delta <<= 1) {
                uint8_t saved = key[pos];
                key[pos] = (uint8_t)(saved ^ delta);
                if (sl_murmur2(key, len) == base)
                    fail_msg("len %zu: flipping bit %u of byte %zu left the hash unchanged", len,
                             delta, pos);
                key[pos] = saved;
            }
        }
        /* And bytes past len never count. */
        if (len < sizeof(key)) {
            uint8_t spare = key[len];
            key[len] ^= 0xff;
            assert_int_equal(sl_murmur2(key, len), base);
            key[len] = spare;
        }
    }
}

/* Partition counts at both ends, and refusal of counts below one. */
static void test_partition_bounds(void **state)
{
    static const char *const keys[] = {"", "21", "foobar", "abc", "web-1", "\xff\xfe\xfd"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *k = keys[i];
        size_t len = strlen(k);
        uint32_t positive = (uint32_t)sl_murmur2(k, len) & 0x7fffffffu;

        assert_int_equal(sl_murmur2_partition(k, len, 1), 0);
        assert_int_equal(sl_murmur2_partition(k, len, INT32_MAX), positive % INT32_MAX);
        assert_int_equal(sl_murmur2_partition(k, len, INT32_MAX - 1), positive % (INT32_MAX - 1));
        assert_int_equal(sl_murmur2_partition(k, len, 1 << 30), positive % (1u << 30));
        for (int32_t n = 1; n <= 1000; n++) {
            int32_t p = sl_murmur2_partition(k, len, n);
            assert_true(p >= 0 && p < n);
            assert_int_equal(p, positive % (uint32_t)n);
        }
        assert_int_equal(sl_murmur2_partition(k, len, 0), -EINVAL);
        assert_int_equal(sl_murmur2_partition(k, len, -1), -EINVAL);
        assert_int_equal(sl_murmur2_partition(k, len, INT32_MIN), -EINVAL);
    }
    /* Kafka's toPositive clears the sign bit; abs() would give another partition here. */
    assert_int_equal(sl_murmur2_partition("21", 2, 100),
                     (int32_t)((uint32_t)-973932308 & 0x7fffffffu) % 100);
    assert_int_not_equal(sl_murmur2_partition("21", 2, 100), 973932308 % 100);
}

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes lowercase hex (or "-" for the empty key) into out; returns the length or -1. */
static long decode_key(const char *hex, uint8_t *out, size_t cap)
{
    if (strcmp(hex, "-") == 0)
        return 0;
    size_t n = strlen(hex);
    if (n == 0 || n % 2 != 0 || n / 2 > cap)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(n / 2);
}

static long parse_long(const char *s, const char *what, unsigned lineno)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        fail_msg("%s:%u: bad %s '%s'", VECTORS_FILE, lineno, what, s);
    return v;
}

/* Every line of the kafka-python vectors: the hash, and the partition for each count. */
static void test_client_vectors(void **state)
{
    const char *dir = getenv("SL_TEST_DATA");
    if (!dir)
        fail_msg("SL_TEST_DATA is not set; run through ctest or set it to tests/data");
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, VECTORS_FILE);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s: %s (generate it with gen_murmur2_vectors.py)", path,
                 strerror(errno));

    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0, keys = 0, checks = 0;
    unsigned seen_len[VECTOR_MAX_KEY + 1] = {0};
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;

        char *save = NULL;
        const char *hex = strtok_r(line, " ", &save);
        const char *hash_s = strtok_r(NULL, " ", &save);
        if (!hex || !hash_s)
            fail_msg("%s:%u: expected '<hex key> <hash> <n>:<partition>...'", VECTORS_FILE, lineno);
        uint8_t key[VECTOR_MAX_KEY];
        long len = decode_key(hex, key, sizeof(key));
        if (len < 0)
            fail_msg("%s:%u: bad key '%s'", VECTORS_FILE, lineno, hex);
        long want = parse_long(hash_s, "hash", lineno);
        int32_t got = sl_murmur2(key, (size_t)len);
        if (got != want)
            fail_msg("%s:%u: key %s: murmur2 %d, kafka-python says %ld", VECTORS_FILE, lineno, hex,
                     got, want);

        unsigned pairs = 0;
        for (char *tok; (tok = strtok_r(NULL, " ", &save)) != NULL; pairs++) {
            char *colon = strchr(tok, ':');
            if (!colon)
                fail_msg("%s:%u: bad pair '%s'", VECTORS_FILE, lineno, tok);
            *colon = '\0';
            long n = parse_long(tok, "partition count", lineno);
            long want_p = parse_long(colon + 1, "partition", lineno);
            if (n < 1 || n > INT32_MAX)
                fail_msg("%s:%u: bad partition count %ld", VECTORS_FILE, lineno, n);
            int32_t got_p = sl_murmur2_partition(key, (size_t)len, (int32_t)n);
            if (got_p != want_p)
                fail_msg("%s:%u: key %s, %ld partitions: got %d, kafka-python says %ld",
                         VECTORS_FILE, lineno, hex, n, got_p, want_p);
            checks++;
        }
        if (pairs == 0)
            fail_msg("%s:%u: no partitions listed", VECTORS_FILE, lineno);
        seen_len[len]++;
        keys++;
    }
    free(line);
    fclose(f);

    if (keys < VECTOR_MIN_LINES)
        fail_msg("%s: only %u keys; the file looks truncated", VECTORS_FILE, keys);
    /* The file must cover every key length 0..64, hence every tail length many times over. */
    for (size_t len = 0; len <= VECTOR_MAX_KEY; len++) {
        if (seen_len[len] == 0)
            fail_msg("%s: no key of length %zu", VECTORS_FILE, len);
    }
    print_message("checked %u keys, %u partition choices\n", keys, checks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kafka_vectors),     cmocka_unit_test(test_empty_key),
        cmocka_unit_test(test_every_byte_counts), cmocka_unit_test(test_partition_bounds),
        cmocka_unit_test(test_client_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
