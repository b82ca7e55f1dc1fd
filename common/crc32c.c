/* CRC-32C: the SSE4.2 crc32 instruction when the CPU has it, slicing-by-8 tables otherwise. */
#include "common/crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

/* Castagnoli's polynomial, bit-reflected: iSCSI (RFC 3720), ext4, and Kafka's record batch v2. */
#define CRC32C_POLY 0x82F63B78u

/*
 * table[0] is the classic byte-at-a-time table; table[k][b] is the CRC contribution of byte b
 * followed by k zero bytes, so eight bytes fold into the register with eight independent lookups
 * instead of a chain of eight dependent ones.
 */
static uint32_t crc32c_table[8][256];
#if defined(__x86_64__)
static bool crc32c_use_hw;
#endif
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_init(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int bit = 0; bit < 8; bit++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc32c_table[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++) {
        for (int k = 1; k < 8; k++) {
            uint32_t prev = crc32c_table[k - 1][b];
            crc32c_table[k][b] = (prev >> 8) ^ crc32c_table[0][prev & 0xff];
        }
    }
#if defined(__x86_64__)
    /* May run before libgcc's constructor has filled the CPU model (a caller in a
     * constructor), so initialise it explicitly. */
    __builtin_cpu_init();
    crc32c_use_hw = __builtin_cpu_supports("sse4.2");
#endif
}

/* Little-endian load from bytes, so the table path gives the same answer on big-endian hosts;
 * compilers turn it into one load on little-endian ones. */
static uint32_t crc32c_load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t crc32c_sw_raw(uint32_t c, const uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint32_t lo = c ^ crc32c_load_le32(p);
        uint32_t hi = crc32c_load_le32(p + 4);
        c = crc32c_table[7][lo & 0xff] ^ crc32c_table[6][(lo >> 8) & 0xff] ^
            crc32c_table[5][(lo >> 16) & 0xff] ^ crc32c_table[4][lo >> 24] ^
            crc32c_table[3][hi & 0xff] ^ crc32c_table[2][(hi >> 8) & 0xff] ^
            crc32c_table[1][(hi >> 16) & 0xff] ^ crc32c_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ crc32c_table[0][(c ^ *p++) & 0xff];
    return c;
}

uint32_t sl_crc32c_sw(uint32_t crc, const void *p, size_t n)
{
    if (n == 0)
        return crc;
    pthread_once(&crc32c_once, crc32c_init);
    return ~crc32c_sw_raw(~crc, p, n);
}

#if defined(__x86_64__)

/* Compiled for SSE4.2 on its own so the rest of the tree runs on any x86-64; only reached after
 * the CPU check. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw_raw(uint32_t c, const uint8_t *p,
                                                                size_t n)
{
    /* Aligned 8-byte loads never straddle a cache line. */
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        c = _mm_crc32_u8(c, *p++);
        n--;
    }
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, sizeof(w));
        c64 = _mm_crc32_u64(c64, w);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--)
        c = _mm_crc32_u8(c, *p++);
    return c;
}

bool sl_crc32c_hw_available(void)
{
    pthread_once(&crc32c_once, crc32c_init);
    return crc32c_use_hw;
}

uint32_t sl_crc32c_hw(uint32_t crc, const void *p, size_t n)
{
    if (n == 0)
        return crc;
    if (!sl_crc32c_hw_available())
        return sl_crc32c_sw(crc, p, n);
    return ~crc32c_hw_raw(~crc, p, n);
}

uint32_t sl_crc32c(uint32_t crc, const void *p, size_t n)
{
    if (n == 0)
        return crc;
    pthread_once(&crc32c_once, crc32c_init);
    if (crc32c_use_hw)
        return ~crc32c_hw_raw(~crc, p, n);
    return ~crc32c_sw_raw(~crc, p, n);
}

#else /* !__x86_64__ */

bool sl_crc32c_hw_available(void)
{
    return false;
}

uint32_t sl_crc32c_hw(uint32_t crc, const void *p, size_t n)
{
    return sl_crc32c_sw(crc, p, n);
}

uint32_t sl_crc32c(uint32_t crc, const void *p, size_t n)
{
    return sl_crc32c_sw(crc, p, n);
}

#endif
