"""Frame headers, RFC 6455 sections 5.2 and 5.5: the pure-Python reference.

Sans-I/O: the functions read bytes from a buffer and say what the header holds, or
build the bytes of a header; they never touch a socket, and nothing here imports
asyncio.  The optional cffi accelerator (``_picows_accel``, ``header.c``) implements
the same decoders and the masked-frame encoder; the status codes
below are shared with it (``header.h`` must keep the same numbers), and
:func:`header_error` turns a code into the :class:`WSProtocolError` that both paths
raise, so the messages live in one place.

Header layout (5.2)::

    byte 0   FIN(1) RSV1(1) RSV2(1) RSV3(1) opcode(4)
    byte 1   MASK(1) payload len(7)
    +2 or +8 extended payload length, big-endian, when payload len is 126 or 127
    +4       masking key, when MASK is set

Decoding is incremental: a header whose bytes have not all arrived gives None, and a
violation is raised as soon as the bytes that prove it are there (a reserved opcode
is reported once the two fixed bytes are in, before any extended-length byte
arrives).  The checks run in
a fixed order (opcode, RSV bits, control-frame rules, length encoding,
``max_frame_size``, masking), so every way of splitting the input gives the same error.
"""

from __future__ import annotations

import struct
from typing import Optional, Union

from ._exceptions import WSProtocolError
from ._mask import apply_mask, mask_into
from ._types import WSCloseCode

__all__ = [
    "BATCH_FRAMES",
    "FIN_BIT",
    "HDR_BAD_LENGTH_16",
    "HDR_BAD_LENGTH_64",
    "HDR_BAD_OPCODE",
    "HDR_BAD_RSV",
    "HDR_CONTROL_TOO_LONG",
    "HDR_FRAGMENTED_CONTROL",
    "HDR_INCOMPLETE",
    "HDR_LIMIT",
    "HDR_MASKED",
    "HDR_OK",
    "HDR_PARTIAL",
    "HDR_TOO_BIG",
    "HDR_UNMASKED",
    "LENGTH_16",
    "LENGTH_64",
    "LENGTH_BITS",
    "MASK_BIT",
    "MAX_CONTROL_PAYLOAD",
    "MAX_HEADER_SIZE",
    "MAX_LENGTH_7",
    "MAX_LENGTH_16",
    "MAX_LENGTH_64",
    "OPCODE_BITS",
    "RSV1_BIT",
    "RSV2_BIT",
    "RSV3_BIT",
    "RSV_BITS",
    "SendBuffer",
    "build_frame",
    "decode_header",
    "decode_headers",
    "encode_header",
    "first_byte",
    "header_error",
]

ReadableBuffer = Union[bytes, bytearray, memoryview]

# --- 5.2: bits of the first two header bytes ---------------------------------------
FIN_BIT = 0x80
RSV1_BIT = 0x40
RSV2_BIT = 0x20
RSV3_BIT = 0x10
RSV_BITS = RSV1_BIT | RSV2_BIT | RSV3_BIT
OPCODE_BITS = 0x0F
MASK_BIT = 0x80
LENGTH_BITS = 0x7F

# 5.2 "Payload length": 7 bits, or 126 + 16 bits, or 127 + 64 bits.
LENGTH_16 = 126
LENGTH_64 = 127
MAX_LENGTH_7 = 125
MAX_LENGTH_16 = 0xFFFF
MAX_LENGTH_64 = 0x7FFF_FFFF_FFFF_FFFF  # "the most significant bit MUST be 0"

#: 2 fixed bytes + 8 bytes of 64-bit length + 4 bytes of masking key.
MAX_HEADER_SIZE = 14

# 5.5: "All control frames MUST have a payload length of 125 bytes or less".
MAX_CONTROL_PAYLOAD = 125

# 5.2 opcodes: 0x0-0x2 data, 0x8-0xA control; 0x3-0x7 and 0xB-0xF are reserved.
# Indexed by opcode: the name used in messages, None for a reserved opcode.
_OPCODE_NAMES: tuple[Optional[str], ...] = (
    *("CONTINUATION", "TEXT", "BINARY"),  # 0x0-0x2
    *(None,) * 5,  # 0x3-0x7
    *("CLOSE", "PING", "PONG"),  # 0x8-0xA
    *(None,) * 5,  # 0xB-0xF
)

