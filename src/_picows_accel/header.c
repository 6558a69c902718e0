/* WebSocket frame header decoding, RFC 6455 sections 5.2 and 5.5.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-------+-+-------------+-------------------------------+
 *   |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
 *   |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
 *   |N|V|V|V|       |S|             |   (if payload len==126/127)   |
 *   | |1|2|3|       |K|             |                               |
 *   +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
 *
 * A line-by-line twin of decode_header() in picows/_header.py: the checks run in
 * the same order, so a violation is reported as soon as the bytes that prove it
 * are there, exactly as the Python version does.  Portable C99.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <sys/uio.h>
#include <unistd.h>
#endif

#include "header.h"
#include "mask.h"

#define FIN_BIT 0x80u
#define RSV_BITS 0x70u
#define OPCODE_BITS 0x0Fu
#define MASK_BIT 0x80u
#define LENGTH_BITS 0x7Fu
#define LENGTH_16 126u
#define LENGTH_64 127u
#define MAX_LENGTH_7 125u
#define MAX_LENGTH_16 0xFFFFu
#define MAX_LENGTH_64 UINT64_C(0x7FFFFFFFFFFFFFFF) /* "the most significant bit MUST be 0" */
#define MAX_CONTROL_PAYLOAD 125u

/* 5.2: opcodes 0x0-0x2 (data) and 0x8-0xA (control) are defined, the rest reserved. */
#define DEFINED_OPCODES ((1u << 0x0) | (1u << 0x1) | (1u << 0x2) | \
                         (1u << 0x8) | (1u << 0x9) | (1u << 0xA))

/* Network byte order ("multibyte length quantities are expressed in network byte
   order"), one byte at a time: no alignment or endianness assumptions. */
