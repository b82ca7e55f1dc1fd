/* Kafka's default partitioner hash: MurmurHash2 exactly as the Java client's Utils.murmur2. */
#ifndef SL_COMMON_MURMUR2_H
#define SL_COMMON_MURMUR2_H

#include <stddef.h>
#include <stdint.h>

/*
 * Returns the 32-bit MurmurHash2 of key[0..len) with Kafka's seed (0x9747b28c), as the signed
 * int Java's Utils.murmur2 returns; the same value kafka-python and librdkafka's "murmur2"
 * partitioner compute. key may be NULL when len is 0 (that is the hash of the empty key; a
 * Kafka null key is not hashed at all, the caller picks a sticky partition instead). Like Java,
 * the length enters the hash as 32 bits, so keys over 4 GiB only hash their length mod 2^32.
 */
int32_t sl_murmur2(const void *key, size_t len);

/*
 * Returns the partition Kafka's default partitioner gives a non-null key:
 * toPositive(murmur2(key)) % partitions, in [0, partitions). Returns -EINVAL when partitions
 * is below 1 (a topic's partition count comes from metadata, so it is checked, not asserted).
 */
int32_t sl_murmur2_partition(const void *key, size_t len, int32_t partitions);

#endif
