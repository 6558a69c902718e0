"""Optional cffi accelerator for picows: masking and frame-header decoding in C.

The masking functions (RFC 6455 section 5.3) match :mod:`picows._mask`, the
documented pure-Python reference, argument for argument and byte for byte
(``tests/test_accel.py`` checks that).  The header decoders (5.2, 5.5) match
:mod:`picows._header` result for result and error for error
(``tests/test_header.py``); which of them picows uses on which interpreter is
decided in :mod:`picows._backend`, from ``benchmarks/header_results.md``.

This package is installed even in the pure wheel, but importing it raises
ImportError unless the compiled ``_picows_accel._cffi`` module was built; that is
how :mod:`picows._backend` decides to fall back to pure Python.
"""

from __future__ import annotations

from array import array
from functools import partial
from typing import TYPE_CHECKING, Callable, Optional, Union, cast

import _cffi_backend

# ImportError here (extension not built, or cffi missing on CPython) is the signal.
from ._cffi import ffi, lib

if TYPE_CHECKING:
    from cffi import FFI

__all__ = [
    "BACKEND_INFO",
    "HeaderViolation",
    "SendBuffer",
    "apply_mask",
    "apply_mask_inplace",
    "bind_unmask",
    "build_frame",
    "decode_header",
    "decode_headers",
    "send_frame",
    "set_header_error",
    "write_frame",
]

ReadableBuffer = Union[bytes, bytearray, memoryview]
WritableBuffer = Union[bytearray, memoryview]

# char* -> bytes: ffi.string() is typed bytes | str because wchar_t* gives str.
_BUILD_INFO = cast(bytes, ffi.string(lib.picows_build_info())).decode()
BACKEND_INFO: str = f"cffi {_cffi_backend.__version__}, {_BUILD_INFO}"

# Bound once: each call then costs no attribute lookups on ffi/lib.
_mask = lib.picows_mask
_unmask_in = lib.picows_unmask_in
_from_buffer = ffi.from_buffer
# A char[] unpacks to bytes; the cast (done once) narrows cffi's bytes | str | list.
_unpack = cast("Callable[[FFI.CData, int], bytes]", ffi.unpack)
_new_scratch = ffi.new_allocator(should_clear_after_alloc=False)

# apply_mask() masks into a reused C buffer, then copies it into the new bytes:
# cffi cannot fill a bytes object in place, so one copy is unavoidable, but a
# fresh output buffer per call costs more (see benchmarks/mask_results.md).  The
# pool is a list because pop()/append() are atomic: a thread, or a signal handler
# re-entering apply_mask(), that finds it empty just allocates its own buffer.
_SCRATCH_MIN = 1 << 16  # smallest buffer, and the rounding unit for bigger ones
_SCRATCH_KEEP = 1 << 22  # larger buffers are freed after use, not kept
_scratch_pool: list[FFI.CData] = []


def _take_scratch(needed: int) -> FFI.CData:
    """A scratch buffer of at least ``needed`` bytes, from the pool if it has one."""
    try:
        scratch = _scratch_pool.pop()
    except IndexError:
        scratch = None
    if scratch is None or len(scratch) < needed:
        scratch = _new_scratch("char[]", (needed + _SCRATCH_MIN - 1) & -_SCRATCH_MIN)
    return scratch


def _give_back(scratch: FFI.CData) -> None:
    """Return ``scratch`` to the pool, unless it is huge or the pool has one."""
    if len(scratch) <= _SCRATCH_KEEP and not _scratch_pool:
        _scratch_pool.append(scratch)


def _key_bytes(key: bytes) -> bytes:
    """The slow path for keys that are not 4-byte bytes objects."""
    # Same test and message as picows._mask._rotated(); C reads exactly 4 bytes.
    if len(key) != 4:
        raise ValueError(f"masking key must be 4 bytes, got {len(key)}")
    return bytes(key)  # cffi passes only bytes to "const uint8_t *" without from_buffer()


def _c_source(data: ReadableBuffer) -> tuple[object, int]:
    """What C gets for ``data`` (bytes as they are, other buffers through
    ``from_buffer``, non-contiguous views copied first) and its size in bytes."""
    if type(data) is bytes:
        return data, len(data)  # cffi passes bytes straight to C
    if isinstance(data, memoryview):
        if not data.c_contiguous:
            data = data.tobytes()
            return data, len(data)
        return _from_buffer(data), data.nbytes  # len() counts items, not bytes
    return _from_buffer(data), len(data)


def _c_key(mask_key: Optional[bytes]) -> object:
    """The key argument of picows_build_frame: NULL for an unmasked frame."""
    if mask_key is None:
        return _NULL
    return mask_key if type(mask_key) is bytes and len(mask_key) == 4 else _key_bytes(mask_key)


