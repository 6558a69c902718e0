"""Masking, RFC 6455 section 5.3, in pure Python: the reference for the accelerator.

    "Octet i of the transformed data is the XOR of octet i of the original data
    with octet at index i modulo 4 of the masking key."

``key_offset`` says which key octet applies to the first byte: masking a payload in
pieces gives the same result as masking it at once when each piece starts at the
key octet where the previous one stopped.

There are two pure implementations with identical results, and the one that suits
the interpreter is chosen at import: on CPython, "wide" operations that run in C
builtins (one big-integer XOR, or ``bytes.translate`` over strided slices); on PyPy,
a plain loop over the bytes, which its JIT compiles to machine code while it runs
the wide tricks at only ~100-190 MB/s (``benchmarks/mask_results.md``).
"""

from __future__ import annotations

import platform
from typing import Callable, Union

__all__ = [
    "apply_mask",
    "apply_mask_inplace",
    "apply_mask_inplace_loop",
    "apply_mask_inplace_wide",
    "apply_mask_loop",
    "apply_mask_wide",
    "bind_unmask",
    "mask_into",
    "mask_into_loop",
    "mask_into_wide",
]

ReadableBuffer = Union[bytes, bytearray, memoryview]
WritableBuffer = Union[bytearray, memoryview]

# Below this size one XOR of two big integers is the fastest pure-Python mask;
# above it, four translate() passes over strided slices win (benchmarks/bench_mask.py).
_BIG_INT_LIMIT = 2048

# _XOR_TABLES[k] maps every byte b to b ^ k, for bytes.translate().
_XOR_TABLES = [bytes(b ^ k for b in range(256)) for k in range(256)]


def _rotated(key: bytes, key_offset: int) -> bytes:
    if len(key) != 4:
        raise ValueError(f"masking key must be 4 bytes, got {len(key)}")
    shift = key_offset & 3
    return key[shift:] + key[:shift] if shift else bytes(key)


