/* WebSocket masking, RFC 6455 section 5.3:
 *
 *   "Octet i of the transformed data ("transformed-octet-i") is the XOR of
 *    octet i of the original data ("original-octet-i") with octet at index
 *    i modulo 4 of the masking key ("masking-key-octet-j")".
 *
 * Portable C99 without intrinsics: the main loop XORs 8-byte words, loaded and
 * stored with memcpy() so that any alignment is legal; gcc and clang turn those
 * into plain (unaligned) moves and vectorise the loop at -O3.
 */
#include <string.h>

#include "mask.h"

#if defined(_MSC_VER)
#  define PICOWS_RESTRICT __restrict
#else
#  define PICOWS_RESTRICT restrict
#endif

static uint64_t load64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

static void store64(uint8_t *p, uint64_t w)
{
    memcpy(p, &w, sizeof w);
}

/* Two copies of the loop: with restrict the out-of-place one needs no runtime
   overlap check, and the in-place one has a single pointer, so both vectorise.
   k holds the (rotated) key twice, so every word starting at a multiple of 8
   lines up with it; byte order does not matter since k64 is loaded from bytes.
   Four independent words per turn (32 bytes) roughly double the speed of a
   one-word loop: the vectoriser then fills two 16-byte registers per turn. */
static void mask_copy(const uint8_t *PICOWS_RESTRICT src, uint8_t *PICOWS_RESTRICT dst,
                      size_t n, const uint8_t k[8])
{
    const uint64_t k64 = load64(k);
    size_t i = 0;

    for (; n - i >= 32; i += 32) {
        store64(dst + i, load64(src + i) ^ k64);
        store64(dst + i + 8, load64(src + i + 8) ^ k64);
        store64(dst + i + 16, load64(src + i + 16) ^ k64);
        store64(dst + i + 24, load64(src + i + 24) ^ k64);
    }
    for (; n - i >= 8; i += 8)
        store64(dst + i, load64(src + i) ^ k64);
    for (; i < n; i++)  /* i is a multiple of 8 here, so k[i & 7] is the right octet */
        dst[i] = (uint8_t)(src[i] ^ k[i & 7]);
}

static void mask_inplace(uint8_t *buf, size_t n, const uint8_t k[8])
{
    const uint64_t k64 = load64(k);
    size_t i = 0;

    for (; n - i >= 32; i += 32) {
        store64(buf + i, load64(buf + i) ^ k64);
        store64(buf + i + 8, load64(buf + i + 8) ^ k64);
        store64(buf + i + 16, load64(buf + i + 16) ^ k64);
        store64(buf + i + 24, load64(buf + i + 24) ^ k64);
    }
    for (; n - i >= 8; i += 8)
        store64(buf + i, load64(buf + i) ^ k64);
    for (; i < n; i++)
        buf[i] ^= k[i & 7];
}

void picows_mask(const uint8_t *src, uint8_t *dst, size_t n,
                 const uint8_t key[4], unsigned key_offset)
{
    /* Rotate the key so that k[0] applies to src[0]: masking a payload in
       pieces then matches masking it at once (see picows/_mask.py). */
    uint8_t k[8];
    unsigned j;

    for (j = 0; j < 8; j++)
        k[j] = key[(key_offset + j) & 3];
    if (src == dst)
        mask_inplace(dst, n, k);
    else
        mask_copy(src, dst, n, k);
}

void picows_unmask(uint8_t *buf, size_t start, size_t end)
{
    uint8_t key[4];

    memcpy(key, buf + start - 4, 4); /* a copy: the key bytes are not XOR-ed */
    picows_mask(buf + start, buf + start, end - start, key, 0);
}

int picows_unmask_in(uint8_t *buf, size_t size, size_t start, size_t end)
{
    /* The range check lives here so that Python can call this through
     * functools.partial, with no Python frame: 0 done, -1 outside the buffer. */
    if (start < 4 || start > end || end > size)
        return -1;
    picows_unmask(buf, start, end);
    return 0;
}

/* ---- build description, for _picows_accel.BACKEND_INFO ---- */

#define PICOWS_STR2(x) #x
#define PICOWS_STR(x) PICOWS_STR2(x)

#if defined(__clang__)
#  define PICOWS_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#  define PICOWS_COMPILER "gcc " __VERSION__
#elif defined(_MSC_VER)
#  define PICOWS_COMPILER "msvc " PICOWS_STR(_MSC_VER)
#else
#  define PICOWS_COMPILER "unknown compiler"
#endif

/* setup.py defines PICOWS_CFLAGS (a string literal) when it adds flags. */
#ifndef PICOWS_CFLAGS
#  define PICOWS_CFLAGS "default flags"
#endif

#if defined(__AVX2__)
#  define PICOWS_SIMD ", AVX2"
#elif defined(__SSE2__) || defined(_M_X64)
#  define PICOWS_SIMD ", SSE2"
#elif defined(__ARM_NEON) || defined(_M_ARM64)
#  define PICOWS_SIMD ", NEON"
#else
#  define PICOWS_SIMD ""
#endif

const char *picows_build_info(void)
{
    return PICOWS_COMPILER ", " PICOWS_CFLAGS PICOWS_SIMD;
}
