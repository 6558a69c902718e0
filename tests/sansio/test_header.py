"""Frame-header decoding: the pure reference (picows._header) and its C twin agree.

Every test feeds the same bytes to ``picows._header`` and to ``_picows_accel`` and
compares: the same ``(first_byte, header_size, payload_length)`` or None, or the
same :class:`WSProtocolError` (code and message).  Inputs: valid headers of every
length class and flag combination, every truncation of valid frames, random bytes,
and streams of frames for the batch decoders.  The FrameReader tests at the end run
whole streams through ``next_frame`` with and without the batch cache.

The C tests skip when the extension is not built, except
``test_extension_is_built_when_required``: with ``PICOWS_REQUIRE_EXTENSIONS=1`` a
missing extension is a failure, not a skip.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import subprocess
import sys
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any, Callable, Optional, Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import ACCEL
from picows import _backend, _frames
from picows import _header as pure
from picows._exceptions import WSProtocolError
from picows._frames import FrameReader, WSFrame
from picows._types import WSCloseCode

Buffer = Union[bytes, bytearray, memoryview]

MANY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PE = WSCloseCode.PROTOCOL_ERROR
KEY = bytes.fromhex("37fa213d")

# Limits around every length class and past int64_t (the C wrapper clips those).
LIMITS = (-5, -1, 0, 1, 125, 126, 65535, 65536, 1 << 20, (1 << 63) - 1, 1 << 63, 1 << 80)


# --- helpers ---------------------------------------------------------------------------

Outcome = tuple[Any, ...]


def outcome(fn: Callable[..., Any], *args: Any) -> Outcome:
    """The result, or the error as (class, code, message), to compare two decoders."""
    try:
        return ("ok", fn(*args))
    except WSProtocolError as exc:
        return ("error", type(exc), exc.code, str(exc))


def header_bytes(
    first: int, masked: bool, length: int, form: Optional[int] = None, key: bytes = KEY
) -> bytes:
    """A header with ``length`` written in the 7-bit (7), 16-bit (16) or 64-bit (64)
    form; by default the minimal one.  Non-minimal and oversized forms are allowed:
    that is how the invalid inputs are made."""
    if form is None:
        form = 7 if length <= 125 else 16 if length <= 0xFFFF else 64
    mask_bit = 0x80 if masked else 0
    if form == 7:
        out = bytes((first, mask_bit | length))
    elif form == 16:
        out = bytes((first, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        out = bytes((first, mask_bit | 127)) + length.to_bytes(8, "big")
    return out + (key if masked else b"")


def compare_single(accel: ModuleType, buf: Buffer, pos: int, end: int, **kw: Any) -> Outcome:
    args = (buf, pos, end, kw["expect_masked"], kw["allow_rsv"], kw["max_frame_size"])
    expected = outcome(pure.decode_header, *args)
    assert outcome(accel.decode_header, *args) == expected, args
    return expected


def compare_batch(
    accel: ModuleType, buf: Buffer, pos: int, end: int, max_frames: int = 64, **kw: Any
) -> Outcome:
    args = (buf, pos, end, kw["expect_masked"], kw["allow_rsv"], kw["max_frame_size"])
    expected = outcome(pure.decode_headers, *args, max_frames)
    assert outcome(accel.decode_headers, *args, max_frames) == expected, (args, max_frames)
    return expected


lengths = st.one_of(
    st.integers(0, 125),
    st.integers(126, 0xFFFF),
    st.integers(0x10000, (1 << 63) - 1),
    st.sampled_from([0, 125, 126, 127, 0xFFFF, 0x10000, (1 << 63) - 1]),
)
# Length written in a form that may be non-minimal, or (64-bit) have the MSB set.
odd_lengths = st.one_of(
    st.tuples(st.integers(0, 0xFFFF), st.just(16)),
    st.tuples(st.integers(0, (1 << 64) - 1), st.just(64)),
    st.tuples(st.sampled_from([0, 125, 0xFFFF, 1 << 63, (1 << 64) - 1]), st.just(64)),
)
options = st.fixed_dictionaries(
    {
        "expect_masked": st.booleans(),
        "allow_rsv": st.booleans(),
        "max_frame_size": st.one_of(st.sampled_from(LIMITS), st.integers(-(2**70), 2**70)),
    }
)


# --- the status codes are shared ---------------------------------------------------------


def test_status_codes_match_header_h(accel: ModuleType) -> None:
    from _picows_accel._cffi import lib

    names = [name for name in dir(pure) if name.startswith("HDR_")]
    assert len(names) == 13
    for name in names:
        assert getattr(lib, "PICOWS_" + name) == getattr(pure, name), name


def test_batch_size_matches(accel: ModuleType) -> None:
    assert accel.BATCH_FRAMES == pure.BATCH_FRAMES


def test_accelerator_imported_before_picows(accel: ModuleType) -> None:
    # _picows_accel must not import picows at import time: picows imports it (through
    # picows._backend), and a cycle would leave picows on the pure backend.
    code = (
        "import _picows_accel, picows, picows._backend as b; "
        "print(picows.BACKEND, b.ACTIVE.decode_headers is not None)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    env.pop("PICOWS_NO_EXTENSIONS", None)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["cffi", str(platform.python_implementation() != "PyPy")]


@pytest.mark.parametrize("status", range(8, 17))
def test_every_violation_has_a_message(status: int) -> None:
    exc = pure.header_error(status, 0x89, 300, 100)
    assert isinstance(exc, WSProtocolError)
    assert exc.code in (PE, WSCloseCode.MESSAGE_TOO_BIG)
    assert str(exc).startswith("Received ")


@pytest.mark.parametrize("status", [0, 1, 2, 3, 7, 17])
def test_header_error_rejects_other_statuses(status: int) -> None:
    with pytest.raises(ValueError):
        pure.header_error(status, 0x81, 0, 0)


# The messages, byte for byte: upstream picows' own words (they reach the peer in CLOSE).
MESSAGES = [
    (b"\x83\x00", False, "Received frame with invalid opcode=0x3"),
    (
        b"\xc9\x00",
        False,
        "Received control frame with RSV bits set, RFC 6455 section 5.2 forbids this",
    ),
    (b"\x09\x00", False, "Received fragmented control frame"),
    (b"\x8a\x7e", False, "Received control frame with payload size > 125 bytes, opcode=0xa"),
    (b"\x82\x7e\x00\x7d", False, "Received frame with invalid 16-bit payload len"),
    (
        b"\x82\x7f" + (1 << 63).to_bytes(8, "big"),
        False,
        "Received frame with invalid 64-bit payload length",
    ),
    (
        b"\x82\x7e\x01\x00",
        False,
        "Received frame with payload size exceeding max allowed size, 256 > 200",
    ),
    (
        b"\x82\x80",
        False,
        "Received masked frame from server, RFC 6455 section 5.1 forbids this",
    ),
    (
        b"\x82\x00",
        True,
        "Received un-masked frame from client, RFC 6455 section 5.1 forbids this",
    ),
]


@pytest.mark.parametrize(("data", "expect_masked", "message"), MESSAGES)
def test_exact_messages(data: bytes, expect_masked: bool, message: str) -> None:
    decoders = [pure.decode_header] + ([ACCEL.decode_header] if ACCEL else [])
    for decode in decoders:
        with pytest.raises(WSProtocolError) as info:
            decode(data, 0, len(data), expect_masked, False, 200)
        assert str(info.value) == message
        assert info.value.code == (WSCloseCode.MESSAGE_TOO_BIG if "exceeding" in message else PE)


# --- single headers ------------------------------------------------------------------------


@MANY
@given(
    first=st.integers(0, 255),
    masked=st.booleans(),
    length=lengths,
    opts=options,
    lead=st.binary(max_size=9),
    trail=st.binary(max_size=20),
)
def test_valid_and_flagged_headers(
    accel: ModuleType,
    first: int,
    masked: bool,
    length: int,
    opts: dict[str, Any],
    lead: bytes,
    trail: bytes,
) -> None:
    # Every opcode and flag combination (first is any byte), every length class,
    # masked or not; at an offset inside a bigger buffer, with bytes behind it.
    data = lead + header_bytes(first, masked, length) + trail
    compare_single(accel, data, len(lead), len(data), **opts)


@MANY
@given(
    first=st.integers(0, 255),
    masked=st.booleans(),
    odd=odd_lengths,
    opts=options,
)
def test_any_length_encoding(
    accel: ModuleType, first: int, masked: bool, odd: tuple[int, int], opts: dict[str, Any]
) -> None:
    length, form = odd
    data = header_bytes(first, masked, length, form)
    compare_single(accel, data, 0, len(data), **opts)


@pytest.mark.parametrize("expect_masked", [False, True])
@pytest.mark.parametrize("allow_rsv", [False, True])
@pytest.mark.parametrize("max_frame_size", [0, 100, 1 << 20, 1 << 70])
def test_every_truncation_point_every_first_byte(
    accel: ModuleType, expect_masked: bool, allow_rsv: bool, max_frame_size: int
) -> None:
    # Exhaustive over byte 0 and the three length forms, masked and not, cut at every
    # prefix length: byte-by-byte arrival must decide exactly as Python does.
    opts = {
        "expect_masked": expect_masked,
        "allow_rsv": allow_rsv,
        "max_frame_size": max_frame_size,
    }
    for first in range(256):
        for masked in (False, True):
            for length in (0, 5, 125, 126, 300, 0xFFFF, 0x10000, 1 << 40):
                frame = header_bytes(first, masked, length) + b"\xaa" * min(length, 7)
                for cut in range(len(frame) + 1):
                    compare_single(accel, frame, 0, cut, **opts)
                    # Also inside a larger buffer: the bytes past `end` must not count.
                    compare_single(accel, b"\x00" + frame, 1, 1 + cut, **opts)


@SOME
@given(
    frames=st.lists(
        st.tuples(st.integers(0, 255), st.booleans(), st.sampled_from([0, 3, 125, 126, 200])),
        min_size=1,
        max_size=5,
    ),
    opts=options,
    max_frames=st.sampled_from([0, 1, 2, 3, 64, 100]),
)
def test_truncated_streams_single_and_batch(
    accel: ModuleType,
    frames: list[tuple[int, bool, int]],
    opts: dict[str, Any],
    max_frames: int,
) -> None:
    # Whole frames (payload included) back to back, cut at every point.
    wire = b"".join(header_bytes(f, m, n) + bytes([n & 0xFF]) * n for f, m, n in frames)
    for cut in range(len(wire) + 1):
        compare_single(accel, wire, 0, cut, **opts)
        compare_batch(accel, wire, 0, cut, max_frames, **opts)


@MANY
@given(data=st.binary(max_size=64), opts=options, pos=st.integers(0, 64))
def test_random_bytes(accel: ModuleType, data: bytes, opts: dict[str, Any], pos: int) -> None:
    pos = min(pos, len(data))
    compare_single(accel, data, pos, len(data), **opts)
    compare_batch(accel, data, pos, len(data), **opts)
    compare_batch(accel, data, pos, len(data), 1, **opts)


@pytest.mark.parametrize(
    "shape",
    [bytes, bytearray, lambda b: memoryview(bytearray(b)), lambda b: memoryview(b)],
    ids=["bytes", "bytearray", "memoryview", "readonly-memoryview"],
)
def test_buffer_types(accel: ModuleType, shape: Callable[[bytes], Buffer]) -> None:
    wire = header_bytes(0x82, False, 300) + bytes(300) + header_bytes(0x81, False, 2) + b"hi"
    opts = {"expect_masked": False, "allow_rsv": False, "max_frame_size": 1000}
    assert compare_single(accel, shape(wire), 0, len(wire), **opts) == ("ok", (0x82, 4, 300))
    assert compare_batch(accel, shape(wire), 0, len(wire), **opts) == (
        "ok",
        [0x82, 4, 300, 0x81, 2, 2, 0],
    )


@pytest.mark.parametrize(("pos", "end"), [(-1, 2), (3, 2), (0, 99), (99, 99)])
def test_c_range_is_checked(accel: ModuleType, pos: int, end: int) -> None:
    # The pure version follows indexing rules; C must not read outside the buffer.
    for decode in (accel.decode_header, accel.decode_headers):
        with pytest.raises(ValueError, match="outside a buffer of length 4"):
            decode(b"\x82\x02hi", pos, end, False, False, 10)


# --- the batch decoders ------------------------------------------------------------------


def test_batch_stop_markers() -> None:
    ok = header_bytes(0x82, False, 3) + b"abc"
    big = header_bytes(0x82, False, 1000)
    bad = b"\x83\x00"
    cases = [
        (b"", [0]),
        (b"\x82", [0]),
        (ok, [0x82, 2, 3, 0]),
        (ok + ok[:1], [0x82, 2, 3, 0]),  # the second header is incomplete
        (ok + ok[:3], [0x82, 2, 3, 5]),  # its header is complete, its payload not
        (ok + big, [0x82, 2, 3, 1004]),
        (ok + bad, [0x82, 2, 3, -1]),  # the violation waits for the next call
        (ok * 3, [0x82, 2, 3, 0x82, 2, 3, -1]),  # max_frames=2 reached
    ]
    decoders = [pure.decode_headers] + ([ACCEL.decode_headers] if ACCEL else [])
    for decode in decoders:
        for wire, expected in cases:
            assert decode(wire, 0, len(wire), False, False, 2000, 2) == expected, wire
        with pytest.raises(WSProtocolError, match="invalid opcode=0x3"):
            decode(bad + ok, 0, 7, False, False, 2000)


@SOME
@given(
    frames=st.lists(
        st.tuples(
            st.sampled_from([0x00, 0x01, 0x02, 0x80, 0x81, 0x82, 0x88, 0x89, 0x8A, 0xC2]),
            st.sampled_from([0, 1, 125, 126, 1000]),
        ),
        max_size=80,
    ),
    tail=st.binary(max_size=12),
    opts=options,
    max_frames=st.sampled_from([1, 7, 64, 65, 200]),
)
def test_batch_of_many_frames(
    accel: ModuleType,
    frames: list[tuple[int, int]],
    tail: bytes,
    opts: dict[str, Any],
    max_frames: int,
) -> None:
    masked = opts["expect_masked"]
    wire = b"".join(header_bytes(f, masked, n) + b"p" * n for f, n in frames) + tail
    compare_batch(accel, wire, 0, len(wire), max_frames, **opts)


@SOME
@given(data=st.binary(max_size=200), opts=options)
def test_pure_batch_is_repeated_single(data: bytes, opts: dict[str, Any]) -> None:
    # The reference batch is what calling decode_header frame after frame gives.
    args = (opts["expect_masked"], opts["allow_rsv"], opts["max_frame_size"])
    got = outcome(pure.decode_headers, data, 0, len(data), *args)
    expected: list[int] = []
    pos = 0
    while True:
        step = outcome(pure.decode_header, data, pos, len(data), *args)
        if step[0] == "error":
            if not expected:
                assert got == step
                return
            expected.append(-1)
            break
        header = step[1]
        if header is None:
            expected.append(0)
            break
        if header[1] + header[2] > len(data) - pos:
            expected.append(header[1] + header[2])
            break
        expected += header
        pos += header[1] + header[2]
    assert got == ("ok", expected)


def test_threads_do_not_share_output(accel: ModuleType) -> None:
    # cffi releases the GIL during the call: the pooled output arrays must not be
    # shared between threads.
    failures: list[int] = []
    wires = [
        b"".join(
            header_bytes(0x82, False, (i * 7 + j) % 300) + bytes((i * 7 + j) % 300)
            for j in range(30)
        )
        for i in range(4)
    ]
    expected = [pure.decode_headers(w, 0, len(w), False, False, 1000) for w in wires]

    def worker(i: int) -> None:
        for _ in range(300):
            wire = wires[i]
            if accel.decode_headers(wire, 0, len(wire), False, False, 1000) != expected[i]:
                failures.append(i)
            if accel.decode_header(wire, 0, len(wire), False, False, 1000) != tuple(
                expected[i][:3]
            ):
                failures.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# --- the backend's choice ---------------------------------------------------------------


def test_backend_choice(backend: _backend.Backend) -> None:
    # One header at a time is pure Python everywhere: one cffi call costs more.
    assert backend.decode_header is pure.decode_header
    pypy = platform.python_implementation() == "PyPy"
    if backend.name == "cffi" and not pypy:
        assert ACCEL is not None
        assert backend.decode_headers is ACCEL.decode_headers
    else:
        assert backend.decode_headers is None
    # A reader binds the decoders of the backend active when it is made.
    reader = _frames.FrameReader(is_client=True)
    assert reader._decode_headers is backend.decode_headers


def test_batch_rule_table() -> None:
    # A read goes to the batch decoder when it could hold BATCH_MIN_FRAMES frames
    # like its first, and that one is small.
    n = _backend.BATCH_MIN_FRAMES
    assert _frames._BATCH_AT[0x00] == n * 2
    assert _frames._BATCH_AT[0x20] == n * (2 + 32)
    assert _frames._BATCH_AT[0x80 | 0x20] == n * (2 + 4 + 32)
    assert min(_frames._BATCH_AT[0x7E], _frames._BATCH_AT[0xFF]) > 1 << 62


# --- FrameReader with and without the batch cache ------------------------------------------


@contextlib.contextmanager
def reader_decoders(batch: Optional[Callable[..., list[int]]]) -> Iterator[None]:
    """Make every FrameReader made inside use ``batch`` for every read (None: never)."""
    saved_backend, saved_table = _backend.ACTIVE, _frames._BATCH_AT
    _backend.ACTIVE = dataclasses.replace(saved_backend, decode_headers=batch)
    _frames._BATCH_AT = (0,) * 256
    try:
        yield
    finally:
        _backend.ACTIVE, _frames._BATCH_AT = saved_backend, saved_table


Event = tuple[Any, ...]


def frame_event(frame: WSFrame) -> Event:
    return (
        frame.msg_type,
        frame.fin,
        frame.rsv1,
        frame.rsv2,
        frame.rsv3,
        frame.payload_size,
        frame.tail_size,
        frame.last_in_buffer,
        frame.get_payload_as_bytes(),
    )


def run_reader(chunks: list[bytes], is_client: bool, **kwargs: Any) -> list[Event]:
    reader = FrameReader(is_client=is_client, read_buffer_init_size=2048, **kwargs)
    events: list[Event] = []
    try:
        for chunk in chunks:
            reader.feed_data(chunk)
            events.append(("read", len(chunk), reader.buffer_capacity))
            while (frame := reader.next_frame()) is not None:
                events.append(frame_event(frame))
            # What the next read may fill: it depends on the size of the frame that
            # is still incomplete, if its header told it.
            view = reader.get_buffer()
            events.append(("free", len(view), reader.buffer_capacity))
            view.release()
    except WSProtocolError as exc:
        events.append(("error", exc.code, str(exc)))
    return events


@st.composite
def reader_streams(draw: Any) -> tuple[list[bytes], bool, dict[str, Any]]:
    is_client = draw(st.booleans())
    frames = []
    for _ in range(draw(st.integers(0, 40))):
        first = draw(st.sampled_from([0x01, 0x02, 0x00, 0x81, 0x82, 0x80, 0x89, 0x8A, 0xC2]))
        size = draw(st.sampled_from([0, 1, 2, 10, 125, 126, 300, 2000, 9000]))
        if first & 0x0F >= 8:
            size = min(size, 125)
        key = None if is_client else draw(st.binary(min_size=4, max_size=4))
        frames.append(header_bytes(first, key is not None, size, key=key or b"") + b"q" * size)
    wire = bytearray(b"".join(frames))
    if draw(st.booleans()):  # then something that may break the rules, or a close
        wire += draw(st.one_of(st.binary(max_size=16), st.just(b"\x88\x02\x03\xe8")))
    cuts = sorted(draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    chunks = [bytes(wire[a:b]) for a, b in zip([0, *cuts], [*cuts, len(wire)])]
    kwargs = {
        "allow_rsv": draw(st.booleans()),
        "max_frame_size": draw(st.sampled_from([0, 125, 1000, 1 << 20, 1 << 20])),
    }
    return chunks, is_client, kwargs


@pytest.fixture(scope="module", params=["python", "cffi"])
def batch_decoder(request: pytest.FixtureRequest) -> Callable[..., list[int]]:
    """The batch decoders: the cache logic of FrameReader is tested with both."""
    if request.param == "python":
        return pure.decode_headers
    decode: Callable[..., list[int]] = request.getfixturevalue("accel").decode_headers
    return decode


@SOME
@given(stream=reader_streams())
def test_reader_with_batch_cache_behaves_the_same(
    batch_decoder: Callable[..., list[int]], stream: tuple[list[bytes], bool, dict[str, Any]]
) -> None:
    # Same frames, tail sizes, last_in_buffer flags, buffer sizes, and the same error
    # after the same frames, whether headers come one by one or from the batch cache.
    chunks, is_client, kwargs = stream
    with reader_decoders(None):
        expected = run_reader(chunks, is_client, **kwargs)
    with reader_decoders(batch_decoder):
        assert run_reader(chunks, is_client, **kwargs) == expected


def test_reader_batch_cache_survives_buffer_moves(
    batch_decoder: Callable[..., list[int]],
) -> None:
    # The cache holds headers relative to _start: compacting the buffer or moving it
    # into a bigger one between next_frame calls must not matter.
    small = header_bytes(0x82, False, 20) + bytes(range(20))
    wire = small * 100 + header_bytes(0x82, False, 5000)  # then a big partial frame
    with reader_decoders(batch_decoder):
        reader = FrameReader(is_client=True, read_buffer_init_size=2048)
        reader.feed_data(wire[:2000])
        got = [reader.next_frame() for _ in range(3)]
        assert all(f is not None and f.get_payload_as_bytes() == bytes(range(20)) for f in got)
        reader.feed_data(wire[2000:] + bytes(5000))  # forces a move and a bigger buffer
        count = 3
        while (frame := reader.next_frame()) is not None:
            count += 1
            if count <= 100:
                assert frame.get_payload_as_bytes() == bytes(range(20))
            else:
                assert frame.payload_size == 5000
        assert count == 101


# --- FrameReader's inline decoding of common headers ----------------------------------------


@MANY
@given(
    first=st.integers(0, 255),
    masked=st.booleans(),
    length=st.one_of(st.integers(0, 300), st.sampled_from([125, 126, 127, 0xFFFF, 0x10000])),
    form=st.sampled_from([None, 16]),
    opts=options,
)
def test_reader_inline_decoding_agrees_with_decode_header(
    first: int, masked: bool, length: int, form: Optional[int], opts: dict[str, Any]
) -> None:
    """next_frame decodes small data-frame headers inline; decode_header (the reference)
    must decide exactly the same for every header, valid or not."""
    header = header_bytes(first, masked, length, 16 if form == 16 and length <= 0xFFFF else None)
    data = header + bytes(min(length, 70_000))
    expect = outcome(
        pure.decode_header,
        data,
        0,
        len(data),
        opts["expect_masked"],
        opts["allow_rsv"],
        opts["max_frame_size"],
    )
    reader = FrameReader(
        is_client=not opts["expect_masked"],
        allow_rsv=opts["allow_rsv"],
        max_frame_size=opts["max_frame_size"],
    )
    reader.feed_data(data)
    try:
        frame = reader.next_frame()
    except WSProtocolError as exc:
        assert expect == ("error", type(exc), exc.code, str(exc))
        return
    assert expect[0] == "ok"
    decoded = expect[1]
    if decoded is None or decoded[1] + decoded[2] > len(data):
        assert frame is None  # an incomplete header or payload
        return
    first_byte, header_size, size = decoded
    assert frame is not None and frame._first == first_byte
    assert (frame.payload_size, frame.tail_size) == (size, len(data) - header_size - size)
