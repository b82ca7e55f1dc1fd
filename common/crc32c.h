/* CRC-32C (Castagnoli), the checksum of Kafka's record batch v2, with an SSE4.2 path picked at
 * run time and a portable table path everywhere else. */
#ifndef SL_COMMON_CRC32C_H
#define SL_COMMON_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Returns the CRC-32C of p[0..n) continued from `crc`, the value a previous call returned (0 to
 * start). The result is the standard CRC-32C (reflected polynomial 0x82F63B78, initial value
 * and final xor 0xFFFFFFFF, both handled inside), so sl_crc32c(0, "123456789", 9) is 0xE3069283
 * and sl_crc32c(sl_crc32c(0, a, na), b, nb) equals the CRC of a followed by b. p may be NULL
 * when n is 0. Thread-safe; uses the SSE4.2 instruction when the CPU has it.
 */
uint32_t sl_crc32c(uint32_t crc, const void *p, size_t n);

/* The portable slicing-by-8 implementation, same contract as sl_crc32c; exposed for tests and
 * benchmarks. */
uint32_t sl_crc32c_sw(uint32_t crc, const void *p, size_t n);

/* True when this build and this CPU can run sl_crc32c_hw (x86-64 with SSE4.2). */
bool sl_crc32c_hw_available(void);

/* The SSE4.2 implementation, same contract as sl_crc32c. Only meaningful when
 * sl_crc32c_hw_available() is true; elsewhere it falls back to sl_crc32c_sw rather than trap. */
uint32_t sl_crc32c_hw(uint32_t crc, const void *p, size_t n);

#endif
