"""Masking, RFC 6455 section 5.3, in pure Python: the reference for the accelerator.

    "Octet i of the transformed data is the XOR of octet i of the original data
    with octet at index i modulo 4 of the masking key."

``key_offset`` says which key octet applies to the first byte: masking a payload in
pieces gives the same result as masking it at once when each piece starts at the
key octet where the previous one stopped.
"""

from __future__ import annotations

from typing import Union

__all__ = ["apply_mask", "apply_mask_inplace"]

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


def apply_mask(data: ReadableBuffer, key: bytes, key_offset: int = 0) -> bytes:
    """Return ``data`` XOR-ed with the repeating 4-byte ``key``, as new bytes."""
    key = _rotated(key, key_offset)
    if isinstance(data, memoryview) and not data.c_contiguous:
        data = data.tobytes()
    size = len(data) if not isinstance(data, memoryview) else data.nbytes
    if size == 0:
        return b""
    if size <= _BIG_INT_LIMIT:
        repeated = key * (size // 4 + 1)
        masked = int.from_bytes(data, "little") ^ int.from_bytes(repeated[:size], "little")
        return masked.to_bytes(size, "little")
    out = bytearray(data)
    for i in range(4):
        out[i::4] = out[i::4].translate(_XOR_TABLES[key[i]])
    return bytes(out)


def apply_mask_inplace(
    buf: WritableBuffer, start: int, end: int, key: bytes, key_offset: int = 0
) -> None:
    """XOR ``buf[start:end]`` with the repeating ``key`` in place."""
    if end > start:
        buf[start:end] = apply_mask(memoryview(buf)[start:end], key, key_offset)