# --- status codes, shared with the C decoder (src/_picows_accel/header.h) ----------
HDR_OK = 0  #: a header was decoded
HDR_INCOMPLETE = 1  #: the header's bytes have not all arrived
HDR_PARTIAL = 2  #: (C batch) the header is complete, the payload is not
HDR_LIMIT = 3  #: (C batch) ``max_frames`` frames decoded; more may follow
# Violations: every code from 8 on names one rule of RFC 6455 5.1, 5.2 or 5.5.
HDR_BAD_OPCODE = 8
HDR_BAD_RSV = 9
HDR_FRAGMENTED_CONTROL = 10
HDR_CONTROL_TOO_LONG = 11
HDR_BAD_LENGTH_16 = 12
HDR_BAD_LENGTH_64 = 13
HDR_TOO_BIG = 14
HDR_MASKED = 15
HDR_UNMASKED = 16

#: Frames decoded per call of :func:`decode_headers` when the caller does not say.
BATCH_FRAMES = 64

_UNPACK_16 = struct.Struct("!H").unpack_from
_UNPACK_64 = struct.Struct("!Q").unpack_from
_PACK_7 = struct.Struct("!BB").pack
_PACK_16 = struct.Struct("!BBH").pack
_PACK_64 = struct.Struct("!BBQ").pack


def header_error(status: int, first_byte: int, length: int, max_frame_size: int) -> WSProtocolError:
    """The exception for violation ``status`` (an ``HDR_*`` code from 8 on).

    ``first_byte`` is byte 0 of the offending header; ``length`` is its payload
    length as far as it was decoded (used by the length and size messages).  The one
    place that holds these messages: the pure and the C decoders both come here.
    """
    # The reasons are upstream picows' own words (they reach the peer in the CLOSE).
    opcode = first_byte & OPCODE_BITS
    if status == HDR_TOO_BIG:
        return WSProtocolError(
            WSCloseCode.MESSAGE_TOO_BIG,
            "Received frame with payload size exceeding max allowed size, "
            f"{length} > {max_frame_size}",
        )
    if status == HDR_BAD_OPCODE:
        # 5.2: opcodes 0x3-0x7 and 0xB-0xF are reserved.
        reason = f"Received frame with invalid opcode={opcode:#x}"
    elif status == HDR_BAD_RSV:
        # 5.2: RSV bits need an extension that defines them; none does for control frames.
        reason = "Received control frame with RSV bits set, RFC 6455 section 5.2 forbids this"
    elif status == HDR_FRAGMENTED_CONTROL:
        reason = "Received fragmented control frame"  # 5.5: "MUST NOT be fragmented"
    elif status == HDR_CONTROL_TOO_LONG:
        # 5.5: "All control frames MUST have a payload length of 125 bytes or less"
        reason = f"Received control frame with payload size > 125 bytes, opcode={opcode:#x}"
    elif status == HDR_BAD_LENGTH_16:
        # 5.2: "the minimal number of bytes MUST be used to encode the length"
        reason = "Received frame with invalid 16-bit payload len"
    elif status == HDR_BAD_LENGTH_64:
        # 5.2: the same, and "the most significant bit MUST be 0"
        reason = "Received frame with invalid 64-bit payload length"
    elif status == HDR_MASKED:
        reason = "Received masked frame from server, RFC 6455 section 5.1 forbids this"
    elif status == HDR_UNMASKED:
        reason = "Received un-masked frame from client, RFC 6455 section 5.1 forbids this"
    else:
        raise ValueError(f"not a header violation status: {status}")
    return WSProtocolError(WSCloseCode.PROTOCOL_ERROR, reason)


