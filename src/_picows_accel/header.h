/* WebSocket frame header decoding (RFC 6455 sections 5.2 and 5.5) for picows'
   optional cffi accelerator.  picows/_header.py is the reference: the same checks
   in the same order, and the same status numbers (keep them in step). */
#ifndef PICOWS_HEADER_H
#define PICOWS_HEADER_H

#include <stddef.h>
#include <stdint.h>

/* Status codes.  Below 8: not a violation; from 8 on: which rule was broken. */
#define PICOWS_HDR_OK 0                 /* a header was decoded */
#define PICOWS_HDR_INCOMPLETE 1         /* the header's bytes have not all arrived */
#define PICOWS_HDR_PARTIAL 2            /* header complete, payload not (batch only) */
#define PICOWS_HDR_LIMIT 3              /* max_frames decoded, more may follow (batch) */
#define PICOWS_HDR_BAD_OPCODE 8         /* 5.2: opcodes 0x3-0x7 and 0xB-0xF reserved */
#define PICOWS_HDR_BAD_RSV 9            /* 5.2: RSV bits without an extension */
#define PICOWS_HDR_FRAGMENTED_CONTROL 10 /* 5.5: control frame without FIN */
#define PICOWS_HDR_CONTROL_TOO_LONG 11  /* 5.5: control payload over 125 bytes */
#define PICOWS_HDR_BAD_LENGTH_16 12     /* 5.2: 16-bit length that fits in 7 bits */
#define PICOWS_HDR_BAD_LENGTH_64 13     /* 5.2: 64-bit length not minimal, or MSB set */
#define PICOWS_HDR_TOO_BIG 14           /* data frame over max_frame_size */
#define PICOWS_HDR_MASKED 15            /* 5.1: masked frame from a server */
#define PICOWS_HDR_UNMASKED 16          /* 5.1: unmasked frame from a client */

/* Decode the header in buf[0:avail).  Always sets out[0] = byte 0 (when avail >= 1)
   and out[2] = the payload length as far as it is known; on PICOWS_HDR_OK also
   out[1] = header size including the masking key, whose bytes need not have
   arrived.  max_frame_size < 0 refuses every data frame.  Returns a status code. */
int picows_decode_header(const uint8_t *buf, size_t avail, int expect_masked,
                         int allow_rsv, int64_t max_frame_size, uint64_t out[3]);

/* Decode up to max_frames whole frames from buf[0:avail), one header after the
   other.  For each complete frame k < n, out[3k:3k+3] = (byte 0, header size,
   payload length).  Then out[3n:3n+4] says where and why it stopped, right after
   frame n - 1: (status, byte 0, header size, payload length), status being
   PICOWS_HDR_LIMIT, PICOWS_HDR_INCOMPLETE, PICOWS_HDR_PARTIAL (header size and
   length are set) or a violation (byte 0 and length as in picows_decode_header).
   out must hold 3 * max_frames + 4 values.  Returns n. */
size_t picows_decode_headers(const uint8_t *buf, size_t avail, int expect_masked,
                             int allow_rsv, int64_t max_frame_size, size_t max_frames,
                             uint64_t *out);

/* Build a whole frame (5.2) into dst: byte 0 as given, then the payload length in
   its shortest form, and the n payload bytes.  With a key (not NULL) the MASK bit
   is set, the 4 key bytes follow the length and the payload is XOR-ed with it
   (5.3); without one the payload is copied as is.  n must be below 2**63 and dst
   must hold n + 14 bytes.  Returns the frame's size. */
size_t picows_build_frame(uint8_t *dst, uint8_t first_byte, const uint8_t *payload,
                          size_t n, const uint8_t *key);

/* Build the frame picows_build_frame() builds and write() it to the descriptor fd
   at once, with no Python object in between (the client's send path: one C call
   per masked frame).  Returns how many bytes of the frame write() did not take: 0
   when it took them all, the whole frame when the socket was full (EAGAIN) or the
   call interrupted (EINTR); or -errno for any other failure (-ENOSYS on Windows,
   where sockets are no file descriptors).  n must be below 2**63. */
long picows_send_frame(int fd, uint8_t first_byte, const uint8_t *payload, size_t n,
                       const uint8_t *key);

/* picows_send_frame() with the caller's buffer: a masked frame is built in frame,
   which must then hold n + 14 bytes, and written; of an unmasked frame only the
   header is built there (14 bytes are enough), and one writev() sends it with the
   payload where it is, copying nothing.  Either way the frame's header is at the
   start of frame afterwards, for the caller to queue what was not sent.  Returns
   what picows_send_frame() returns. */
long picows_send_frame_in(int fd, uint8_t *frame, uint8_t first_byte,
                          const uint8_t *payload, size_t n, const uint8_t *key);

#endif /* PICOWS_HEADER_H */
