/* CRC-32C: the SSE4.2 crc32 instruction when the CPU has it, slicing-by-8 tables otherwise. */

/*
 * The crc32 instruction takes 3 cycles but can start one per cycle, so a single chain over a
 * buffer runs at a third of what the core can do. Long inputs are therefore cut into blocks of
 * three equal lanes hashed side by side, and the lane results are merged with the identity
 *
 *     raw(s, A || B) = shift_|B|(raw(s, A)) ^ raw(0, B)
 *
 * where raw() is the register without the pre/post inversion and shift_L is "append L zero
 * bytes", a linear map on 32 bits held as four 256-entry tables built once at init:
 *
 *   block:  | lane 0 (L bytes) | lane 1 (L bytes) | lane 2 (L bytes) |
 *              c0 from s           c1 from 0          c2 from 0
 *   merged: shift_L(shift_L(c0) ^ c1) ^ c2
 *
 * Two lane lengths: LONG blocks keep the merge cost negligible on big batches, SHORT blocks
 * mop up most of what is left; anything shorter than one SHORT block stays on the single chain.
 *
 * Where the CPU has AVX-512 and VPCLMULQDQ, inputs of CRC32C_FOLD_MIN bytes and more are
 * instead folded with carry-less multiplies (Intel's "Fast CRC Computation Using PCLMULQDQ",
 * 512 bits wide), about twice the three-lane rate, which matters because every produced batch
 * is checked on the loop thread. In the bit-reflected order a 16-byte block X = H x^64 + L
 * (H: its first 8 bytes) that lies D bits before block B contributes X x^D, so
 *
 *     fold_D(X) = H (x^(D+64) mod P) + L (x^D mod P)      (degree < 96, xored into B)
 *
 * Four 512-bit accumulators cover 256 bytes per step (D = 2048); they are merged (D = 512),
 * their four lanes folded into one (D = 384, 256, 128), and the last 16 bytes standing for
 * everything before them go through the crc32 instruction from 0, which reduces them mod P.
 * From CRC32C_MIX_MIN bytes, three crc32 lanes run beside the folding on the back of the input
 * (crc32c_fold_mixed): the multiplies bound the folding, the crc32 instruction runs on other
 * units, and together they reach about 75 GB/s where folding alone gives 55.
 */
#include "common/crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdlib.h>
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

/* Lane lengths in bytes, multiples of 8 so every lane is whole 8-byte words. */
#define CRC32C_LANE_LONG  8192
#define CRC32C_LANE_SHORT 256

/* shift[k][b] is the register after CRC32C_LANE_* zero bytes, starting from b << 8k. */
static uint32_t crc32c_shift_long[4][256];
static uint32_t crc32c_shift_short[4][256];

/* The folding path: below this many bytes the three-lane path is as fast. */
#define CRC32C_FOLD_MIN 1024
static bool crc32c_use_fold;
/* fold constants, {x^(D+64) mod P, x^D mod P} reflected, for D = 2048, 512, 384, 256, 128 */
static uint64_t crc32c_k2048[2], crc32c_k512[2], crc32c_k384[2], crc32c_k256[2], crc32c_k128[2];
/* From this many bytes the folding runs beside three crc32 lanes (crc32c_fold_mixed). */
#define CRC32C_MIX_MIN 8192
/* x2k[k]: x^(2^k - 33) mod P, reflected 32-bit, k >= 6: the factors of crc32c_shift_by */
static uint32_t crc32c_x2k[64];
#endif
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__)
/*
 * The constant that multiplies a 64-bit half lying `bits` bits before its target: x^bits mod P
 * as clmul wants it. Bit i of a reflected 64-bit operand is x^(63-i), and the 128-bit product
 * of two such operands, read back the same way, carries an extra factor x, hence bits - 1.
 */
static uint64_t crc32c_fold_k(unsigned bits)
{
    uint64_t r = 1; /* x^0, in normal order: bit i is x^i */
    for (unsigned i = 0; i < bits - 1; i++) {
        r <<= 1;
        if (r >> 32)
            r ^= 0x11EDC6F41ull; /* P, normal order, with its x^32 */
    }
    uint64_t refl = 0;
    for (int i = 0; i < 32; i++)
        if ((r >> i) & 1)
            refl |= 1ull << (63 - i);
    return refl;
}

/*
 * a b x^33 mod P for reflected 32-bit a and b: their carry-less product is 63 bits, which the
 * crc32 instruction reads as the 64-bit message x a b and returns times x^32, reduced. Keeping
 * factors in the form x^(e - 33) makes the x^33 cancel: mul33(x^(e-33), x^(f-33)) =
 * x^(e+f-33), and mul33(c, x^(e-33)) = c x^e, "append e/8 zero bytes" (crc32c_zeros_factor).
 */