def _xor_wide(buf: bytearray, start: int, end: int, key: bytes) -> None:
    """XOR ``buf[start:end]`` in place, ``key[0]`` applying to ``buf[start]``.

    Short ranges: one XOR of two big integers.  Long ones: four translate() passes
    over strided slices of ``buf`` itself (no copy of the whole range before or
    after, which costs a fifth of the time at 1 MiB).
    """
    size = end - start
    if size <= _BIG_INT_LIMIT:
        repeated = key * (size // 4 + 1)
        masked = int.from_bytes(buf[start:end], "little") ^ int.from_bytes(
            repeated[:size], "little"
        )
        buf[start:end] = masked.to_bytes(size, "little")
        return
    for i in range(4):
        buf[start + i : end : 4] = buf[start + i : end : 4].translate(_XOR_TABLES[key[i]])


def apply_mask_wide(data: ReadableBuffer, key: bytes, key_offset: int = 0) -> bytes:
    """Return ``data`` XOR-ed with the repeating 4-byte ``key``, as new bytes."""
    if key_offset or type(key) is not bytes or len(key) != 4:
        key = _rotated(key, key_offset)  # checks the key; else it is used as it is
    if type(data) is bytes:
        size = len(data)  # what a client's send() gives: no isinstance() calls
    elif isinstance(data, memoryview):
        size = data.nbytes
        if not data.c_contiguous:
            data = data.tobytes()
    else:
        size = len(data)
    if size == 0:
        return b""
    if size <= _BIG_INT_LIMIT:
        repeated = key * (size // 4 + 1)
        masked = int.from_bytes(data, "little") ^ int.from_bytes(repeated[:size], "little")
        return masked.to_bytes(size, "little")
    out = bytearray(data)
    _xor_wide(out, 0, size, key)
    return bytes(out)


def apply_mask_inplace_wide(
    buf: WritableBuffer, start: int, end: int, key: bytes, key_offset: int = 0
) -> None:
    """XOR ``buf[start:end]`` with the repeating ``key`` in place."""
    if end > start:
        if type(buf) is bytearray and start >= 0 and end <= len(buf):
            _xor_wide(buf, start, end, _rotated(key, key_offset))
        else:  # views, and ranges that slicing clips or counts from the end
            buf[start:end] = apply_mask_wide(memoryview(buf)[start:end], key, key_offset)


def _check_into(dst: bytearray, dst_start: int, data: ReadableBuffer) -> int:
    """The payload size, after checking that it fits ``dst`` from ``dst_start``."""
    if type(dst) is not bytearray:
        raise TypeError(f"dst must be a bytearray, not {type(dst).__name__}")
    size = data.nbytes if isinstance(data, memoryview) else len(data)
    if not 0 <= dst_start <= len(dst) - size:
        raise ValueError(
            f"{size} bytes from offset {dst_start} do not fit a buffer of length {len(dst)}"
        )
    return size


def mask_into_wide(dst: bytearray, dst_start: int, data: ReadableBuffer, key: bytes) -> None:
    """Write ``data`` XOR-ed with ``key`` into ``dst`` from ``dst_start`` on.

    How the send path builds a masked frame in a buffer it reuses: copied, then
    masked where it landed.  ``data`` must not overlap ``dst``.
    """
    size = _check_into(dst, dst_start, data)
    key = _rotated(key, 0)
    if isinstance(data, memoryview):
        data = data.cast("B") if data.c_contiguous else data.tobytes()
    dst[dst_start : dst_start + size] = data
    _xor_wide(dst, dst_start, dst_start + size, key)


# --- the loop, for PyPy -------------------------------------------------------------


def _xor_loop(out: bytearray, start: int, end: int, key: bytes) -> None:
    """XOR ``out[start:end]`` in place, ``key[0]`` applying to ``out[start]``.

    Four bytes per turn, one per key octet: PyPy's JIT turns this into a tight
    machine loop (~0.5-1.3 GB/s); CPython runs it ~30x slower than the wide version.
    """
    k0, k1, k2, k3 = key
    stop = end - (end - start) % 4
    for i in range(start, stop, 4):
        out[i] ^= k0
        out[i + 1] ^= k1
        out[i + 2] ^= k2
        out[i + 3] ^= k3
    for i in range(stop, end):
        out[i] ^= key[i - stop]


def apply_mask_loop(data: ReadableBuffer, key: bytes, key_offset: int = 0) -> bytes:
    """Same as :func:`apply_mask_wide`, with a byte loop that suits a JIT."""
    key = _rotated(key, key_offset)
    if isinstance(data, memoryview) and not data.c_contiguous:
        data = data.tobytes()
    out = bytearray(data)  # the raw bytes, also of a typed memoryview
    _xor_loop(out, 0, len(out), key)
    return bytes(out)


def apply_mask_inplace_loop(
    buf: WritableBuffer, start: int, end: int, key: bytes, key_offset: int = 0
) -> None:
    """Same as :func:`apply_mask_inplace_wide`; a bytearray is masked where it lies."""
    if end > start:
        if type(buf) is bytearray and start >= 0 and end <= len(buf):
            _xor_loop(buf, start, end, _rotated(key, key_offset))
        else:  # views, and ranges that slicing clips or counts from the end
            buf[start:end] = apply_mask_loop(memoryview(buf)[start:end], key, key_offset)


def mask_into_loop(dst: bytearray, dst_start: int, data: ReadableBuffer, key: bytes) -> None:
    """Same as :func:`mask_into_wide`: copy, then XOR where the bytes landed."""
    size = _check_into(dst, dst_start, data)
    key = _rotated(key, 0)
    if isinstance(data, memoryview):
        data = data.cast("B") if data.c_contiguous else data.tobytes()
    dst[dst_start : dst_start + size] = data
    _xor_loop(dst, dst_start, dst_start + size, key)


def bind_unmask(buffer: bytearray) -> Callable[[int, int], int]:
    """``unmask(start, end)`` for ``buffer``: XOR ``buffer[start:end]`` in place with
    the masking key in the 4 bytes before ``start``, where a received frame has it
    (5.2: the key directly precedes the payload).  Returns 0, or -1 (touching
    nothing) when that range is not inside the buffer."""
    if type(buffer) is not bytearray:
        raise TypeError(f"buffer must be a bytearray, not {type(buffer).__name__}")
    size = len(buffer)
    xor = _xor_inplace  # what apply_mask_inplace does for a bytearray, without checks

    def unmask(start: int, end: int) -> int:
        if not 4 <= start <= end <= size:
            return -1
        xor(buffer, start, end, bytes(buffer[start - 4 : start]))
        return 0

    def unmask_wide(start: int, end: int) -> int:
        # unmask() with _xor_wide's short-range XOR inline: one call less per frame.
        if not 4 <= start <= end <= size:
            return -1
        n = end - start
        if n > _BIG_INT_LIMIT:
            _xor_wide(buffer, start, end, bytes(buffer[start - 4 : start]))
            return 0
        repeated = bytes(buffer[start - 4 : start]) * (n // 4 + 1)
        masked = int.from_bytes(buffer[start:end], "little") ^ int.from_bytes(
            repeated[:n], "little"
        )
        buffer[start:end] = masked.to_bytes(n, "little")
        return 0

    return unmask_wide if xor is _xor_wide else unmask


# Chosen once, at import (tests/test_accel.py checks that both give the same bytes).
_xor_inplace: Callable[[bytearray, int, int, bytes], None]
if platform.python_implementation() == "PyPy":
    apply_mask = apply_mask_loop
    apply_mask_inplace = apply_mask_inplace_loop
    mask_into = mask_into_loop
    _xor_inplace = _xor_loop
else:
    apply_mask = apply_mask_wide
    apply_mask_inplace = apply_mask_inplace_wide
    mask_into = mask_into_wide
    _xor_inplace = _xor_wide