def apply_mask(data: ReadableBuffer, key: bytes, key_offset: int = 0) -> bytes:
    """Return ``data`` XOR-ed with the repeating 4-byte ``key``, as new bytes."""
    if type(key) is not bytes or len(key) != 4:
        key = _key_bytes(key)
    src, size = _c_source(data)
    if size == 0:
        return b""
    scratch = _take_scratch(size)
    _mask(src, scratch, size, key, key_offset & 3)
    out = _unpack(scratch, size)
    _give_back(scratch)
    return out


def apply_mask_inplace(
    buf: WritableBuffer, start: int, end: int, key: bytes, key_offset: int = 0
) -> None:
    """XOR ``buf[start:end]`` with the repeating ``key`` in place.

    Unlike the pure version, which follows slice rules, an out-of-range
    ``start``/``end`` raises ValueError instead of being clipped or ignored.
    """
    size = len(buf)
    if not 0 <= start <= end <= size:
        raise ValueError(f"mask range [{start}:{end}] is outside a buffer of length {size}")
    if start == end:
        return  # the pure version does not look at the key either
    if type(key) is not bytes or len(key) != 4:
        key = _key_bytes(key)
    if not isinstance(buf, bytearray) and not (
        isinstance(buf, memoryview)
        and buf.format == "B"
        and buf.ndim == 1
        and buf.c_contiguous
        and not buf.readonly
    ):
        # Strided, typed or read-only views: slice exactly like the pure version
        # (which also raises the same errors for the layouts it cannot assign to).
        buf[start:end] = apply_mask(memoryview(buf)[start:end], key, key_offset)
        return
    # A pointer into buf itself, no copy.  `view` holds the buffer export for the
    # whole call (cffi releases the GIL), so nobody can resize buf under C's feet.
    # Writability was checked above: require_writable=True would cost ~0.2 us per
    # call on CPython (keyword parsing), more than the check itself.
    view = _from_buffer(buf)
    ptr = view + start
    _mask(ptr, ptr, end - start, key, key_offset & 3)


_unmask = lib.picows_unmask


def bind_unmask(buffer: bytearray) -> Callable[[int, int], int]:
    """``unmask(start, end)`` for ``buffer``: XOR ``buffer[start:end]`` in place with
    the masking key in the 4 bytes before ``start``, where a received frame has it.
    Returns 0, or -1 (touching nothing) when that range is not inside the buffer.

    The pointer into ``buffer`` is taken once, here, instead of per frame, and the
    result is a ``functools.partial`` of the C function, so a call runs no Python
    frame at all: the range check is in C (``picows_unmask_in``).  The pointer pins
    the buffer's size: FrameReader replaces its buffer instead of resizing it.
    """
    if type(buffer) is not bytearray:
        raise TypeError(f"buffer must be a bytearray, not {type(buffer).__name__}")
    return cast("Callable[[int, int], int]", partial(_unmask_in, _from_buffer(buffer), len(buffer)))


# --- frame headers (RFC 6455 5.2, 5.5): header.c, twin of picows/_header.py ---------

# Status codes of header.h; picows._header has the same numbers (HDR_*), which
# tests/test_header.py checks.  Nothing is imported from picows at import time:
# picows imports this module (through picows._backend), so that would be circular.
_HDR_OK = lib.PICOWS_HDR_OK
_HDR_INCOMPLETE = lib.PICOWS_HDR_INCOMPLETE
_HDR_PARTIAL = lib.PICOWS_HDR_PARTIAL
_HDR_LIMIT = lib.PICOWS_HDR_LIMIT

#: Frames per decode_headers() call by default, as picows._header.BATCH_FRAMES.
BATCH_FRAMES = 64


class HeaderViolation(ValueError):
    """A header broke RFC 6455 5.2 or 5.5: ``status`` is the ``PICOWS_HDR_*`` code.

    Raised only until picows installs its own error maker with
    :func:`set_header_error` (picows._backend does at import), so that the messages
    live in one place, picows._header, and this package imports nothing from picows.
    """

    def __init__(self, status: int, first: int, length: int, max_frame_size: int) -> None:
        super().__init__(status, first, length, max_frame_size)
        self.status = status


_header_error: Callable[[int, int, int, int], Exception] = HeaderViolation


def set_header_error(make: Callable[[int, int, int, int], Exception]) -> None:
    """``make(status, first_byte, length, max_frame_size)`` builds the exception raised
    for a header violation from now on."""
    global _header_error
    _header_error = make


_decode_one = lib.picows_decode_header
_decode_many = lib.picows_decode_headers
_INT64_MAX = (1 << 63) - 1