def decode_header(
    buffer: ReadableBuffer,
    pos: int,
    end: int,
    expect_masked: bool,
    allow_rsv: bool,
    max_frame_size: int,
) -> Optional[tuple[int, int, int]]:
    """Decode the frame header at ``buffer[pos:end]``.

    Returns ``(first_byte, header_size, payload_length)``, or None while the bytes
    that fix the payload length have not all arrived.  ``header_size`` counts the
    masking key, whose bytes need not be there yet (nothing is checked in them): the
    whole frame is buffered once ``end - pos >= header_size + payload_length``.

    Raises :class:`WSProtocolError` for the first rule the header breaks.
    ``expect_masked`` is True on the server side (5.1), ``allow_rsv`` when an
    extension was negotiated (5.2), and data frames longer than ``max_frame_size``
    are refused on the announced length, before their payload arrives.
    """
    available = end - pos
    if available < 2:
        return None

    first = buffer[pos]
    second = buffer[pos + 1]
    opcode = first & OPCODE_BITS
    if _OPCODE_NAMES[opcode] is None:
        raise header_error(HDR_BAD_OPCODE, first, 0, max_frame_size)
    # 5.2 RSV1-3: "MUST be 0 unless an extension is negotiated that defines meanings
    # for non-zero values"; no extension defines them for control frames.
    if first & RSV_BITS and (opcode >= 8 or not allow_rsv):
        raise header_error(HDR_BAD_RSV, first, 0, max_frame_size)

    length = second & LENGTH_BITS
    header_size = 2
    if opcode >= 8:
        # 5.5: control frames "MUST NOT be fragmented" and carry <= 125 bytes.
        if not first & FIN_BIT:
            raise header_error(HDR_FRAGMENTED_CONTROL, first, length, max_frame_size)
        if length > MAX_CONTROL_PAYLOAD:
            raise header_error(HDR_CONTROL_TOO_LONG, first, length, max_frame_size)
    elif length == LENGTH_16:
        if available < 4:
            return None
        length = _UNPACK_16(buffer, pos + 2)[0]
        header_size = 4
        if length <= MAX_LENGTH_7:
            # 5.2: "the minimal number of bytes MUST be used to encode the length"
            raise header_error(HDR_BAD_LENGTH_16, first, length, max_frame_size)
    elif length == LENGTH_64:
        if available < 10:
            return None
        length = _UNPACK_64(buffer, pos + 2)[0]
        header_size = 10
        if length <= MAX_LENGTH_16 or length > MAX_LENGTH_64:
            raise header_error(HDR_BAD_LENGTH_64, first, length, max_frame_size)
    if length > max_frame_size and opcode < 8:
        # Checked on the announced length, before the payload arrives.
        raise header_error(HDR_TOO_BIG, first, length, max_frame_size)

    # 5.1: "a client MUST mask all frames that it sends to the server" and "a server
    # MUST NOT mask any frames that it sends to the client".
    if second & MASK_BIT:
        if not expect_masked:
            raise header_error(HDR_MASKED, first, length, max_frame_size)
        header_size += 4
    elif expect_masked:
        raise header_error(HDR_UNMASKED, first, length, max_frame_size)
    return first, header_size, length


def decode_headers(
    buffer: ReadableBuffer,
    pos: int,
    end: int,
    expect_masked: bool,
    allow_rsv: bool,
    max_frame_size: int,
    max_frames: int = BATCH_FRAMES,
) -> list[int]:
    """Decode the headers of up to ``max_frames`` *complete* frames from ``pos`` on.

    Returns a flat list: ``first_byte, header_size, payload_length`` for each complete
    frame in order, then one more item that says why decoding stopped at the byte
    after the last of them:

    * ``needed > 0``: a frame starts there whose header is decoded; it is ``needed``
      bytes long (header and payload) and not all of it has arrived;
    * ``0``: the header there is incomplete (or there are no bytes at all);
    * ``-1``: decode again from there: ``max_frames`` was reached, or the header
      there breaks a rule and the frames before it come first.

    A violation in the *first* header raises :class:`WSProtocolError` exactly as
    :func:`decode_header` does; a later one ends the batch, so that the next call,
    made after the frames before it were handled, raises it.
    """
    out: list[int] = []
    for _ in range(max_frames):
        try:
            header = decode_header(buffer, pos, end, expect_masked, allow_rsv, max_frame_size)
        except WSProtocolError:
            if not out:
                raise
            out.append(-1)
            return out
        if header is None:
            out.append(0)
            return out
        frame_size = header[1] + header[2]
        if frame_size > end - pos:
            out.append(frame_size)
            return out
        out += header
        pos += frame_size
    out.append(-1)
    return out


