/* WebSocket masking (RFC 6455 section 5.3) for picows' optional cffi accelerator. */
#ifndef PICOWS_MASK_H
#define PICOWS_MASK_H

#include <stddef.h>
#include <stdint.h>

/* XOR n bytes of src with the repeating 4-byte key into dst; key[key_offset & 3]
   applies to src[0].  Works in place (src == dst); otherwise the two ranges must
   not overlap.  Any alignment of src and dst is fine. */
void picows_mask(const uint8_t *src, uint8_t *dst, size_t n,
                 const uint8_t key[4], unsigned key_offset);

/* Unmask a received frame where it lies: XOR buf[start:end] with the 4-byte key
   at buf[start - 4 : start] (RFC 6455 5.2: the masking key directly precedes the
   payload).  The caller guarantees 4 <= start <= end <= the buffer's size. */
void picows_unmask(uint8_t *buf, size_t start, size_t end);
int picows_unmask_in(uint8_t *buf, size_t size, size_t start, size_t end);

/* Static, human-readable description of the compiler and flags used. */
const char *picows_build_info(void);

#endif /* PICOWS_MASK_H */