# The C functions write their results into uint64 arrays owned by Python: an
# array("Q") converts to a list of ints several times faster than ffi.unpack().
# Each array travels with its cffi pointer, taken once.  cffi releases the GIL
# during the call, so two threads must not share one: like the masking scratch,
# they come from lists whose pop()/append() are atomic.
assert array("Q").itemsize == 8, "array('Q') must hold uint64_t"
_one_pool: list[tuple[array[int], FFI.CData]] = []
_many_pool: list[tuple[array[int], FFI.CData]] = []
_MANY_SIZE = 3 * BATCH_FRAMES + 4  # room for BATCH_FRAMES frames and the stop record


def _words(size: int) -> tuple[array[int], FFI.CData]:
    out = array("Q", bytes(8 * size))
    return out, _from_buffer("uint64_t[]", out)


def _c_limit(max_frame_size: int) -> int:
    """``max_frame_size`` clipped to int64_t without changing any decision.

    Every negative limit refuses every data frame (lengths are >= 0), and no valid
    length exceeds 2**63 - 1, so those two bounds decide exactly like Python."""
    return -1 if max_frame_size < 0 else min(max_frame_size, _INT64_MAX)


def _range_error(buffer: ReadableBuffer, pos: int, end: int) -> ValueError:
    return ValueError(f"header range [{pos}:{end}] is outside a buffer of length {len(buffer)}")


def decode_header(
    buffer: ReadableBuffer,
    pos: int,
    end: int,
    expect_masked: bool,
    allow_rsv: bool,
    max_frame_size: int,
) -> Optional[tuple[int, int, int]]:
    """Same as :func:`picows._header.decode_header`, in one C call.

    ``buffer`` must be a byte buffer (bytes, bytearray, a contiguous memoryview of
    bytes); a ``pos``/``end`` outside it raises ValueError.
    """
    if not 0 <= pos <= end <= len(buffer):
        raise _range_error(buffer, pos, end)
    try:
        out, ptr = _one_pool.pop()
    except IndexError:
        out, ptr = _words(3)
    src = _from_buffer(buffer) + pos
    try:
        status = _decode_one(src, end - pos, expect_masked, allow_rsv, max_frame_size, ptr)
    except OverflowError:  # a limit outside int64_t
        limit = _c_limit(max_frame_size)
        status = _decode_one(src, end - pos, expect_masked, allow_rsv, limit, ptr)
    first, header_size, length = out
    _one_pool.append((out, ptr))
    if status == _HDR_OK:
        return first, header_size, length
    if status == _HDR_INCOMPLETE:
        return None
    raise _header_error(status, first, length, max_frame_size)


def decode_headers(
    buffer: ReadableBuffer,
    pos: int,
    end: int,
    expect_masked: bool,
    allow_rsv: bool,
    max_frame_size: int,
    max_frames: int = BATCH_FRAMES,
) -> list[int]:
    """Same as :func:`picows._header.decode_headers`: all the headers in one C call.

    Returns ``first_byte, header_size, payload_length`` per complete frame, then the
    stop marker (``needed`` > 0, 0, or -1); raises for a violation in the first
    header.  Range and buffer rules as for :func:`decode_header`.
    """
    if not 0 <= pos <= end <= len(buffer):
        raise _range_error(buffer, pos, end)
    if 0 <= max_frames <= BATCH_FRAMES:
        try:
            out, ptr = _many_pool.pop()
        except IndexError:
            out, ptr = _words(_MANY_SIZE)
    else:
        max_frames = max(max_frames, 0)  # like range() in the pure version
        out, ptr = _words(3 * max_frames + 4)  # not kept: an unusual size
    src = _from_buffer(buffer) + pos
    try:
        count = _decode_many(
            src, end - pos, expect_masked, allow_rsv, max_frame_size, max_frames, ptr
        )
    except OverflowError:
        limit = _c_limit(max_frame_size)
        count = _decode_many(src, end - pos, expect_masked, allow_rsv, limit, max_frames, ptr)
    # The frames, then C's stop record: status, first_byte, header_size, length.
    stop = 3 * count
    result = out[: stop + 1].tolist()
    status = result[stop]
    if status == _HDR_PARTIAL:
        result[stop] = out[stop + 2] + out[stop + 3]  # the bytes the whole frame needs
    elif status == _HDR_INCOMPLETE:
        result[stop] = 0
    elif status == _HDR_LIMIT or count:
        result[stop] = -1  # decode again from there (a violation waits its turn)
    else:
        error = _header_error(status, out[1], out[3], max_frame_size)
        if len(out) == _MANY_SIZE:
            _many_pool.append((out, ptr))
        raise error
    if len(out) == _MANY_SIZE:
        _many_pool.append((out, ptr))
    return result