# --- encoding ------------------------------------------------------------------------


def first_byte(
    opcode: int, fin: bool = True, rsv1: bool = False, rsv2: bool = False, rsv3: bool = False
) -> int:
    """Byte 0 of a header: FIN, RSV1-3 and the opcode (only its low 4 bits count)."""
    first = (FIN_BIT if fin else 0) | (RSV1_BIT if rsv1 else 0) | (RSV2_BIT if rsv2 else 0)
    return first | (RSV3_BIT if rsv3 else 0) | (opcode & OPCODE_BITS)


def encode_header(first: int, length: int, mask_key: Optional[bytes] = None) -> bytes:
    """A header with byte 0 ``first`` (0-255), the length in its shortest form (5.2:
    "the minimal number of bytes MUST be used") and the masking key last, if any."""
    mask_bit = MASK_BIT if mask_key is not None else 0
    if length <= MAX_LENGTH_7:
        header = bytes((first, mask_bit | length))
    elif length <= MAX_LENGTH_16:
        header = _PACK_16(first, mask_bit | LENGTH_16, length)
    elif length <= MAX_LENGTH_64:
        header = _PACK_64(first, mask_bit | LENGTH_64, length)
    else:
        raise ValueError(f"payload of {length} bytes exceeds the 63-bit length limit")
    return header if mask_key is None else header + mask_key


def build_frame(first: int, payload: ReadableBuffer, mask_key: Optional[bytes] = None) -> bytes:
    """A whole frame with byte 0 ``first``: header, then the payload, masked with
    ``mask_key`` (5.3) when there is one.  The accelerator's version builds it in
    one C pass; this one is its reference."""
    if not 0 <= first <= 0xFF:
        raise ValueError(f"byte 0 of a header must be in 0..255, got {first}")
    if mask_key is not None:
        masked = apply_mask(payload, mask_key)  # checks the key
        size = len(masked)
        if size <= MAX_LENGTH_7:  # what encode_header does, without its call
            return _PACK_7(first, MASK_BIT | size) + bytes(mask_key) + masked
        return encode_header(first, size, bytes(mask_key)) + masked
    if isinstance(payload, memoryview) and not payload.c_contiguous:
        payload = payload.tobytes()
    size = payload.nbytes if isinstance(payload, memoryview) else len(payload)
    return encode_header(first, size) + payload


class SendBuffer:
    """A buffer that outgoing frames are built in, one after another.

    ``build()`` writes a whole frame (as :func:`build_frame` encodes it) to the front
    of the buffer and returns a view of it.  The caller writes the view to the
    transport and must not build the next frame while the transport may still
    hold the view (WSTransport checks ``get_write_buffer_size()``).
    """

    __slots__ = ("_buffer", "_view", "capacity")

    def __init__(self, capacity: int) -> None:
        #: The biggest frame, header included, that fits.
        self.capacity = capacity
        self._buffer = bytearray(capacity)
        self._view = memoryview(self._buffer)

    def build(
        self, first: int, payload: ReadableBuffer, mask_key: Optional[bytes] = None
    ) -> memoryview:
        if isinstance(payload, memoryview) and not payload.c_contiguous:
            payload = payload.tobytes()
        size = payload.nbytes if isinstance(payload, memoryview) else len(payload)
        if not 0 <= first <= 0xFF:
            raise ValueError(f"byte 0 of a header must be in 0..255, got {first}")
        if size + MAX_HEADER_SIZE > self.capacity:
            raise ValueError(f"a frame of {size} bytes does not fit in {self.capacity}")
        header = encode_header(first, size, mask_key)
        header_size = len(header)
        buffer = self._buffer
        if mask_key is None:
            buffer[header_size : header_size + size] = payload
        else:
            mask_into(buffer, header_size, payload, mask_key)  # checks the key
        buffer[:header_size] = header
        return self._view[: header_size + size]