__attribute__((target("pclmul,sse4.2"))) static uint32_t crc32c_mul33(uint32_t a, uint32_t b)
{
    __m128i prod = _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)a), _mm_cvtsi32_si128((int)b), 0);
    return (uint32_t)_mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(prod));
}

static void crc32c_fold_pair(uint64_t k[2], unsigned d)
{
    k[0] = crc32c_fold_k(d + 64); /* multiplies H, the low 64 bits of a block */
    k[1] = crc32c_fold_k(d);      /* multiplies L, the high 64 bits */
}

/*
 * Fills op with the "append len zero bytes" map, i.e. multiplication by x^(8 len) mod P.
 * Bit 31 of the reflected register is x^0, so one run of len zero bytes gives its image; bit
 * i - 1 is x times bit i, and the map commutes with multiplying by x, so each lower bit's image
 * is the one above times x: 32 cheap steps instead of 32 runs.
 */
static void crc32c_zeros_op(uint32_t op[4][256], size_t len)
{
    uint32_t image[32];
    uint32_t c = 0x80000000u;
    for (size_t i = 0; i < len; i++)
        c = (c >> 8) ^ crc32c_table[0][c & 0xff];
    image[31] = c;
    for (int bit = 31; bit > 0; bit--)
        image[bit - 1] = (image[bit] >> 1) ^ (CRC32C_POLY & (0u - (image[bit] & 1)));

    for (int k = 0; k < 4; k++) {
        op[k][0] = 0;
        for (uint32_t b = 1; b < 256; b++) {
            /* b's image is that of b without its lowest set bit, plus that bit's image. */
            op[k][b] = op[k][b & (b - 1)] ^ image[8 * k + __builtin_ctz(b)];
        }
    }
}
#endif

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
    if (crc32c_use_hw) {
        crc32c_zeros_op(crc32c_shift_long, CRC32C_LANE_LONG);
        crc32c_zeros_op(crc32c_shift_short, CRC32C_LANE_SHORT);
    }
    crc32c_use_fold = crc32c_use_hw && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("vpclmulqdq") && __builtin_cpu_supports("pclmul") &&
                      !getenv("SL_CRC32C_NO_FOLD"); /* tests and benchmarks: the other path */
    if (crc32c_use_fold) {
        crc32c_fold_pair(crc32c_k2048, 2048);
        crc32c_fold_pair(crc32c_k512, 512);
        crc32c_fold_pair(crc32c_k384, 384);
        crc32c_fold_pair(crc32c_k256, 256);
        crc32c_fold_pair(crc32c_k128, 128);
        crc32c_x2k[6] = 1; /* x^31: bit 31 - 31 */
        for (int k = 6; k < 63; k++)
            crc32c_x2k[k + 1] = crc32c_mul33(crc32c_x2k[k], crc32c_x2k[k]);
    }
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
 * the CPU check. The single chain: short inputs, and what the three-lane blocks leave over. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw_1way(uint32_t c, const uint8_t *p,
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

static uint32_t crc32c_shift(const uint32_t op[4][256], uint32_t c)
{
    return op[0][c & 0xff] ^ op[1][(c >> 8) & 0xff] ^ op[2][(c >> 16) & 0xff] ^ op[3][c >> 24];
}

/* One block of three lanes of `lane` bytes each from p; always inlined so `lane` is a constant
 * and the loop needs no length arithmetic. */
__attribute__((target("sse4.2"), always_inline)) static inline uint32_t
crc32c_hw_block(uint32_t c, const uint8_t *p, size_t lane, const uint32_t op[4][256])
{
    uint64_t c0 = c, c1 = 0, c2 = 0;
    for (size_t i = 0; i < lane; i += 8) {
        uint64_t w0, w1, w2;
        memcpy(&w0, p + i, sizeof(w0));
        memcpy(&w1, p + lane + i, sizeof(w1));
        memcpy(&w2, p + 2 * lane + i, sizeof(w2));
        c0 = _mm_crc32_u64(c0, w0);
        c1 = _mm_crc32_u64(c1, w1);
        c2 = _mm_crc32_u64(c2, w2);
    }
    c = crc32c_shift(op, (uint32_t)c0) ^ (uint32_t)c1;
    return crc32c_shift(op, c) ^ (uint32_t)c2;
}

#define CRC32C_FOLD_TARGET "avx512f,vpclmulqdq,pclmul,sse4.2"

__attribute__((target(CRC32C_FOLD_TARGET), always_inline)) static inline __m512i
crc32c_fold512(__m512i x, __m512i k, __m512i next)
{
    return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00),
                                     _mm512_clmulepi64_epi128(x, k, 0x11), next, 0x96);
}

