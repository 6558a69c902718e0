"""The two pure-Python maskers (picows._mask) give the same bytes and the same errors.

``apply_mask_wide`` (big-int XOR and ``bytes.translate``, fast on CPython) and
``apply_mask_loop`` (a byte loop, fast under PyPy's JIT) are interchangeable; the
module picks one per interpreter at import.  Both are checked against an independent
``itertools.cycle`` reading of RFC 6455 5.3, so they cannot agree on a wrong answer.
"""

from __future__ import annotations

import array
import itertools
import platform
from typing import Callable, Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from picows import _mask

Buffer = Union[bytes, bytearray, memoryview]

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def cycle_mask(data: bytes, key: bytes, key_offset: int = 0) -> bytes:
    octets = itertools.islice(itertools.cycle(key), key_offset & 3, None)
    return bytes(b ^ k for b, k in zip(data, octets))


SHAPES: dict[str, Callable[[bytes], Buffer]] = {
    "bytes": bytes,
    "bytearray": bytearray,
    "memoryview": lambda d: memoryview(bytearray(d)),
    "readonly": memoryview,
    "odd-slice": lambda d: memoryview(b"\xaa" + d + b"\xbb")[1 : 1 + len(d)],
    "strided": lambda d: memoryview(bytes(b for x in d for b in (x, 0)))[::2],
}


def test_choice_per_interpreter() -> None:
    if platform.python_implementation() == "PyPy":
        assert _mask.apply_mask is _mask.apply_mask_loop
        assert _mask.apply_mask_inplace is _mask.apply_mask_inplace_loop
        assert _mask.mask_into is _mask.mask_into_loop
    else:
        assert _mask.apply_mask is _mask.apply_mask_wide
        assert _mask.apply_mask_inplace is _mask.apply_mask_inplace_wide
        assert _mask.mask_into is _mask.mask_into_wide


def test_rfc6455_example() -> None:
    masked = bytes.fromhex("7f9f4d5158")
    key = bytes.fromhex("37fa213d")
    for apply_mask in (_mask.apply_mask_wide, _mask.apply_mask_loop):
        assert apply_mask(masked, key) == b"Hello"


@FAST
@given(
    data=st.binary(max_size=5000),
    key=st.binary(min_size=4, max_size=4),
    key_offset=st.integers(-(2**66), 2**66),
    shape=st.sampled_from(sorted(SHAPES)),
)
def test_apply_mask_variants_agree(data: bytes, key: bytes, key_offset: int, shape: str) -> None:
    make = SHAPES[shape]
    expected = cycle_mask(data, key, key_offset)
    assert _mask.apply_mask_wide(make(data), key, key_offset) == expected
    assert _mask.apply_mask_loop(make(data), key, key_offset) == expected


@FAST
@given(
    data=st.binary(max_size=3000),
    key=st.binary(min_size=4, max_size=4),
    key_offset=st.integers(0, 7),
    start=st.integers(-3100, 3100),
    end=st.integers(-3100, 3100),
    as_view=st.booleans(),
)
def test_apply_mask_inplace_variants_agree(
    data: bytes, key: bytes, key_offset: int, start: int, end: int, as_view: bool
) -> None:
    # Any range, also ones that slicing clips or counts from the end.
    wide, loop = bytearray(data), bytearray(data)
    wide_buf: Union[bytearray, memoryview] = memoryview(wide) if as_view else wide
    loop_buf: Union[bytearray, memoryview] = memoryview(loop) if as_view else loop
    _mask.apply_mask_inplace_wide(wide_buf, start, end, key, key_offset)
    _mask.apply_mask_inplace_loop(loop_buf, start, end, key, key_offset)
    assert loop == wide


def test_typed_memoryview_and_list_key() -> None:
    words = memoryview(array.array("I", range(300)))
    for key_offset in range(4):
        assert _mask.apply_mask_loop(words, b"abcd", key_offset) == _mask.apply_mask_wide(
            words, b"abcd", key_offset
        )
        key: object = [1, 2, 3, 4]  # any 4-int sequence works as a key
        loop = _mask.apply_mask_loop(b"payload!", key, key_offset)  # type: ignore[arg-type]
        wide = _mask.apply_mask_wide(b"payload!", key, key_offset)  # type: ignore[arg-type]
        assert loop == wide


@pytest.mark.parametrize("key", [b"", b"abc", b"abcde"])
def test_bad_keys_fail_alike(key: bytes) -> None:
    for data in (b"", b"payload"):
        with pytest.raises(ValueError) as wide:
            _mask.apply_mask_wide(data, key)
        with pytest.raises(ValueError) as loop:
            _mask.apply_mask_loop(data, key)
        assert str(wide.value) == str(loop.value)
    for start, end in ((0, 3), (5, 2)):
        buf_wide, buf_loop = bytearray(b"payload"), bytearray(b"payload")
        outcomes = []
        for fn, buf in (
            (_mask.apply_mask_inplace_wide, buf_wide),
            (_mask.apply_mask_inplace_loop, buf_loop),
        ):
            try:
                fn(buf, start, end, key)
                outcomes.append("ok")
            except ValueError as exc:
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1]
        assert buf_wide == buf_loop


@FAST
@given(
    data=st.binary(max_size=5000),
    key=st.binary(min_size=4, max_size=4),
    dst_start=st.integers(0, 20),
    spare=st.integers(0, 20),
    shape=st.sampled_from(sorted(SHAPES)),
)
def test_mask_into_variants_agree(
    data: bytes, key: bytes, dst_start: int, spare: int, shape: str
) -> None:
    expected = b"\xee" * dst_start + cycle_mask(data, key) + b"\xee" * spare
    for mask_into in (_mask.mask_into_wide, _mask.mask_into_loop):
        dst = bytearray(b"\xee" * (dst_start + len(data) + spare))
        mask_into(dst, dst_start, SHAPES[shape](data), key)
        assert dst == expected


@FAST
@given(
    data=st.binary(min_size=4, max_size=6000),
    start=st.integers(0, 6000),
    end=st.integers(0, 6000),
)
def test_bind_unmask_unmasks_with_the_key_before_start(data: bytes, start: int, end: int) -> None:
    # The receive path's unmasker (a short cut to the in-place XOR of the interpreter's
    # variant) against the reference: the 4 bytes before start are the key (5.2).
    buf = bytearray(data)
    result = _mask.bind_unmask(buf)(start, end)
    if not 4 <= start <= end <= len(data):
        assert result == -1 and buf == data
        return
    assert result == 0
    key = data[start - 4 : start]
    assert buf == data[:start] + cycle_mask(data[start:end], key) + data[end:]
