/* MurmurHash2 as Kafka's Java client computes it, for choosing a keyed record's partition. */
#include "common/murmur2.h"

#include <errno.h>

/* Kafka's constants (org.apache.kafka.common.utils.Utils.murmur2). */
#define MURMUR2_SEED 0x9747b28cu
#define MURMUR2_M    0x5bd1e995u
#define MURMUR2_R    24

int32_t sl_murmur2(const void *key, size_t len)
{
    /* Java multiplies ints and wraps; in C that is only defined for unsigned arithmetic. */
    const uint8_t *p = key;
    uint32_t h = MURMUR2_SEED ^ (uint32_t)len;
    size_t blocks = len / 4;

    for (size_t i = 0; i < blocks; i++) {
        const uint8_t *b = p + 4 * i;
        uint32_t k =
            (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        k *= MURMUR2_M;
        k ^= k >> MURMUR2_R;
        k *= MURMUR2_M;
        h *= MURMUR2_M;
        h ^= k;
    }

    const uint8_t *tail = len % 4 ? p + 4 * blocks : NULL;
    switch (len % 4) {
    case 3:
        h ^= (uint32_t)tail[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)tail[1] << 8;
        /* fall through */
    case 1:
        h ^= tail[0];
        h *= MURMUR2_M;
        break;
    default:
        break;
    }

    h ^= h >> 13;
    h *= MURMUR2_M;
    h ^= h >> 15;

    /* Two's-complement reinterpretation without relying on implementation-defined conversion. */
    return h <= INT32_MAX ? (int32_t)h : -(int32_t)~h - 1;
}

int32_t sl_murmur2_partition(const void *key, size_t len, int32_t partitions)
{
    if (partitions < 1)
        return -EINVAL;
    /* Kafka's toPositive: clears the sign bit rather than taking abs(), so INT32_MIN maps to 0. */
    int32_t positive = (int32_t)((uint32_t)sl_murmur2(key, len) & 0x7fffffffu);
    return positive % partitions;
}
