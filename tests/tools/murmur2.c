/* sl-test-murmur2: prints sl_murmur2's hash and partition for hex keys, so integration tests
 * can hold the C code against live Kafka clients.
 *
 *   sl-test-murmur2 <hexkey> <partitions>   prints "<hash> <partition>"
 *   sl-test-murmur2 --stdin                 reads "<hexkey> <partitions>" lines, prints one
 *                                           "<hash> <partition>" line for each
 *
 * The hash is the signed 32-bit value of Java's Utils.murmur2. The empty key is "" or "-".
 * Exit status: 0, or 2 on bad usage or a bad input line (with a message on stderr). */
#include "common/murmur2.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes hex into out (room for strlen(hex) / 2 bytes); returns the length, or -1. */
static long decode_hex(const char *hex, uint8_t *out)
{
    if (strcmp(hex, "-") == 0)
        return 0;
    size_t n = strlen(hex);
    if (n % 2 != 0)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(n / 2);
}

/* Prints one answer; returns 0, or 2 after a message when the input is bad. */
static int answer(const char *hex, const char *partitions_s, const char *where)
{
    char *end;
    errno = 0;
    long partitions = strtol(partitions_s, &end, 10);
    if (errno != 0 || end == partitions_s || *end != '\0' || partitions < 1 ||
        partitions > INT32_MAX) {
        fprintf(stderr, "sl-test-murmur2: %s: partitions must be 1..%d (got '%s')\n", where,
                INT32_MAX, partitions_s);
        return 2;
    }
    uint8_t *key = malloc(strlen(hex) / 2 + 1);
    if (!key) {
        fprintf(stderr, "sl-test-murmur2: out of memory\n");
        return 2;
    }
    long len = decode_hex(hex, key);
    if (len < 0) {
        fprintf(stderr, "sl-test-murmur2: %s: key is not hex: '%s'\n", where, hex);
        free(key);
        return 2;
    }
    printf("%d %d\n", sl_murmur2(key, (size_t)len),
           sl_murmur2_partition(key, (size_t)len, (int32_t)partitions));
    free(key);
    return 0;
}

static int run_stdin(void)
{
    char *line = NULL;
    size_t cap = 0;
    unsigned long lineno = 0;
    int rc = 0;
    while (rc == 0 && getline(&line, &cap, stdin) >= 0) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        char where[64];
        snprintf(where, sizeof(where), "stdin:%lu", lineno);
        char *save = NULL;
        const char *hex = strtok_r(line, " \t", &save);
        const char *parts = strtok_r(NULL, " \t", &save);
        if (!hex || !parts || strtok_r(NULL, " \t", &save)) {
            fprintf(stderr, "sl-test-murmur2: %s: expected '<hexkey> <partitions>'\n", where);
            rc = 2;
            break;
        }
        rc = answer(hex, parts, where);
    }
    free(line);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "sl-test-murmur2: stdout: %s\n", strerror(errno));
        rc = 2;
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--stdin") == 0)
        return run_stdin();
    if (argc != 3) {
        fprintf(stderr, "usage: sl-test-murmur2 <hexkey> <partitions>\n"
                        "       sl-test-murmur2 --stdin   (lines of '<hexkey> <partitions>')\n");
        return 2;
    }
    return answer(argv[1], argv[2], "argv");
}
