"""The cffi accelerator (_picows_accel) must match picows._mask byte for byte.

picows._mask is the documented reference; every test here runs the same input
through both and compares.  RFC 6455 section 5.3 masking is checked once more
against an independent ``itertools.cycle`` oracle, so that the two cannot agree
on a wrong answer.

The tests skip when the extension is not built, except
``test_extension_is_built_when_required``: with ``PICOWS_REQUIRE_EXTENSIONS=1``
(CI's accelerated leg) a missing extension is a failure, not a skip.
"""

from __future__ import annotations

import errno
import itertools
import random
import socket
import sys
from types import ModuleType
from typing import Any, Callable, Optional, Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import ACCEL, ACCEL_IMPORT_ERROR, env_flag
from picows import _header as header_module
from picows import _mask as pure

Buffer = Union[bytes, bytearray, memoryview]

RFC_KEY = bytes.fromhex("37fa213d")  # RFC 6455 5.7: "81 85 37 fa 21 3d 7f 9f 4d 51 58"
RFC_MASKED = bytes.fromhex("7f9f4d5158")

# Keys that hide nothing (zero) or flip every bit (0xFF), plus random ones below.
SPECIAL_KEYS = (b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", RFC_KEY, b"\x01\x02\x03\x04")

#: The C send paths write to file descriptors, which sockets are not on Windows.
SOCKET_FDS = pytest.mark.skipif(sys.platform == "win32", reason="sockets are no descriptors")
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BIG = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_extension_is_built_when_required() -> None:
    if ACCEL is None and env_flag("PICOWS_REQUIRE_EXTENSIONS"):
        pytest.fail(
            f"PICOWS_REQUIRE_EXTENSIONS=1 but _picows_accel does not import: {ACCEL_IMPORT_ERROR}"
        )


def cycle_mask(data: bytes, key: bytes, key_offset: int = 0) -> bytes:
    """Independent oracle: RFC 6455 5.3 read literally."""
    octets = itertools.islice(itertools.cycle(key), key_offset & 3, None)
    return bytes(b ^ k for b, k in zip(data, octets))


# --- input shapes -------------------------------------------------------------
# Each turns the payload into a buffer of another kind holding the same bytes.


def as_bytes(data: bytes) -> Buffer:
    return bytes(data)


def as_bytearray(data: bytes) -> Buffer:
    return bytearray(data)


def as_memoryview(data: bytes) -> Buffer:
    return memoryview(bytearray(data))


def as_readonly_memoryview(data: bytes) -> Buffer:
    return memoryview(data)


def as_odd_slice(data: bytes) -> Buffer:
    # Starts one byte into its buffer: misaligned for any word size.
    return memoryview(b"\xaa" + data + b"\xbb")[1 : 1 + len(data)]


def as_strided(data: bytes) -> Buffer:
    # Every other byte of a buffer twice the size: not C-contiguous.
    spread = bytearray(2 * len(data))
    spread[::2] = data
    return memoryview(spread)[::2]


def as_reversed(data: bytes) -> Buffer:
    # Negative stride, also not contiguous.
    return memoryview(data[::-1])[::-1]


SHAPES: tuple[Callable[[bytes], Buffer], ...] = (
    as_bytes,
    as_bytearray,
    as_memoryview,
    as_readonly_memoryview,
    as_odd_slice,
    as_strided,
    as_reversed,
)

keys = st.one_of(st.sampled_from(SPECIAL_KEYS), st.binary(min_size=4, max_size=4))
offsets = st.integers(min_value=0, max_value=7)


# --- apply_mask ----------------------------------------------------------------


def test_rfc6455_example(accel: ModuleType) -> None:
    assert accel.apply_mask(RFC_MASKED, RFC_KEY) == b"Hello"
    assert accel.apply_mask(b"Hello", RFC_KEY) == RFC_MASKED
    buf = bytearray(b"..") + RFC_MASKED
    accel.apply_mask_inplace(buf, 2, len(buf), RFC_KEY)
    assert buf == b"..Hello"


def test_backend_info(accel: ModuleType) -> None:
    assert isinstance(accel.BACKEND_INFO, str)
    assert accel.BACKEND_INFO.startswith("cffi ")
    assert set(accel.__all__) == {
        "BACKEND_INFO",
        "apply_mask",
        "apply_mask_inplace",
        "bind_unmask",
        "decode_header",
        "decode_headers",
        "build_frame",
        "SendBuffer",
        "HeaderViolation",
        "send_frame",
        "set_header_error",
        "write_frame",
    }


def test_backend_picks_the_extension(accel: ModuleType) -> None:
    from picows import _backend

    if env_flag("PICOWS_NO_EXTENSIONS"):
        assert _backend.BACKEND == "python" and _backend.CFFI is None
    else:
        assert _backend.BACKEND == "cffi"
        cffi = _backend.CFFI
        assert cffi is not None
        assert cffi.apply_mask is accel.apply_mask
        assert cffi.apply_mask_inplace is accel.apply_mask_inplace
        assert cffi.SendBuffer is accel.SendBuffer
        assert cffi.bind_unmask is accel.bind_unmask
        assert cffi.build_frame is accel.build_frame


def test_every_length_up_to_4096(accel: ModuleType) -> None:
    # Every tail length and word count, each key offset, out of place and in place
    # at a misaligned start.
    rng = random.Random(6455)
    for size in range(4097):
        data = rng.randbytes(size)
        key = rng.randbytes(4)
        key_offset = size % 8
        expected = pure.apply_mask(data, key, key_offset)
        got = accel.apply_mask(data, key, key_offset)
        assert got == expected, size
        start = 1 + size % 7
        buf = bytearray(rng.randbytes(start)) + data + b"tail"
        accel.apply_mask_inplace(buf, start, start + size, key, key_offset)
        assert buf[start : start + size] == expected, size
        assert buf[start + size :] == b"tail"


@pytest.mark.parametrize("key", SPECIAL_KEYS)
@pytest.mark.parametrize("key_offset", range(8))
def test_special_keys_every_offset(accel: ModuleType, key: bytes, key_offset: int) -> None:
    data = bytes(range(256)) * 3 + b"xyz"
    expected = cycle_mask(data, key, key_offset)
    assert pure.apply_mask(data, key, key_offset) == expected
    assert accel.apply_mask(data, key, key_offset) == expected


@FAST
@given(data=st.binary(max_size=5000), key=keys, key_offset=offsets, shape=st.sampled_from(SHAPES))
def test_apply_mask_matches_pure(
    accel: ModuleType, data: bytes, key: bytes, key_offset: int, shape: Callable[[bytes], Buffer]
) -> None:
    got = accel.apply_mask(shape(data), key, key_offset)
    assert type(got) is bytes
    assert got == pure.apply_mask(shape(data), key, key_offset)
    assert got == cycle_mask(data, key, key_offset)


@BIG
@given(size=st.integers(4097, 1 << 20), key=keys, key_offset=offsets, seed=st.integers(0, 2**32))
def test_large_payloads_match_pure(
    accel: ModuleType, size: int, key: bytes, key_offset: int, seed: int
) -> None:
    data = random.Random(seed).randbytes(size)
    expected = pure.apply_mask(data, key, key_offset)
    assert accel.apply_mask(data, key, key_offset) == expected
    assert accel.apply_mask(as_odd_slice(data), key, key_offset) == expected
    buf = bytearray(b"?") + data
    accel.apply_mask_inplace(buf, 1, len(buf), key, key_offset)
    assert buf[1:] == expected


def test_payloads_past_the_kept_scratch_size(accel: ModuleType) -> None:
    # Growing, shrinking and over-the-limit sizes through the reused C buffer.
    rng = random.Random(5)
    for size in (100, 70_000, 5 << 20, 3, (4 << 20) + 1, 1 << 16, 200_000):
        data = rng.randbytes(size)
        key, key_offset = rng.randbytes(4), rng.randrange(8)
        assert accel.apply_mask(data, key, key_offset) == pure.apply_mask(data, key, key_offset)


def test_threads_do_not_share_output(accel: ModuleType) -> None:
    # cffi releases the GIL around the C call: concurrent callers must not see each
    # other's bytes through the reused scratch buffer.
    import threading

    failures: list[int] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(150):
            data = rng.randbytes(rng.choice((7, 1000, 70_000, 300_000)))
            key = rng.randbytes(4)
            if accel.apply_mask(data, key) != pure.apply_mask(data, key):
                failures.append(seed)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


@FAST
@given(data=st.binary(max_size=3000), key=keys, cuts=st.lists(st.integers(0, 3000), max_size=6))
def test_masking_in_pieces_equals_masking_at_once(
    accel: ModuleType, data: bytes, key: bytes, cuts: list[int]
) -> None:
    bounds = [0, *sorted(min(c, len(data)) for c in cuts), len(data)]
    # Each piece starts at the key octet where the previous one stopped.
    pieces = [accel.apply_mask(data[lo:hi], key, lo) for lo, hi in zip(bounds, bounds[1:])]
    assert b"".join(pieces) == accel.apply_mask(data, key)


@FAST
@given(key_offset=st.integers(-(2**70), 2**70), data=st.binary(max_size=64))
def test_any_int_key_offset(accel: ModuleType, key_offset: int, data: bytes) -> None:
    # The pure version uses key_offset & 3, so negative and huge offsets work too.
    assert accel.apply_mask(data, RFC_KEY, key_offset) == pure.apply_mask(data, RFC_KEY, key_offset)


def test_typed_memoryview_masks_bytes_not_items(accel: ModuleType) -> None:
    import array

    words = memoryview(array.array("I", range(1000)))
    assert accel.apply_mask(words, RFC_KEY, 1) == pure.apply_mask(words, RFC_KEY, 1)
    assert accel.apply_mask(words[::3], RFC_KEY, 2) == pure.apply_mask(words[::3], RFC_KEY, 2)


@pytest.mark.parametrize("key", [bytearray(RFC_KEY), list(RFC_KEY)])
def test_key_may_be_any_4_byte_sequence(accel: ModuleType, key: object) -> None:
    data = b"Hello, world" * 300
    for key_offset in range(4):
        expected = pure.apply_mask(data, key, key_offset)  # type: ignore[arg-type]
        assert accel.apply_mask(data, key, key_offset) == expected


def test_memoryview_key(accel: ModuleType) -> None:
    # Known difference: the pure version rotates the key with `+`, which memoryview
    # lacks, so it fails for key_offset % 4 != 0; the accelerator accepts it.
    data = b"Hello, world" * 300
    key: object = memoryview(RFC_KEY)
    assert accel.apply_mask(data, key, 0) == pure.apply_mask(data, key, 0)  # type: ignore[arg-type]
    assert accel.apply_mask(data, key, 1) == pure.apply_mask(data, RFC_KEY, 1)
    with pytest.raises(TypeError):
        pure.apply_mask(data, key, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", [b"", b"abc", b"abcde", b"\x00" * 8])
@pytest.mark.parametrize("data", [b"", b"payload"])
def test_bad_key_length_raises_like_pure(accel: ModuleType, key: bytes, data: bytes) -> None:
    with pytest.raises(ValueError) as pure_error:
        pure.apply_mask(data, key)
    with pytest.raises(ValueError) as accel_error:
        accel.apply_mask(data, key)
    assert str(accel_error.value) == str(pure_error.value)
    buf_pure, buf_accel = bytearray(b"payload"), bytearray(b"payload")
    with pytest.raises(ValueError, match="masking key must be 4 bytes"):
        pure.apply_mask_inplace(buf_pure, 1, 3, key)
    with pytest.raises(ValueError, match="masking key must be 4 bytes"):
        accel.apply_mask_inplace(buf_accel, 1, 3, key)


def test_wrong_data_type_raises_type_error(accel: ModuleType) -> None:
    both: tuple[Callable[..., object], ...] = (pure.apply_mask, accel.apply_mask)
    for fn in both:
        with pytest.raises(TypeError):
            fn("text", RFC_KEY)


# --- apply_mask_inplace --------------------------------------------------------


def _buffers(data: bytes, as_view: bool) -> Union[bytearray, memoryview]:
    return memoryview(bytearray(data)) if as_view else bytearray(data)


@FAST
@given(
    data=st.binary(max_size=5000),
    bounds=st.tuples(st.integers(0, 5000), st.integers(0, 5000)),
    key=keys,
    key_offset=offsets,
    as_view=st.booleans(),
)
def test_apply_mask_inplace_matches_pure(
    accel: ModuleType,
    data: bytes,
    bounds: tuple[int, int],
    key: bytes,
    key_offset: int,
    as_view: bool,
) -> None:
    start, end = sorted(min(b, len(data)) for b in bounds)  # odd starts included
    expected, got = _buffers(data, as_view), _buffers(data, as_view)
    pure.apply_mask_inplace(expected, start, end, key, key_offset)
    accel.apply_mask_inplace(got, start, end, key, key_offset)
    assert bytes(got) == bytes(expected)
    assert bytes(got[:start]) == data[:start] and bytes(got[end:]) == data[end:]


@FAST
@given(data=st.binary(min_size=1, max_size=2000), key=keys, key_offset=offsets)
def test_apply_mask_inplace_on_strided_view(
    accel: ModuleType, data: bytes, key: bytes, key_offset: int
) -> None:
    # Writable but not contiguous: both index the view's items, so only every other
    # byte of the underlying buffer changes.
    back_pure, back_accel = bytearray(2 * len(data)), bytearray(2 * len(data))
    back_pure[::2] = back_accel[::2] = data
    stop = len(data) // 2 + 1
    pure.apply_mask_inplace(memoryview(back_pure)[::2], 1, stop, key, key_offset)
    accel.apply_mask_inplace(memoryview(back_accel)[::2], 1, stop, key, key_offset)
    assert back_accel == back_pure


def test_empty_range_ignores_the_key_like_pure(accel: ModuleType) -> None:
    # The pure version returns before it looks at the key when end <= start.
    for fn in (pure.apply_mask_inplace, accel.apply_mask_inplace):
        buf = bytearray(b"abc")
        fn(buf, 2, 2, b"bad")
        assert buf == b"abc"


@pytest.mark.parametrize(
    ("start", "end"),
    [(-1, 2), (2, 1), (0, 4), (4, 4), (5, 9), (-5, -1)],
)
def test_inplace_out_of_range_raises(accel: ModuleType, start: int, end: int) -> None:
    # Deliberate difference: the accelerator rejects what the pure version reads with
    # slice rules.  Pure clips end > len, treats start > end as empty, and counts
    # negative indices from the end; the comparison below pins that behaviour down.
    data = b"abc"
    buf = bytearray(data)
    with pytest.raises(ValueError, match="outside a buffer of length 3"):
        accel.apply_mask_inplace(buf, start, end, RFC_KEY)
    assert buf == data  # untouched

    ref = bytearray(data)
    pure.apply_mask_inplace(ref, start, end, RFC_KEY)
    sliced = slice(start, end).indices(len(data))
    expected = bytearray(data)
    expected[sliced[0] : sliced[1]] = cycle_mask(data[sliced[0] : sliced[1]], RFC_KEY)
    assert ref == expected


@pytest.mark.parametrize("make", [bytes, lambda b: memoryview(bytes(b))])
def test_inplace_on_read_only_buffer_raises_type_error(
    accel: ModuleType, make: Callable[[bytes], Buffer]
) -> None:
    both: tuple[Callable[..., None], ...] = (pure.apply_mask_inplace, accel.apply_mask_inplace)
    for fn in both:
        with pytest.raises(TypeError):
            fn(make(b"abcdef"), 1, 5, RFC_KEY)


def test_inplace_keeps_the_buffer_resizable(accel: ModuleType) -> None:
    # from_buffer() must not leave an export behind: picows grows its read buffer.
    buf = bytearray(b"x" * 100)
    accel.apply_mask_inplace(buf, 3, 90, RFC_KEY, 1)
    buf += b"more"
    del buf[:10]
    assert len(buf) == 94


# --- bind_unmask: a received frame unmasked where it lies -------------------------


@FAST
@given(
    prefix=st.binary(max_size=20),
    key=keys,
    payload=st.binary(max_size=3000),
    suffix=st.binary(max_size=20),
)
def test_bind_unmask_matches_pure(
    accel: ModuleType, prefix: bytes, key: bytes, payload: bytes, suffix: bytes
) -> None:
    # A buffer laid out like a received frame: ..., key, masked payload, more bytes.
    data = prefix + key + cycle_mask(payload, key) + suffix
    start = len(prefix) + 4
    expected, got = bytearray(data), bytearray(data)
    pure.bind_unmask(expected)(start, start + len(payload))
    accel.bind_unmask(got)(start, start + len(payload))
    assert got == expected == bytearray(prefix + key + payload + suffix)


@pytest.mark.parametrize(("start", "end"), [(3, 5), (0, 0), (6, 5), (4, 11), (11, 12)])
def test_bind_unmask_out_of_range_refuses_like_pure(
    accel: ModuleType, start: int, end: int
) -> None:
    # A key must precede the range, and the range must lie in the buffer: otherwise
    # -1 and nothing touched (the C check runs without a Python frame).
    for bind in (pure.bind_unmask, accel.bind_unmask):
        buf = bytearray(b"keys-payload"[:10])
        assert bind(buf)(start, end) == -1
        assert buf == bytearray(b"keys-payload"[:10])
        assert bind(buf)(4, 10) == 0 and buf != bytearray(b"keys-payload"[:10])


def test_bind_unmask_needs_a_bytearray(accel: ModuleType) -> None:
    for bind in (pure.bind_unmask, accel.bind_unmask):
        with pytest.raises(TypeError, match="buffer must be a bytearray"):
            bind(memoryview(bytearray(8)))  # type: ignore[arg-type]


# --- build_frame: the send path ------------------------------------------------


def expected_frame(first: int, payload: bytes, key: Optional[bytes]) -> bytes:
    """What a reader of RFC 6455 5.2 expects, independently of both builders."""
    n = len(payload)
    mask_bit = 0x80 if key is not None else 0
    if n <= 125:
        length = bytes([mask_bit | n])
    elif n <= 0xFFFF:
        length = bytes([mask_bit | 126]) + n.to_bytes(2, "big")
    else:
        length = bytes([mask_bit | 127]) + n.to_bytes(8, "big")
    if key is None:
        return bytes([first]) + length + payload
    return bytes([first]) + length + key + cycle_mask(payload, key)


@FAST
@given(
    first=st.integers(0, 255),
    payload=st.one_of(
        st.binary(max_size=300),
        st.integers(65530, 65540).map(lambda n: bytes(range(256)) * (n // 256) + b"z" * (n % 256)),
    ),
    key=st.one_of(st.none(), keys),
    shape=st.sampled_from(SHAPES),
)
def test_build_frame_matches_pure(
    accel: ModuleType,
    first: int,
    payload: bytes,
    key: Optional[bytes],
    shape: Callable[[bytes], Buffer],
) -> None:
    got = accel.build_frame(first, shape(payload), key)
    assert got == header_module.build_frame(first, shape(payload), key)
    assert got == expected_frame(first, payload, key)


@pytest.mark.parametrize("key", [None, RFC_KEY], ids=["unmasked", "masked"])
def test_build_frame_length_forms_at_the_limits(accel: ModuleType, key: Optional[bytes]) -> None:
    # 125 -> 7-bit, 126 and 65535 -> 16-bit, 65536 and up -> 64-bit length (5.2).
    for size in (0, 125, 126, 65535, 65536, 300_001):
        data = bytes(range(256)) * (size // 256) + b"!" * (size % 256)
        frame = accel.build_frame(0x82, data, key)
        assert frame == header_module.build_frame(0x82, data, key)
        assert frame == expected_frame(0x82, data, key)


@pytest.mark.parametrize(("first", "key"), [(256, RFC_KEY), (-1, None), (0x81, b"abc")])
def test_build_frame_bad_input_raises_like_pure(
    accel: ModuleType, first: int, key: Optional[bytes]
) -> None:
    with pytest.raises(ValueError) as from_pure:
        header_module.build_frame(first, b"data", key)
    with pytest.raises(ValueError) as from_accel:
        accel.build_frame(first, b"data", key)
    assert str(from_accel.value) == str(from_pure.value)


# --- SendBuffer: big frames built in reused memory ---------------------------------


@FAST
@given(
    frames=st.lists(
        st.tuples(st.integers(0, 255), st.binary(max_size=2000), st.one_of(st.none(), keys)),
        min_size=1,
        max_size=5,
    ),
    shape=st.sampled_from(SHAPES),
)
def test_send_buffer_matches_pure(
    accel: ModuleType,
    frames: list[tuple[int, bytes, Optional[bytes]]],
    shape: Callable[[bytes], Buffer],
) -> None:
    # One buffer of each kind, reused for frames that shrink and grow: each view
    # holds exactly the frame build_frame() encodes, nothing left from before.
    c_buffer, py_buffer = accel.SendBuffer(2014), header_module.SendBuffer(2014)
    for first, payload, key in frames:
        expected = expected_frame(first, payload, key)
        assert bytes(py_buffer.build(first, shape(payload), key)) == expected
        assert bytes(c_buffer.build(first, shape(payload), key)) == expected


@SOCKET_FDS
@FAST
@given(
    first=st.integers(0, 255),
    payload=st.one_of(st.binary(max_size=300), st.binary(min_size=2040, max_size=70000)),
    key=keys,
)
def test_send_frame_writes_what_build_frame_builds(
    accel: ModuleType, first: int, payload: bytes, key: bytes
) -> None:
    # WSTransport.send's client fast path: one C call builds and writes the frame
    # (on the stack up to 2048 payload bytes, in malloc() above).
    left, right = socket.socketpair()
    with left, right:
        right.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        expected = expected_frame(first, payload, key)
        unsent = accel.send_frame(left.fileno(), first, payload, len(payload), key)
        assert 0 <= unsent < len(expected)
        received = b""
        while len(received) < len(expected) - unsent:
            received += right.recv(1 << 20)
        assert received == expected[: len(expected) - unsent]


@SOCKET_FDS
def test_send_frame_leaves_a_full_socket_and_reports_errors(accel: ModuleType) -> None:
    left, right = socket.socketpair()
    left.setblocking(False)
    with left, right:
        # A full socket (EAGAIN): the whole frame is left to send.
        while accel.send_frame(left.fileno(), 0x82, b"x" * 60000, 60000, b"abcd") == 0:
            pass
        assert accel.send_frame(left.fileno(), 0x82, b"x", 1, b"abcd") == 7
    assert accel.send_frame(left.fileno(), 0x82, b"x", 1, b"abcd") == -errno.EBADF


@SOCKET_FDS
@settings(max_examples=100, deadline=None)
@given(
    first=st.integers(0, 255),
    payload=st.one_of(
        st.binary(max_size=300),
        # Big payloads by size (drawing 300 KB of random bytes is slow).
        st.integers(60000, 300000).map(lambda n: (bytes(range(251)) * (n // 251 + 1))[:n]),
    ),
    key=st.one_of(st.none(), keys),
    kind=st.sampled_from(["bytes", "bytearray", "memoryview"]),
    sndbuf=st.sampled_from([4096, 65536, 1 << 20]),
)
def test_write_frame_sends_the_frame_and_returns_the_rest(
    accel: ModuleType, first: int, payload: bytes, key: Optional[bytes], kind: str, sndbuf: int
) -> None:
    # WSTransport's path for big frames: what the socket took, then what write_frame
    # returned for asyncio to queue, is exactly the frame (masked, or header + payload
    # by writev), however much of it a small socket buffer takes.
    shaped: Any = {"bytes": payload, "bytearray": bytearray(payload)}.get(kind)
    if shaped is None:
        shaped = memoryview(b"<" + payload + b">")[1:-1]
    left, right = socket.socketpair()
    left.setblocking(False)
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    with left, right:
        expected = expected_frame(first, payload, key)
        rest = accel.write_frame(left.fileno(), first, shaped, key)
        assert type(rest) is bytes and len(rest) <= len(expected)
        left.close()
        right.settimeout(5)  # a bound, should the test's own socket misbehave
        received = b"".join(iter(lambda: right.recv(1 << 20), b""))
    assert received + rest == expected


@SOCKET_FDS
def test_write_frame_returns_the_whole_frame_when_the_write_fails(accel: ModuleType) -> None:
    # EAGAIN: nothing went, asyncio queues all of it; EBADF: asyncio's write() gets
    # the whole frame and reports the error itself.
    left, right = socket.socketpair()
    left.setblocking(False)
    payload = bytes(range(256)) * 400
    with left, right:
        while accel.send_frame(left.fileno(), 0x82, b"x" * 60000, 60000, b"abcd") == 0:
            pass
        for key in (None, b"abcd"):
            assert accel.write_frame(left.fileno(), 0x82, payload, key) == expected_frame(
                0x82, payload, key
            )
    for key in (None, b"abcd"):
        assert accel.write_frame(left.fileno(), 0x82, payload, key) == expected_frame(
            0x82, payload, key
        )
    with pytest.raises(ValueError, match=r"byte 0 of a header must be in 0\.\.255"):
        accel.write_frame(-1, 256, payload)


@pytest.mark.parametrize(
    ("first", "size", "key", "message"),
    [
        (256, 10, None, "byte 0 of a header must be in 0..255"),
        (0x82, 91, None, "a frame of 91 bytes does not fit in 100"),
        (0x82, 10, b"abc", "masking key must be 4 bytes"),
    ],
)
def test_send_buffer_bad_input_raises_like_pure(
    accel: ModuleType, first: int, size: int, key: Optional[bytes], message: str
) -> None:
    for kind in (accel.SendBuffer, header_module.SendBuffer):
        with pytest.raises(ValueError, match=message):
            kind(100).build(first, b"x" * size, key)