_build_frame = lib.picows_build_frame
_NULL = ffi.NULL


def build_frame(first: int, payload: ReadableBuffer, mask_key: Optional[bytes] = None) -> bytes:
    """A whole frame with byte 0 ``first``: header, then the payload, masked with
    ``mask_key`` (5.3) when there is one.

    One C call writes the frame into a reused scratch buffer, and one copy makes the
    bytes to send: no bytearray and no Python-level header.  A 256-byte client frame
    costs ~0.5 us instead of ~2.5 us on CPython; on PyPy, where copies between
    bytearrays and memoryviews run at ~2 GB/s and sockets copy a bytearray before
    sending it, a 1 MiB frame takes ~50 us instead of ~1 ms.
    """
    if not 0 <= first <= 0xFF:
        raise ValueError(f"byte 0 of a header must be in 0..255, got {first}")
    if type(payload) is bytes and type(mask_key) is bytes and len(mask_key) == 4:
        # What a client's send() gives: no conversion needed (the common case, inline).
        src: object = payload
        size = len(payload)
        key: object = mask_key
    else:
        key = _c_key(mask_key)
        src, size = _c_source(payload)
    scratch = _take_scratch(size + 14)  # the longest header: 2 + 8 + 4 key bytes
    frame = _unpack(scratch, _build_frame(scratch, first, src, size, key))
    _give_back(scratch)
    return frame


#: ``send_frame(fd, first, payload, size, key)``: build_frame's masked frame, written
#: to the descriptor ``fd`` in the same C call, no bytes object in between.  Returns
#: how many bytes of the frame are left to send (0: all went out; all of them when
#: the socket was full), or -errno for a failed write.  The C function itself,
#: unwrapped: the caller (WSTransport.send) passes a bytes payload and a 4-byte key.
send_frame: Callable[[int, int, bytes, int, bytes], int] = lib.picows_send_frame
_send_frame_in = lib.picows_send_frame_in


def write_frame(
    fd: int, first: int, payload: ReadableBuffer, mask_key: Optional[bytes] = None
) -> bytes:
    """Write the frame :func:`build_frame` would build straight to the descriptor
    ``fd``, with no Python object in between: a masked frame is built in a reused
    scratch buffer; an unmasked one goes out as header + payload in one ``writev``,
    copying nothing (a server echoing what it received).

    Returns what the socket did not take, as bytes for asyncio's ``write()`` (b""
    when it took everything); after a failed write, the whole frame, so that
    ``write()`` meets the error and reports it the way asyncio does.
    """
    if not 0 <= first <= 0xFF:
        raise ValueError(f"byte 0 of a header must be in 0..255, got {first}")
    key = _c_key(mask_key)
    src, size = _c_source(payload)
    masked = key is not _NULL
    scratch = _take_scratch(size + 14 if masked else 14)
    try:
        left = _send_frame_in(fd, scratch, first, src, size, key)
        if left == 0:
            return b""
        # 5.2: 2 bytes, the extended length (16 or 64 bits), then the key.
        header = 2 + (0 if size < 126 else 2 if size < 65536 else 8) + 4 * masked
        total = header + size
        start = total - left if left > 0 else 0  # the first byte not sent
        if masked:
            return _unpack(scratch + start, total - start)
        head = _unpack(scratch + start, header - start) if start < header else b""
        skip = max(start - header, 0)
        if type(src) is bytes:
            return head + src[skip:]
        return head + cast(bytes, ffi.buffer(src)[skip:size])
    finally:
        _give_back(scratch)


class SendBuffer:
    """A buffer that outgoing frames are built in, one after another (the twin of
    picows._header.SendBuffer).

    C memory, so that one C call writes header and payload (copied, or masked, in
    one pass).  Reusing it instead of a fresh object per frame avoids a page fault
    every 4 KiB of a fresh megabyte.  (CPython only: picows._backend explains why
    PyPy sends bytes objects.)
    """

    __slots__ = ("_memory", "_view", "capacity")

    def __init__(self, capacity: int) -> None:
        #: The biggest frame, header included, that fits.
        self.capacity = capacity
        self._memory = _new_scratch("char[]", capacity)
        self._view = memoryview(ffi.buffer(self._memory))

    def build(
        self, first: int, payload: ReadableBuffer, mask_key: Optional[bytes] = None
    ) -> memoryview:
        src, size = _c_source(payload)
        if not 0 <= first <= 0xFF:
            raise ValueError(f"byte 0 of a header must be in 0..255, got {first}")
        if size + 14 > self.capacity:
            raise ValueError(f"a frame of {size} bytes does not fit in {self.capacity}")
        key = _c_key(mask_key)
        return self._view[: _build_frame(self._memory, first, src, size, key)]