__attribute__((target(CRC32C_FOLD_TARGET), always_inline)) static inline __m128i
crc32c_fold128(__m128i x, const uint64_t k[2])
{
    __m128i kk = _mm_set_epi64x((long long)k[1], (long long)k[0]);
    return _mm_xor_si128(_mm_clmulepi64_si128(x, kk, 0x00), _mm_clmulepi64_si128(x, kk, 0x11));
}

/* The four accumulators' 16 lanes, each 16 bytes after the one before, as one 128-bit block. */
__attribute__((target(CRC32C_FOLD_TARGET), always_inline)) static inline __m128i
crc32c_lanes_to_128(__m512i a)
{
    return _mm_xor_si128(
        _mm_xor_si128(crc32c_fold128(_mm512_extracti32x4_epi32(a, 0), crc32c_k384),
                      crc32c_fold128(_mm512_extracti32x4_epi32(a, 1), crc32c_k256)),
        _mm_xor_si128(crc32c_fold128(_mm512_extracti32x4_epi32(a, 2), crc32c_k128),
                      _mm512_extracti32x4_epi32(a, 3)));
}

/* The register after a 16-byte block that stands for everything before it. */
__attribute__((target(CRC32C_FOLD_TARGET), always_inline)) static inline uint32_t
crc32c_reduce128(__m128i y)
{
    uint64_t r = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(y));
    return (uint32_t)_mm_crc32_u64(r, (uint64_t)_mm_extract_epi64(y, 1));
}

/* A fold constant pair in each 128-bit lane. */
__attribute__((target(CRC32C_FOLD_TARGET), always_inline)) static inline __m512i
crc32c_bcast(const uint64_t k[2])
{
    return _mm512_broadcast_i32x4(_mm_set_epi64x((long long)k[1], (long long)k[0]));
}

/* The four accumulators over the first 256 bytes; the register enters as an xor over the first
 * 32 message bits. */
__attribute__((target(CRC32C_FOLD_TARGET), always_inline)) static inline void
crc32c_fold_load(__m512i a[4], uint32_t c, const uint8_t *p)
{
    a[0] = _mm512_xor_si512(_mm512_loadu_si512(p), _mm512_set_epi64(0, 0, 0, 0, 0, 0, 0, c));
    a[1] = _mm512_loadu_si512(p + 64);
    a[2] = _mm512_loadu_si512(p + 128);
    a[3] = _mm512_loadu_si512(p + 192);
}

/* Folds the accumulators over the next 256 bytes at p (k: the D = 2048 pair). */
__attribute__((target(CRC32C_FOLD_TARGET), always_inline)) static inline void
crc32c_fold_step(__m512i a[4], __m512i k, const uint8_t *p)
{
    a[0] = crc32c_fold512(a[0], k, _mm512_loadu_si512(p));
    a[1] = crc32c_fold512(a[1], k, _mm512_loadu_si512(p + 64));
    a[2] = crc32c_fold512(a[2], k, _mm512_loadu_si512(p + 128));
    a[3] = crc32c_fold512(a[3], k, _mm512_loadu_si512(p + 192));
}

/* The four accumulators as one, standing for the last 64 bytes (k: the D = 512 pair). */
__attribute__((target(CRC32C_FOLD_TARGET), always_inline)) static inline __m512i
crc32c_fold_merge(const __m512i a[4], __m512i k)
{
    return crc32c_fold512(crc32c_fold512(crc32c_fold512(a[0], k, a[1]), k, a[2]), k, a[3]);
}

/* The folding path (see the top of the file); n >= 256. */
__attribute__((target(CRC32C_FOLD_TARGET))) static uint32_t crc32c_fold(uint32_t c,
                                                                        const uint8_t *p, size_t n)
{
    const __m512i k2048 = crc32c_bcast(crc32c_k2048), k512 = crc32c_bcast(crc32c_k512);
    __m512i a[4];
    crc32c_fold_load(a, c, p);
    p += 256;
    n -= 256;
    while (n >= 256) {
        crc32c_fold_step(a, k2048, p);
        p += 256;
        n -= 256;
    }
    __m512i one = crc32c_fold_merge(a, k512);
    while (n >= 64) {
        one = crc32c_fold512(one, k512, _mm512_loadu_si512(p));
        p += 64;
        n -= 64;
    }
    __m128i y = crc32c_lanes_to_128(one);
    while (n >= 16) {
        y = _mm_xor_si128(crc32c_fold128(y, crc32c_k128), _mm_loadu_si128((const void *)p));
        p += 16;
        n -= 16;
    }
    uint32_t r = crc32c_reduce128(y);
    /* Clean upper register halves: otherwise every later context switch saves the wide state,
     * and code built for SSE may pay a transition (the compiler adds no vzeroupper here). */
    _mm256_zeroupper();
    return crc32c_hw_1way(r, p, n);
}

