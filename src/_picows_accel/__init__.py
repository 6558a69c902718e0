"""Optional cffi accelerator for picows: WebSocket masking (RFC 6455 section 5.3) in C.

The functions match :mod:`picows._mask` (the documented pure-Python reference)
argument for argument and byte for byte; ``tests/test_accel.py`` checks that.

This package is installed even in the pure wheel, but importing it raises
ImportError unless the compiled ``_picows_accel._cffi`` module was built; that is
how :mod:`picows._backend` decides to fall back to pure Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Union, cast

import _cffi_backend

# ImportError here (extension not built, or cffi missing on CPython) is the signal.
from ._cffi import ffi, lib

if TYPE_CHECKING:
    from cffi import FFI

__all__ = ["BACKEND_INFO", "apply_mask", "apply_mask_inplace"]

ReadableBuffer = Union[bytes, bytearray, memoryview]
WritableBuffer = Union[bytearray, memoryview]

# char* -> bytes: ffi.string() is typed bytes | str because wchar_t* gives str.
_BUILD_INFO = cast(bytes, ffi.string(lib.picows_build_info())).decode()
BACKEND_INFO: str = f"cffi {_cffi_backend.__version__}, {_BUILD_INFO}"

# Bound once: each call then costs no attribute lookups on ffi/lib.
_mask = lib.picows_mask
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


def _key_bytes(key: bytes) -> bytes:
    """The slow path for keys that are not 4-byte bytes objects."""
    # Same test and message as picows._mask._rotated(); C reads exactly 4 bytes.
    if len(key) != 4:
        raise ValueError(f"masking key must be 4 bytes, got {len(key)}")
    return bytes(key)  # cffi passes only bytes to "const uint8_t *" without from_buffer()


def apply_mask(data: ReadableBuffer, key: bytes, key_offset: int = 0) -> bytes:
    """Return ``data`` XOR-ed with the repeating 4-byte ``key``, as new bytes."""
    if type(key) is not bytes or len(key) != 4:
        key = _key_bytes(key)
    src: object = data
    if type(data) is bytes:
        size = len(data)  # cffi passes bytes straight to C, no from_buffer() needed
    elif isinstance(data, memoryview):
        if data.c_contiguous:
            size = data.nbytes  # len() counts items, not bytes
            src = _from_buffer(data)
        else:
            src = data = data.tobytes()
            size = len(data)
    else:
        size = len(data)
        src = _from_buffer(data)
    if size == 0:
        return b""
    try:
        scratch = _scratch_pool.pop()
    except IndexError:
        scratch = None
    if scratch is None or len(scratch) < size:
        rounded = (size + _SCRATCH_MIN - 1) & -_SCRATCH_MIN
        scratch = _new_scratch("char[]", rounded)
    _mask(src, scratch, size, key, key_offset & 3)
    out = _unpack(scratch, size)
    if len(scratch) <= _SCRATCH_KEEP and not _scratch_pool:
        _scratch_pool.append(scratch)
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