static uint64_t load_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    unsigned i;

    for (i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

int picows_decode_header(const uint8_t *buf, size_t avail, int expect_masked,
                         int allow_rsv, int64_t max_frame_size, uint64_t out[3])
{
    unsigned first, second, opcode;
    uint64_t length;
    uint64_t header_size = 2;

    out[0] = avail > 0 ? buf[0] : 0;
    out[1] = 0;
    out[2] = 0;
    if (avail < 2)
        return PICOWS_HDR_INCOMPLETE;

    first = buf[0];
    second = buf[1];
    opcode = first & OPCODE_BITS;
    if (!((DEFINED_OPCODES >> opcode) & 1u))
        return PICOWS_HDR_BAD_OPCODE;
    /* 5.2 RSV1-3: "MUST be 0 unless an extension is negotiated"; none defines
       them for control frames. */
    if ((first & RSV_BITS) && (opcode >= 8 || !allow_rsv))
        return PICOWS_HDR_BAD_RSV;

    length = second & LENGTH_BITS;
    out[2] = length;
    if (opcode >= 8) {
        /* 5.5: control frames "MUST NOT be fragmented" and carry <= 125 bytes. */
        if (!(first & FIN_BIT))
            return PICOWS_HDR_FRAGMENTED_CONTROL;
        if (length > MAX_CONTROL_PAYLOAD)
            return PICOWS_HDR_CONTROL_TOO_LONG;
    } else if (length == LENGTH_16) {
        if (avail < 4)
            return PICOWS_HDR_INCOMPLETE;
        out[2] = length = load_be(buf + 2, 2);
        header_size = 4;
        /* 5.2: "the minimal number of bytes MUST be used to encode the length" */
        if (length <= MAX_LENGTH_7)
            return PICOWS_HDR_BAD_LENGTH_16;
    } else if (length == LENGTH_64) {
        if (avail < 10)
            return PICOWS_HDR_INCOMPLETE;
        out[2] = length = load_be(buf + 2, 8);
        header_size = 10;
        if (length <= MAX_LENGTH_16 || length > MAX_LENGTH_64)
            return PICOWS_HDR_BAD_LENGTH_64;
    }
    /* Checked on the announced length, before the payload arrives.  length is at
       most MAX_LENGTH_64 here, so it fits in int64_t. */
    if (opcode < 8 && (int64_t)length > max_frame_size)
        return PICOWS_HDR_TOO_BIG;

    /* 5.1: "a client MUST mask all frames that it sends to the server" and "a
       server MUST NOT mask any frames that it sends to the client". */
    if (second & MASK_BIT) {
        if (!expect_masked)
            return PICOWS_HDR_MASKED;
        header_size += 4;
    } else if (expect_masked) {
        return PICOWS_HDR_UNMASKED;
    }
    out[1] = header_size;
    return PICOWS_HDR_OK;
}

size_t picows_decode_headers(const uint8_t *buf, size_t avail, int expect_masked,
                             int allow_rsv, int64_t max_frame_size, size_t max_frames,
                             uint64_t *out)
{
    size_t n = 0;
    size_t pos = 0;
    uint64_t header[3] = {0, 0, 0};
    uint64_t frame_size;
    int status = PICOWS_HDR_LIMIT;
    uint64_t *stop;

    while (n < max_frames) {
        status = picows_decode_header(buf + pos, avail - pos, expect_masked, allow_rsv,
                                      max_frame_size, header);
        if (status != PICOWS_HDR_OK)
            break;
        /* header[2] <= 2**63 - 1 and header[1] <= 14: no overflow. */
        frame_size = header[1] + header[2];
        if (frame_size > avail - pos) {
            status = PICOWS_HDR_PARTIAL;
            break;
        }
        out[3 * n] = header[0];
        out[3 * n + 1] = header[1];
        out[3 * n + 2] = header[2];
        pos += (size_t)frame_size;
        n++;
        status = PICOWS_HDR_LIMIT;
        header[0] = header[1] = header[2] = 0;
    }
    stop = out + 3 * n;
    stop[0] = (uint64_t)status;
    stop[1] = header[0];
    stop[2] = header[1];
    stop[3] = header[2];
    return n;
}

/* ---- encoding, twin of build_frame() in _header.py ---- */

/* The header alone: byte 0, the length in its shortest form, then the key (if
   any).  Returns its size, 2 to 14 bytes. */
static size_t build_header(uint8_t *dst, uint8_t first_byte, size_t n, const uint8_t *key)
{
    uint8_t mask_bit = key != NULL ? MASK_BIT : 0;
    size_t h = 0;
    int shift;

    dst[h++] = first_byte;
    if (n <= MAX_LENGTH_7) {
        dst[h++] = (uint8_t)(mask_bit | n);
    } else if (n <= MAX_LENGTH_16) {
        dst[h++] = (uint8_t)(mask_bit | LENGTH_16);
        dst[h++] = (uint8_t)(n >> 8);
        dst[h++] = (uint8_t)n;
    } else {
        dst[h++] = (uint8_t)(mask_bit | LENGTH_64);
        for (shift = 56; shift >= 0; shift -= 8)
            dst[h++] = (uint8_t)((uint64_t)n >> shift);
    }
    if (key != NULL) {
        memcpy(dst + h, key, 4);
        h += 4;
    }
    return h;
}

size_t picows_build_frame(uint8_t *dst, uint8_t first_byte, const uint8_t *payload,
                          size_t n, const uint8_t *key)
{
    size_t h = build_header(dst, first_byte, n, key);

    if (key == NULL)
        memcpy(dst + h, payload, n);
    else
        picows_mask(payload, dst + h, n, key, 0);
    return h + n;
}

/* Masked frames up to this payload size are built on the stack, bigger ones in
   malloc(); of unmasked frames only the header is built (picows_send_frame_in). */
#define SEND_STACK_PAYLOAD 2048

long picows_send_frame(int fd, uint8_t first_byte, const uint8_t *payload, size_t n,
                       const uint8_t *key)
{
    uint8_t stack[SEND_STACK_PAYLOAD + 14];
    uint8_t *frame = n <= SEND_STACK_PAYLOAD || key == NULL ? stack : malloc(n + 14);
    long left;

    if (frame == NULL)
        return -ENOMEM;
    left = picows_send_frame_in(fd, frame, first_byte, payload, n, key);
    if (frame != stack)
        free(frame);
    return left;
}

long picows_send_frame_in(int fd, uint8_t *frame, uint8_t first_byte,
                          const uint8_t *payload, size_t n, const uint8_t *key)
{
#ifdef _WIN32
    (void)fd; (void)frame; (void)first_byte; (void)payload; (void)n; (void)key;
    return -ENOSYS;
#else
    size_t size;
    ssize_t sent;

    if (key == NULL) {
        /* Unmasked: the header alone goes into frame, and one writev() sends it
           with the payload where it is, copying nothing. */
        struct iovec parts[2];

        size = build_header(frame, first_byte, n, NULL);
        parts[0].iov_base = frame;
        parts[0].iov_len = size;
        parts[1].iov_base = (void *)payload;
        parts[1].iov_len = n;
        size += n;
        sent = writev(fd, parts, 2);
    } else {
        size = picows_build_frame(frame, first_byte, payload, n, key);
        sent = write(fd, frame, size);
    }
    if (sent >= 0)
        return (long)(size - (size_t)sent);
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return (long)size; /* nothing written: asyncio queues the whole frame */
    return -(long)errno;
#endif
}