/* x^(8 bytes - 33) mod P (bytes a multiple of 8, at least 8): mul33(c, it) appends `bytes` zero
 * bytes to the register c. Built from the factors x2k of its binary digits. */
__attribute__((target("pclmul,sse4.2"))) static uint32_t crc32c_zeros_factor(size_t bytes)
{
    uint64_t e = (uint64_t)bytes * 8;
    uint32_t k = 0;
    bool first = true;
    for (int b = 6; b < 64 && (e >> b) != 0; b++) {
        if (!((e >> b) & 1))
            continue;
        k = first ? crc32c_x2k[b] : crc32c_mul33(k, crc32c_x2k[b]);
        first = false;
    }
    return k;
}

/*
 * Folding beside three crc32 lanes. The carry-less multiplies and the crc32 instruction run on
 * different units, and the folding alone is bound by the multiplies, so each step folds 256
 * bytes of the front part while each lane takes 40 bytes of its own part of the back:
 *
 *   | fold: 256 m bytes | lane 1: 40 m | lane 2: 40 m | lane 3: 40 m | rest (< 376) |
 *
 * and the parts are joined as in the three-lane path, with shifts computed for their length:
 * shift(shift(shift(fold) ^ lane1) ^ lane2) ^ lane3. n >= 2 * 376.
 */
__attribute__((target(CRC32C_FOLD_TARGET))) static uint32_t
crc32c_fold_mixed(uint32_t c, const uint8_t *p, size_t n)
{
    enum { STEP = 256, LANE = 40 };
    size_t m = n / (STEP + 3 * LANE), lane = LANE * m;
    const uint8_t *q = p + STEP * m; /* lane 1; lanes 2 and 3 follow */
    const __m512i k2048 = crc32c_bcast(crc32c_k2048);
    __m512i a[4];
    crc32c_fold_load(a, c, p);
    uint64_t c1 = 0, c2 = 0, c3 = 0;
    for (size_t i = 0; i < m; i++) {
        if (i > 0)
            crc32c_fold_step(a, k2048, p + STEP * i);
        const uint8_t *l = q + LANE * i;
        for (size_t w = 0; w < LANE; w += 8) {
            uint64_t w1, w2, w3;
            memcpy(&w1, l + w, 8);
            memcpy(&w2, l + lane + w, 8);
            memcpy(&w3, l + 2 * lane + w, 8);
            c1 = _mm_crc32_u64(c1, w1);
            c2 = _mm_crc32_u64(c2, w2);
            c3 = _mm_crc32_u64(c3, w3);
        }
    }
    uint32_t k = crc32c_zeros_factor(lane);
    uint32_t r =
        crc32c_reduce128(crc32c_lanes_to_128(crc32c_fold_merge(a, crc32c_bcast(crc32c_k512))));
    r = crc32c_mul33(r, k) ^ (uint32_t)c1;
    r = crc32c_mul33(r, k) ^ (uint32_t)c2;
    r = crc32c_mul33(r, k) ^ (uint32_t)c3;
    size_t done = (STEP + 3 * LANE) * m;
    _mm256_zeroupper(); /* as in crc32c_fold */
    return crc32c_hw_1way(r, p + done, n - done);
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw_raw(uint32_t c, const uint8_t *p,
                                                                size_t n)
{
    if (crc32c_use_fold && n >= CRC32C_MIX_MIN)
        return crc32c_fold_mixed(c, p, n);
    if (crc32c_use_fold && n >= CRC32C_FOLD_MIN)
        return crc32c_fold(c, p, n);
    /* Below this, the up to 7 alignment bytes could leave less than one short block. */
    if (n < 3 * CRC32C_LANE_SHORT + 7)
        return crc32c_hw_1way(c, p, n);
    while (((uintptr_t)p & 7) != 0) {
        c = _mm_crc32_u8(c, *p++);
        n--;
    }
    while (n >= 3 * CRC32C_LANE_LONG) {
        c = crc32c_hw_block(c, p, CRC32C_LANE_LONG, crc32c_shift_long);
        p += 3 * CRC32C_LANE_LONG;
        n -= 3 * CRC32C_LANE_LONG;
    }
    while (n >= 3 * CRC32C_LANE_SHORT) {
        c = crc32c_hw_block(c, p, CRC32C_LANE_SHORT, crc32c_shift_short);
        p += 3 * CRC32C_LANE_SHORT;
        n -= 3 * CRC32C_LANE_SHORT;
    }
    return crc32c_hw_1way(c, p, n);
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
