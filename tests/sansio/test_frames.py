"""Tests for picows._frames: frame encoding and the incremental FrameReader (RFC 6455 5).

Everything here is Sans-I/O: bytes go in through ``get_buffer``/``buffer_updated`` (the
``asyncio.BufferedProtocol`` path) or ``feed_data``, frames come out of ``next_frame``.
"""

from __future__ import annotations

import os
import random
import struct
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import feed_connection, open_connection
from picows._close import build_close_payload
from picows._connection import Connection, State
from picows._exceptions import WSProtocolError
from picows._frames import (
    UNMASK_AHEAD_FRAME,
    UNMASK_AHEAD_STEP,
    FrameReader,
    MaskKeySource,
    WSFrame,
    encode_frame,
    encode_frame_header,
)
from picows._types import WSCloseCode, WSMsgType

CONT, TEXT, BINARY = WSMsgType.CONTINUATION, WSMsgType.TEXT, WSMsgType.BINARY
CLOSE, PING, PONG = WSMsgType.CLOSE, WSMsgType.PING, WSMsgType.PONG
ALL_OPCODES = (CONT, TEXT, BINARY, CLOSE, PING, PONG)
RESERVED_OPCODES = (0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF)

RFC_KEY = bytes.fromhex("37fa213d")  # the masking key of the RFC 6455 5.7 examples

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- helpers --------------------------------------------------------------------

Parsed = tuple[WSMsgType, int, int, int, int, bytes]


def xor_mask(data: bytes, key: bytes) -> bytes:
    """Independent reference for RFC 6455 5.3 masking."""
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def feed_via_buffer(reader: FrameReader, data: bytes) -> None:
    """The BufferedProtocol path: copy into get_buffer()'s view, respecting its size."""
    pos = 0
    while pos < len(data):
        view = reader.get_buffer(len(data) - pos)
        assert len(view) > 0, "get_buffer() must always offer some free space"
        n = min(len(view), len(data) - pos)
        view[:n] = data[pos : pos + n]
        view.release()
        reader.buffer_updated(n)
        pos += n


def feed_via_read_buffer(reader: FrameReader, data: bytes) -> None:
    """The path of asyncio's selector loop: get_read_buffer(), never released."""
    pos = 0
    while pos < len(data):
        view = reader.get_read_buffer(len(data) - pos)
        assert len(view) > 0, "get_read_buffer() must always offer some free space"
        n = min(len(view), len(data) - pos)
        view[:n] = data[pos : pos + n]
        reader.buffer_updated(n)
        pos += n


def snapshot(frame: WSFrame) -> Parsed:
    return (
        frame.msg_type,
        frame.fin,
        frame.rsv1,
        frame.rsv2,
        frame.rsv3,
        frame.get_payload_as_bytes(),
    )


def drain(reader: FrameReader) -> list[Parsed]:
    out = []
    while True:
        frame = reader.next_frame()
        if frame is None:
            return out
        out.append(snapshot(frame))


def parse_all(data: bytes, *, is_client: bool, **kwargs: Any) -> list[Parsed]:
    reader = FrameReader(is_client=is_client, **kwargs)
    reader.feed_data(data)
    frames = drain(reader)
    assert reader.buffered == 0
    return frames


def connection_error(data: bytes, *, is_client: bool) -> WSProtocolError:
    """Feed ``data`` to an open Connection (the receive rules beyond the frame syntax,
    such as the CLOSE body) and return the WSProtocolError it failed with."""
    conn = open_connection(is_client=is_client)
    with pytest.raises(WSProtocolError) as info:
        feed_connection(conn, data)
        while conn.next_frame() is not None:
            pass
    assert conn.state is State.CLOSED and conn.failure is info.value
    return info.value


def protocol_error(
    data: bytes, *, is_client: bool, chunked: bool = False, **kwargs: Any
) -> WSProtocolError:
    """Feed ``data`` (optionally byte by byte) and return the WSProtocolError raised."""
    reader = FrameReader(is_client=is_client, **kwargs)
    chunks = [data[i : i + 1] for i in range(len(data))] if chunked else [data]
    with pytest.raises(WSProtocolError) as info:
        for chunk in chunks:
            feed_via_buffer(reader, chunk)
            while reader.next_frame() is not None:
                pass
    return info.value


def expected_header(
    opcode: int, length: int, fin: bool = True, key: Optional[bytes] = None
) -> bytes:
    first = (0x80 if fin else 0) | opcode
    mask = 0x80 if key is not None else 0
    if length < 126:
        header = bytes([first, mask | length])
    elif length < 65536:
        header = bytes([first, mask | 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([first, mask | 127]) + length.to_bytes(8, "big")
    return header + (key or b"")


# --- RFC 6455 5.7 examples, byte-exact -------------------------------------------

HELLO_UNMASKED = bytes.fromhex("810548656c6c6f")
HELLO_MASKED = bytes.fromhex("818537fa213d7f9f4d5158")


def test_rfc_single_frame_unmasked_text() -> None:
    assert encode_frame(TEXT, b"Hello") == HELLO_UNMASKED
    assert parse_all(HELLO_UNMASKED, is_client=True) == [(TEXT, 1, 0, 0, 0, b"Hello")]


def test_rfc_single_frame_masked_text() -> None:
    assert encode_frame(TEXT, b"Hello", mask_key=RFC_KEY) == HELLO_MASKED
    assert parse_all(HELLO_MASKED, is_client=False) == [(TEXT, 1, 0, 0, 0, b"Hello")]


def test_rfc_fragmented_unmasked_text() -> None:
    first, second = bytes.fromhex("010348656c"), bytes.fromhex("80026c6f")
    assert encode_frame(TEXT, b"Hel", fin=False) == first
    assert encode_frame(CONT, b"lo") == second
    assert parse_all(first + second, is_client=True) == [
        (TEXT, 0, 0, 0, 0, b"Hel"),
        (CONT, 1, 0, 0, 0, b"lo"),
    ]


def test_rfc_unmasked_ping_and_masked_pong() -> None:
    ping = bytes.fromhex("890548656c6c6f")
    pong = bytes.fromhex("8a8537fa213d7f9f4d5158")
    assert encode_frame(PING, b"Hello") == ping
    assert encode_frame(PONG, b"Hello", mask_key=RFC_KEY) == pong
    assert parse_all(ping, is_client=True) == [(PING, 1, 0, 0, 0, b"Hello")]
    assert parse_all(pong, is_client=False) == [(PONG, 1, 0, 0, 0, b"Hello")]


def test_rfc_256_byte_binary() -> None:
    payload = bytes(range(256))
    wire = bytes.fromhex("827e0100") + payload
    assert encode_frame(BINARY, payload) == wire
    assert parse_all(wire, is_client=True) == [(BINARY, 1, 0, 0, 0, payload)]


def test_rfc_64kib_binary() -> None:
    payload = os.urandom(65536)
    wire = bytes.fromhex("827f0000000000010000") + payload
    assert encode_frame(BINARY, payload) == wire
    assert parse_all(wire, is_client=True, read_buffer_init_size=2048) == [
        (BINARY, 1, 0, 0, 0, payload)
    ]
    masked = encode_frame(BINARY, payload, mask_key=RFC_KEY)
    assert masked == bytes.fromhex("82ff0000000000010000") + RFC_KEY + xor_mask(payload, RFC_KEY)
    assert parse_all(masked, is_client=False) == [(BINARY, 1, 0, 0, 0, payload)]


# --- encoder ---------------------------------------------------------------------

BOUNDARY_LENGTHS = (0, 1, 125, 126, 127, 65535, 65536)


@pytest.mark.parametrize("opcode", ALL_OPCODES, ids=lambda op: op.name)
@pytest.mark.parametrize("length", BOUNDARY_LENGTHS)
def test_encode_every_opcode_and_length_class(opcode: WSMsgType, length: int) -> None:
    payload = bytes(i & 0xFF for i in range(length))
    assert encode_frame(opcode, payload) == expected_header(opcode, length) + payload
    key = b"\x01\x80\xfe\x7f"
    assert encode_frame(opcode, payload, mask_key=key) == expected_header(
        opcode, length, key=key
    ) + xor_mask(payload, key)
    assert encode_frame_header(opcode, length) == expected_header(opcode, length)


@pytest.mark.parametrize("payload_type", [bytes, bytearray, memoryview])
def test_encode_accepts_buffer_types(payload_type: Any) -> None:
    payload = payload_type(b"abc" * 100)
    assert encode_frame(BINARY, payload) == expected_header(BINARY, 300) + b"abc" * 100
    assert encode_frame(BINARY, payload, mask_key=RFC_KEY) == expected_header(
        BINARY, 300, key=RFC_KEY
    ) + xor_mask(b"abc" * 100, RFC_KEY)


@pytest.mark.parametrize(
    ("fin", "rsv1", "rsv2", "rsv3", "first"),
    [
        (True, False, False, False, 0x82),
        (False, False, False, False, 0x02),
        (True, True, False, False, 0xC2),
        (True, False, True, False, 0xA2),
        (True, False, False, True, 0x92),
        (False, True, True, True, 0x72),
    ],
)
def test_encode_fin_and_rsv_bits(fin: bool, rsv1: bool, rsv2: bool, rsv3: bool, first: int) -> None:
    assert encode_frame(BINARY, b"x", fin, rsv1, rsv2, rsv3) == bytes([first, 1]) + b"x"
    assert encode_frame_header(BINARY, 1, fin, rsv1, rsv2, rsv3) == bytes([first, 1])


@pytest.mark.parametrize("length", [65536, 2**32, 2**32 + 1, 2**62, 2**63 - 1])
def test_encode_header_huge_lengths(length: int) -> None:
    assert encode_frame_header(BINARY, length) == b"\x82\x7f" + struct.pack("!Q", length)
    assert (
        encode_frame_header(BINARY, length, mask_key=RFC_KEY)
        == b"\x82\xff" + struct.pack("!Q", length) + RFC_KEY
    )


@pytest.mark.parametrize("length", [2**63, 2**64, 2**70])
def test_encode_header_rejects_lengths_over_63_bits(length: int) -> None:
    with pytest.raises(ValueError):
        encode_frame_header(BINARY, length)
    with pytest.raises(ValueError):
        encode_frame_header(BINARY, length, mask_key=RFC_KEY)


# --- round trip (hypothesis) ------------------------------------------------------

VALID_CLOSE_CODES = (1000, 1001, 1002, 1003, 1007, 1008, 1011, 1014, 3000, 4000, 4999)


@st.composite
def payloads(draw: Any, max_class: str = "64bit") -> bytes:
    classes = ["7bit"] * 5 + ["16bit"] * 2
    if max_class == "64bit":
        classes.append("64bit")
    size_class = draw(st.sampled_from(classes))
    if size_class == "7bit":
        return draw(st.binary(max_size=125))
    if size_class == "16bit" and max_class == "small":
        size = draw(st.integers(126, 300))
    elif size_class == "16bit":
        size = draw(st.one_of(st.sampled_from([126, 127, 128, 65535]), st.integers(126, 3000)))
    else:
        size = draw(st.integers(65536, 66000))
    if size <= 300:
        return draw(st.binary(min_size=size, max_size=size))
    return random.Random(draw(st.integers(0, 2**32))).randbytes(size)


@st.composite
def close_payloads(draw: Any) -> bytes:
    if draw(st.booleans()):
        return b""
    code = draw(st.sampled_from(VALID_CLOSE_CODES))
    reason = draw(st.text(max_size=30))  # at most 120 bytes of UTF-8
    return build_close_payload(code, reason)


@st.composite
def frame_specs(draw: Any, allow_rsv: bool, max_class: str = "64bit") -> dict[str, Any]:
    """One frame that a conforming peer may send: opcode, flags and payload."""
    if draw(st.integers(0, 3)) == 0:
        opcode = draw(st.sampled_from([PING, PONG]))
        return {
            "opcode": opcode,
            "payload": draw(st.binary(max_size=125)),
            "fin": True,
            "rsv": (False, False, False),
        }
    rsv = tuple(draw(st.booleans()) for _ in range(3)) if allow_rsv else (False, False, False)
    return {
        "opcode": draw(st.sampled_from([CONT, TEXT, BINARY])),
        "payload": draw(payloads(max_class)),
        "fin": draw(st.booleans()),
        "rsv": rsv,
    }


@st.composite
def streams(draw: Any, max_frames: int = 6, max_class: str = "64bit") -> dict[str, Any]:
    """A whole conversation in one direction, maybe ended by a CLOSE."""
    allow_rsv = draw(st.booleans())
    specs = draw(st.lists(frame_specs(allow_rsv, max_class), max_size=max_frames))
    if draw(st.booleans()):
        specs.append(
            {"opcode": CLOSE, "payload": draw(close_payloads()), "fin": True, "rsv": (False,) * 3}
        )
    sender_is_client = draw(st.booleans())
    wire = []
    for spec in specs:
        key = draw(st.binary(min_size=4, max_size=4)) if sender_is_client else None
        wire.append(encode_frame(spec["opcode"], spec["payload"], spec["fin"], *spec["rsv"], key))
    expected = [
        (s["opcode"], int(s["fin"]), *(int(b) for b in s["rsv"]), s["payload"]) for s in specs
    ]
    return {
        "allow_rsv": allow_rsv,
        "reader_is_client": not sender_is_client,
        "wire": wire,
        "expected": expected,
        "init_size": draw(st.sampled_from([0, 2048, 4096, 16384])),
    }


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), cuts=st.lists(st.integers(0, 2**20), max_size=25), data=st.data())
def test_round_trip_random_split(stream: dict[str, Any], cuts: list[int], data: Any) -> None:
    wire = b"".join(stream["wire"])
    reader = FrameReader(
        is_client=stream["reader_is_client"],
        allow_rsv=stream["allow_rsv"],
        read_buffer_init_size=stream["init_size"],
    )
    parsed: list[Parsed] = []
    feeds = [feed_via_buffer, feed_via_read_buffer, FrameReader.feed_data]
    for chunk in split_at(wire, cuts):
        data.draw(st.sampled_from(feeds), label="feed")(reader, chunk)
        parsed.extend(drain(reader))
    assert parsed == stream["expected"]
    assert all(type(p[0]) is WSMsgType for p in parsed)
    assert reader.buffered == 0


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
)
@given(
    size=st.integers(UNMASK_AHEAD_FRAME, 300_000),
    key=st.binary(min_size=4, max_size=4),
    reads=st.lists(
        st.one_of(st.integers(1, 100), st.integers(UNMASK_AHEAD_STEP - 5, 70_000)),
        min_size=1,
        max_size=12,
    ),
    init_size=st.sampled_from([2048, 16384, 65536]),
    data=st.data(),
)
def test_a_big_masked_frame_unmasked_as_it_arrives_comes_out_whole(
    size: int, key: bytes, reads: list[int], init_size: int, data: Any
) -> None:
    # A server unmasks a big frame read by read (_unmask_ahead), while the buffer
    # moves and grows under it; reads of every size, before and after the key.
    payload = random.Random(size).randbytes(size)
    wire = (
        encode_frame(TEXT, b"before", True, mask_key=key[::-1])
        + encode_frame(BINARY, payload, True, mask_key=key)
        + encode_frame(BINARY, b"after", True, mask_key=key)
    )
    reader = FrameReader(is_client=False, read_buffer_init_size=init_size)
    feeds = [feed_via_buffer, feed_via_read_buffer, FrameReader.feed_data]
    parsed: list[Parsed] = []
    pos, turn = 0, 0
    while pos < len(wire):
        step = reads[turn % len(reads)]
        data.draw(st.sampled_from(feeds), label="feed")(reader, wire[pos : pos + step])
        parsed.extend(drain(reader))
        pos, turn = pos + step, turn + 1
    assert [p[5] for p in parsed] == [b"before", payload, b"after"]
    assert reader.buffered == 0


@FAST
@given(stream=streams(max_frames=5, max_class="small"))
def test_round_trip_byte_by_byte(stream: dict[str, Any]) -> None:
    """Each frame comes out exactly when its last byte arrives, never earlier."""
    reader = FrameReader(
        is_client=stream["reader_is_client"],
        allow_rsv=stream["allow_rsv"],
        read_buffer_init_size=stream["init_size"],
    )
    wire = b"".join(stream["wire"][:4])
    ends, total = set(), 0
    for frame in stream["wire"][:4]:
        total += len(frame)
        ends.add(total)
    parsed: list[Parsed] = []
    for i in range(len(wire)):
        feed_via_buffer(reader, wire[i : i + 1])
        got = drain(reader)
        assert len(got) == (1 if i + 1 in ends else 0)
        parsed.extend(got)
    assert parsed == stream["expected"][:4]


def test_tail_size_and_last_in_buffer() -> None:
    a = encode_frame(TEXT, b"first")
    b = encode_frame(BINARY, b"second!", fin=False)
    c = encode_frame(PING, b"")
    partial = encode_frame(TEXT, b"partial payload")[:7]
    reader = FrameReader(is_client=True)
    reader.feed_data(a + b + c + partial)

    fa = reader.next_frame()
    assert fa is not None and fa.get_payload_as_bytes() == b"first"
    assert fa.tail_size == len(b) + len(c) + len(partial)
    assert fa.last_in_buffer == 0

    fb = reader.next_frame()
    assert fb is not None and fb.get_payload_as_bytes() == b"second!"
    assert fb.tail_size == len(c) + len(partial)
    assert fb.last_in_buffer == 0

    fc = reader.next_frame()
    assert fc is not None and fc.msg_type is PING
    assert fc.tail_size == len(partial)  # a partial frame counts in tail_size ...
    assert fc.last_in_buffer == 1  # ... but is not a complete frame

    assert reader.next_frame() is None
    assert reader.buffered == len(partial)
    reader.feed_data(encode_frame(TEXT, b"partial payload")[7:])
    fd = reader.next_frame()
    assert fd is not None and fd.get_payload_as_bytes() == b"partial payload"
    assert (fd.tail_size, fd.last_in_buffer) == (0, 1)


@pytest.mark.parametrize("tail", [b"\x81", b"\x81\x7e\x01", b"\x82\x7f\x00\x00"])
def test_last_in_buffer_with_incomplete_header_behind(tail: bytes) -> None:
    reader = FrameReader(is_client=True)
    reader.feed_data(HELLO_UNMASKED + tail)
    frame = reader.next_frame()
    assert frame is not None
    assert (frame.tail_size, frame.last_in_buffer) == (len(tail), 1)
    assert reader.next_frame() is None


def test_last_in_buffer_server_side_masked_frames() -> None:
    reader = FrameReader(is_client=False)
    reader.feed_data(HELLO_MASKED + HELLO_MASKED)
    first = reader.next_frame()
    assert first is not None
    assert (first.tail_size, first.last_in_buffer) == (len(HELLO_MASKED), 0)
    second = reader.next_frame()
    assert second is not None
    assert (second.tail_size, second.last_in_buffer) == (0, 1)
    assert first.get_payload_as_bytes() == second.get_payload_as_bytes() == b"Hello"


# --- protocol violations -----------------------------------------------------------

PE = WSCloseCode.PROTOCOL_ERROR


@pytest.mark.parametrize("opcode", RESERVED_OPCODES, ids=hex)
@pytest.mark.parametrize("is_client", [True, False], ids=["client", "server"])
def test_reserved_opcodes(opcode: int, is_client: bool) -> None:
    frame = encode_frame(opcode, b"x", mask_key=None if is_client else RFC_KEY)
    exc = protocol_error(frame, is_client=is_client)
    assert exc.code == PE
    assert f"invalid opcode=0x{opcode:x}" in str(exc).lower()
    # As soon as the first two bytes are there.
    assert protocol_error(frame[:2], is_client=is_client).code == PE


@pytest.mark.parametrize("opcode", ALL_OPCODES, ids=lambda op: op.name)
@pytest.mark.parametrize("bit", ["rsv1", "rsv2", "rsv3"])
def test_rsv_bits_without_extension(opcode: WSMsgType, bit: str) -> None:
    payload = b"\x03\xe8" if opcode is CLOSE else b"ab"
    frame = encode_frame(opcode, payload, **{bit: True})
    exc = protocol_error(frame, is_client=True)
    assert exc.code == PE
    assert "rsv" in str(exc).lower()
    masked = encode_frame(opcode, payload, mask_key=RFC_KEY, **{bit: True})
    assert protocol_error(masked, is_client=False).code == PE


@pytest.mark.parametrize("opcode", [CLOSE, PING, PONG], ids=lambda op: op.name)
@pytest.mark.parametrize("bit", ["rsv1", "rsv2", "rsv3"])
def test_rsv_bits_on_control_frames_even_with_allow_rsv(opcode: WSMsgType, bit: str) -> None:
    payload = b"\x03\xe8" if opcode is CLOSE else b"ab"
    frame = encode_frame(opcode, payload, **{bit: True})
    exc = protocol_error(frame, is_client=True, allow_rsv=True)
    assert exc.code == PE
    assert "rsv" in str(exc).lower()


@pytest.mark.parametrize("opcode", [CONT, TEXT, BINARY], ids=lambda op: op.name)
def test_rsv_bits_on_data_frames_allowed_with_allow_rsv(opcode: WSMsgType) -> None:
    wire = b"".join(
        encode_frame(opcode, b"xy", True, r1, r2, r3)
        for r1, r2, r3 in [(True, False, False), (False, True, False), (False, False, True)]
    )
    assert parse_all(wire, is_client=True, allow_rsv=True) == [
        (opcode, 1, 1, 0, 0, b"xy"),
        (opcode, 1, 0, 1, 0, b"xy"),
        (opcode, 1, 0, 0, 1, b"xy"),
    ]


@pytest.mark.parametrize("opcode", [CLOSE, PING, PONG], ids=lambda op: op.name)
def test_fragmented_control_frame(opcode: WSMsgType) -> None:
    frame = encode_frame(opcode, b"", fin=False)
    exc = protocol_error(frame, is_client=True)
    assert exc.code == PE
    assert "fragment" in str(exc).lower()


@pytest.mark.parametrize("opcode", [CLOSE, PING, PONG], ids=lambda op: op.name)
@pytest.mark.parametrize("length", [126, 127, 1000, 65536])
def test_control_payload_over_125(opcode: WSMsgType, length: int) -> None:
    payload = b"\x03\xe8" + b"a" * (length - 2)
    exc = protocol_error(encode_frame(opcode, payload), is_client=True)
    assert exc.code == PE
    assert "125" in str(exc)


def test_control_payload_of_125_is_fine() -> None:
    assert parse_all(encode_frame(PING, b"p" * 125), is_client=True) == [
        (PING, 1, 0, 0, 0, b"p" * 125)
    ]


def test_masked_frame_received_by_client() -> None:
    exc = protocol_error(HELLO_MASKED, is_client=True)
    assert exc.code == PE
    assert "Received masked frame from server" in str(exc)


def test_unmasked_frame_received_by_server() -> None:
    exc = protocol_error(HELLO_UNMASKED, is_client=False)
    assert exc.code == PE
    assert "Received un-masked frame from client" in str(exc)


@pytest.mark.parametrize("length", [0, 1, 125])
def test_16bit_length_must_be_minimal(length: int) -> None:
    frame = b"\x82\x7e" + length.to_bytes(2, "big") + b"z" * length
    exc = protocol_error(frame, is_client=True)
    assert exc.code == PE
    assert "invalid 16-bit payload len" in str(exc)
    assert protocol_error(frame[:4], is_client=True).code == PE  # header alone suffices


@pytest.mark.parametrize("length", [0, 125, 126, 65535])
def test_64bit_length_must_be_minimal(length: int) -> None:
    frame = b"\x82\x7f" + length.to_bytes(8, "big") + b"z" * length
    exc = protocol_error(frame, is_client=True)
    assert exc.code == PE
    assert "invalid 64-bit payload length" in str(exc)
    assert protocol_error(frame[:10], is_client=True).code == PE


@pytest.mark.parametrize("length", [2**63, 2**63 + 65536, 2**64 - 1])
def test_64bit_length_with_msb_set(length: int) -> None:
    header = b"\x82\x7f" + length.to_bytes(8, "big")
    exc = protocol_error(header, is_client=True, max_frame_size=2**70)
    assert exc.code == PE
    assert "invalid 64-bit payload length" in str(exc)
    assert protocol_error(header, is_client=True).code == PE


@pytest.mark.parametrize(
    ("length", "max_size"),
    [(101, 100), (126, 125), (1025, 1024), (65536, 65535), (2**40, 10 * 1024 * 1024)],
)
@pytest.mark.parametrize("is_client", [True, False], ids=["client", "server"])
def test_frame_over_max_size_fails_on_header(length: int, max_size: int, is_client: bool) -> None:
    header = encode_frame_header(BINARY, length, mask_key=None if is_client else RFC_KEY)
    exc = protocol_error(header, is_client=is_client, max_frame_size=max_size)
    assert exc.code == WSCloseCode.MESSAGE_TOO_BIG
    assert str(exc) == (
        f"Received frame with payload size exceeding max allowed size, {length} > {max_size}"
    )
    # Also when the header trickles in byte by byte: no payload is ever awaited.
    exc = protocol_error(header, is_client=is_client, max_frame_size=max_size, chunked=True)
    assert exc.code == WSCloseCode.MESSAGE_TOO_BIG


def test_frame_of_exactly_max_size_is_accepted() -> None:
    wire = encode_frame(BINARY, b"m" * 1024)
    assert parse_all(wire, is_client=True, max_frame_size=1024) == [
        (BINARY, 1, 0, 0, 0, b"m" * 1024)
    ]


@pytest.mark.parametrize("is_client", [True, False], ids=["client", "server"])
def test_close_with_one_byte_payload(is_client: bool) -> None:
    frame = encode_frame(CLOSE, b"\x03", mask_key=None if is_client else RFC_KEY)
    assert connection_error(frame, is_client=is_client).code == PE


@pytest.mark.parametrize("code", [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
def test_close_with_invalid_code(code: int) -> None:
    frame = encode_frame(CLOSE, code.to_bytes(2, "big") + b"why")
    exc = connection_error(frame, is_client=True)
    assert exc.code == PE
    assert str(code) in str(exc)


@pytest.mark.parametrize("code", [*range(1000, 1004), *range(1007, 1015), 3000, 3999, 4000, 4999])
def test_close_with_valid_code(code: int) -> None:
    reader = FrameReader(is_client=False)
    reader.feed_data(encode_frame(CLOSE, code.to_bytes(2, "big") + b"bye", mask_key=RFC_KEY))
    frame = reader.next_frame()
    assert frame is not None and frame.msg_type is CLOSE
    assert frame.get_close_code() == code
    assert isinstance(frame.get_close_code(), WSCloseCode)
    assert frame.get_close_reason() == "bye"


@pytest.mark.parametrize("reason", [b"\xff", b"ok\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"a\x80b"])
@pytest.mark.parametrize("is_client", [True, False], ids=["client", "server"])
def test_close_reason_invalid_utf8(reason: bytes, is_client: bool) -> None:
    frame = encode_frame(CLOSE, b"\x03\xe8" + reason, mask_key=None if is_client else RFC_KEY)
    exc = connection_error(frame, is_client=is_client)
    assert exc.code == WSCloseCode.INVALID_TEXT


def test_text_payload_utf8_not_validated_by_core() -> None:
    assert parse_all(encode_frame(TEXT, b"\xff\xfe"), is_client=True) == [
        (TEXT, 1, 0, 0, 0, b"\xff\xfe")
    ]


@pytest.mark.parametrize(
    "bad",
    [
        bytes([0x83, 0x00]),  # reserved opcode
        bytes([0xC9, 0x00]),  # RSV1 on a PING
        bytes([0x09, 0x00]),  # fragmented PING
        b"\x88\x01\x03",  # 1-byte CLOSE
        b"\x88\x02\x03\xed",  # CLOSE 1005
        b"\x88\x03\x03\xe8\xff",  # CLOSE reason not UTF-8
        b"\x82\x7e\x00\x10",  # non-minimal 16-bit length
    ],
)
def test_frames_before_an_error_are_returned_first(bad: bytes) -> None:
    """behaviors.md section 5 item 5: valid frames ahead of a violation are delivered."""
    good = encode_frame(TEXT, b"one") + encode_frame(PING, b"two") + encode_frame(BINARY, b"3")
    conn = open_connection(is_client=True, auto_pong=False)
    conn.receive_data(good + bad)
    got = []
    with pytest.raises(WSProtocolError):
        for _ in range(10):
            frame = conn.next_frame()
            assert frame is not None
            got.append(frame.get_payload_as_bytes())
    assert got == [b"one", b"two", b"3"]


def test_frames_before_an_error_are_returned_first_server_side() -> None:
    good = encode_frame(TEXT, b"one", mask_key=RFC_KEY) + encode_frame(
        BINARY, b"x", mask_key=RFC_KEY
    )
    reader = FrameReader(is_client=False)
    reader.feed_data(good + HELLO_UNMASKED)
    first = reader.next_frame()
    assert first is not None and first.get_payload_as_bytes() == b"one"
    second = reader.next_frame()
    assert second is not None and second.get_payload_as_bytes() == b"x"
    with pytest.raises(WSProtocolError):
        reader.next_frame()


def test_a_frame_is_valid_until_the_next_one() -> None:
    """As upstream: one WSFrame per reader, refilled for each frame (no allocation)."""
    reader = FrameReader(is_client=True)
    reader.feed_data(encode_frame(TEXT, b"one") + encode_frame(BINARY, b"two"))
    first = reader.next_frame()
    assert first is not None and first.get_payload_as_bytes() == b"one"
    second = reader.next_frame()
    assert second is first and second.msg_type is BINARY
    assert second.get_payload_as_bytes() == b"two"


@pytest.mark.parametrize(
    "after",
    [
        HELLO_UNMASKED,
        b"\xff\xff\xff\xff",  # garbage that would be a protocol error
        encode_frame(CLOSE, b"\x03\xe8"),  # a second CLOSE
        b"\x81",  # a lone byte
        HELLO_UNMASKED + b"\x81",
    ],
)
def test_bytes_after_close_are_discarded(after: bytes) -> None:
    """5.5.1: the peer sends nothing after its CLOSE; whatever it does is dropped unread."""
    conn = open_connection(is_client=True)
    conn.receive_data(encode_frame(CLOSE, b"\x03\xe8bye") + after)
    frame = conn.next_frame()
    assert frame is not None and frame.msg_type is CLOSE
    assert frame.get_close_reason() == "bye"
    assert conn.next_frame() is None
    assert conn.buffered == 0
    conn.receive_data(b"\x83\x00" * 1000)  # reserved opcodes: ignored, not raised
    assert conn.next_frame() is None
    assert conn.buffered == 0 and conn.state is State.CLOSING


# --- WSFrame API ---------------------------------------------------------------------


def one_frame(wire: bytes, is_client: bool = True) -> WSFrame:
    reader = FrameReader(is_client=is_client)
    reader.feed_data(wire)
    frame = reader.next_frame()
    assert frame is not None
    return frame


def test_frame_attributes() -> None:
    frame = one_frame(encode_frame(BINARY, b"\x00\x01\x02", fin=False))
    assert frame.msg_type is BINARY
    assert frame.payload_size == 3
    for name, value in [("fin", 0), ("rsv1", 0), ("rsv2", 0), ("rsv3", 0)]:
        attr = getattr(frame, name)
        assert type(attr) is int, name  # 0/1 ints as upstream, not bools
        assert attr == value, name


def test_frame_attributes_allow_rsv() -> None:
    reader = FrameReader(is_client=True, allow_rsv=True)
    reader.feed_data(encode_frame(TEXT, b"abc", fin=True, rsv1=True, rsv2=True))
    frame = reader.next_frame()
    assert frame is not None
    assert (frame.fin, frame.rsv1, frame.rsv2, frame.rsv3) == (1, 1, 1, 0)
    assert all(type(getattr(frame, n)) is int for n in ("fin", "rsv1", "rsv2", "rsv3"))


def test_frame_payload_getters() -> None:
    frame = one_frame(encode_frame(TEXT, "héllo".encode(), mask_key=RFC_KEY), is_client=False)
    assert frame.payload_size == 6
    assert frame.get_payload_as_bytes() == "héllo".encode()
    assert type(frame.get_payload_as_bytes()) is bytes
    assert frame.get_payload_as_utf8_text() == "héllo"
    with pytest.raises(UnicodeDecodeError):
        frame.get_payload_as_ascii_text()
    ascii_frame = one_frame(encode_frame(TEXT, b"plain"))
    assert ascii_frame.get_payload_as_ascii_text() == "plain"


@pytest.mark.parametrize("bad", [b"\xff", b"abc\xc3", b"\xed\xa0\x80"])
def test_frame_utf8_getter_rejects_bad_input(bad: bytes) -> None:
    frame = one_frame(encode_frame(TEXT, bad))
    with pytest.raises(UnicodeDecodeError):
        frame.get_payload_as_utf8_text()
    with pytest.raises(UnicodeDecodeError):
        frame.get_payload_as_ascii_text()


def test_frame_empty_payload() -> None:
    frame = one_frame(encode_frame(BINARY, b""))
    assert frame.payload_size == 0
    assert frame.get_payload_as_bytes() == b""
    assert frame.get_payload_as_utf8_text() == ""
    assert frame.get_payload_as_memoryview().nbytes == 0


@pytest.mark.parametrize("is_client", [True, False], ids=["client", "server"])
def test_frame_memoryview_is_readonly_and_zero_copy(is_client: bool) -> None:
    reader = FrameReader(is_client=is_client)
    reader.feed_data(encode_frame(BINARY, b"zero-copy", mask_key=None if is_client else RFC_KEY))
    frame = reader.next_frame()
    assert frame is not None
    view = frame.get_payload_as_memoryview()
    assert isinstance(view, memoryview)
    assert view.readonly
    assert view == b"zero-copy"
    assert view.nbytes == frame.payload_size
    with pytest.raises(TypeError):
        view[0] = 0
    # It shares memory with the receive buffer that get_buffer() hands out.
    free = reader.get_buffer()
    assert view.obj is free.obj
    free.release()


def test_close_getters_no_payload() -> None:
    frame = one_frame(encode_frame(CLOSE, b""))
    assert frame.get_close_code() is WSCloseCode.NO_INFO
    assert frame.get_close_message() is None
    assert frame.get_close_reason() is None


def test_close_getters_code_only() -> None:
    frame = one_frame(encode_frame(CLOSE, b"\x03\xe9"))
    assert frame.get_close_code() is WSCloseCode.GOING_AWAY
    assert frame.get_close_message() is None
    assert frame.get_close_reason() is None


def test_close_getters_code_and_reason() -> None:
    frame = one_frame(encode_frame(CLOSE, b"\x03\xe8" + "ça va".encode(), mask_key=RFC_KEY), False)
    assert frame.get_close_code() is WSCloseCode.OK
    assert frame.get_close_message() == "ça va".encode()
    assert type(frame.get_close_message()) is bytes
    assert frame.get_close_reason() == "ça va"


def test_close_getters_unknown_valid_code() -> None:
    frame = one_frame(encode_frame(CLOSE, (4000).to_bytes(2, "big") + b"app"))
    code = frame.get_close_code()
    assert code == 4000
    assert isinstance(code, WSCloseCode)
    assert repr(code) == "<WSCloseCode: 4000>"
    assert frame.get_close_reason() == "app"


@pytest.mark.parametrize("opcode", [CONT, TEXT, BINARY, PING, PONG], ids=lambda op: op.name)
@pytest.mark.parametrize("getter", ["get_close_code", "get_close_message", "get_close_reason"])
def test_close_getters_on_other_frames_assert(opcode: WSMsgType, getter: str) -> None:
    frame = one_frame(encode_frame(opcode, b"\x03\xe8abc"))
    with pytest.raises(AssertionError):
        getattr(frame, getter)()


def test_frame_str_exact_format() -> None:
    frame = one_frame(HELLO_UNMASKED)
    expected = (
        "WSFrame(TEXT, fin=True, rsv1=False, rsv2=False, rsv3=False, "
        "last_in_buffer=True, payload_sz=5, tail_sz=0)"
    )
    assert str(frame) == expected


def test_frame_str_with_flags_and_tail() -> None:
    reader = FrameReader(is_client=True, allow_rsv=True)
    reader.feed_data(encode_frame(BINARY, b"abc", fin=False, rsv1=True, rsv3=True) + HELLO_UNMASKED)
    frame = reader.next_frame()
    assert frame is not None
    assert str(frame) == (
        "WSFrame(BINARY, fin=False, rsv1=True, rsv2=False, rsv3=True, "
        "last_in_buffer=False, payload_sz=3, tail_sz=7)"
    )


# --- buffer management --------------------------------------------------------------


@pytest.mark.parametrize(("init", "expected"), [(0, 2048), (100, 2048), (2048, 2048), (5000, 5000)])
def test_read_buffer_init_size(init: int, expected: int) -> None:
    reader = FrameReader(is_client=True, read_buffer_init_size=init)
    assert reader.buffer_capacity == expected
    assert len(reader.get_buffer()) == expected


def test_default_read_buffer_is_16kib() -> None:
    assert FrameReader(is_client=True).buffer_capacity == 16 * 1024


def test_buffer_grows_with_the_bytes_that_arrive() -> None:
    """Memory follows received bytes, never an announced length."""
    payload = os.urandom(100_000)
    wire = encode_frame(BINARY, payload, mask_key=RFC_KEY)
    reader = FrameReader(is_client=False, read_buffer_init_size=2048)
    feed_via_buffer(reader, wire[:15])
    assert reader.next_frame() is None
    # The header announced 100 KB: nothing is allocated for it yet.
    assert reader.buffer_capacity == 2048
    feed_via_buffer(reader, wire[15:])
    assert drain(reader) == [(BINARY, 1, 0, 0, 0, payload)]
    # Doubling, capped by the frame: room for the frame, and not much more (a power of
    # two would be 128 KiB).
    assert len(wire) <= reader.buffer_capacity < len(wire) + 4096
    # Once the frame is consumed, shrink() gives the buffer back.
    assert reader.shrink() and reader.buffer_capacity == 2048
    assert not reader.shrink()  # nothing more to give back


def test_a_big_frame_is_copied_only_when_the_buffer_grows() -> None:
    """Receiving a big frame in small reads moves its bytes once per doubling of the
    buffer, and never again once the buffer has room for the whole frame."""
    payload = os.urandom(1 << 20)
    wire = encode_frame(BINARY, payload, mask_key=RFC_KEY)
    reader = FrameReader(is_client=False, read_buffer_init_size=16384)
    buffers = []  # each distinct bytearray the reads went into
    pos = 0
    while pos < len(wire):
        view = reader.get_buffer(16384)
        if not buffers or view.obj is not buffers[-1]:
            buffers.append(view.obj)
        size = min(len(view), 16384, len(wire) - pos)
        view[:size] = wire[pos : pos + size]
        reader.buffer_updated(size)
        pos += size
        assert reader.next_frame() is None or pos == len(wire)
    # 16 KiB doubled up to the frame's size: 16, 32, ..., 512 KiB, then ~1 MiB.
    assert len(buffers) <= 8, [len(b) for b in buffers]
    assert len(buffers[-1]) < len(wire) + 4096


def test_shrink_keeps_a_buffer_that_holds_bytes() -> None:
    wire = encode_frame(BINARY, bytes(50_000), mask_key=RFC_KEY)
    reader = FrameReader(is_client=False, read_buffer_init_size=2048)
    feed_via_buffer(reader, wire[:-10])  # the frame is not complete
    grown = reader.buffer_capacity
    assert grown > 2048
    assert not reader.shrink() and reader.buffer_capacity == grown
    feed_via_buffer(reader, wire[-10:])
    assert drain(reader) == [(BINARY, 1, 0, 0, 0, bytes(50_000))]


def test_buffer_does_not_grow_while_small_frames_stream() -> None:
    wire = b"".join(
        encode_frame(BINARY, bytes([i & 0xFF]) * (i % 200), mask_key=RFC_KEY) for i in range(10_000)
    )
    reader = FrameReader(is_client=False, read_buffer_init_size=2048)
    count = 0
    rng = random.Random(1)
    pos = 0
    while pos < len(wire):
        size = rng.randint(1, 1500)
        feed_via_buffer(reader, wire[pos : pos + size])
        pos += size
        while True:
            frame = reader.next_frame()
            if frame is None:
                break
            assert frame.payload_size == count % 200
            count += 1
        assert reader.buffer_capacity <= 4096
    assert count == 10_000
    assert reader.buffered == 0


def test_kept_memoryview_does_not_break_later_reads() -> None:
    reader = FrameReader(is_client=False, read_buffer_init_size=2048)
    reader.feed_data(encode_frame(BINARY, b"keep me", mask_key=RFC_KEY) + b"\x82")
    frame = reader.next_frame()
    assert frame is not None
    kept = frame.get_payload_as_memoryview()
    kept_bytes = frame.get_payload_as_bytes()
    assert reader.next_frame() is None
    # Compaction (partial frame moved to the front) and growth, with `kept` alive.
    rest = encode_frame(BINARY, b"x" * 100, mask_key=RFC_KEY)[1:]
    smalls = b"".join(encode_frame(TEXT, b"s" * 90, mask_key=RFC_KEY) for _ in range(60))
    big = encode_frame(BINARY, b"B" * 50_000, mask_key=RFC_KEY)
    got = []
    for chunk in (rest, smalls[:3000], smalls[3000:], big):
        feed_via_buffer(reader, chunk)
        got.extend(drain(reader))
    assert [len(p[-1]) for p in got] == [100] + [90] * 60 + [50_000]
    assert kept_bytes == b"keep me"
    assert kept.readonly
    del kept


def test_kept_frames_and_views_across_many_reads() -> None:
    reader = FrameReader(is_client=True, read_buffer_init_size=2048)
    views = []
    for i in range(300):
        wire = encode_frame(BINARY, bytes([i % 256]) * (i * 7 % 700))
        feed_via_buffer(reader, wire[:-1])
        assert reader.next_frame() is None
        feed_via_buffer(reader, wire[-1:])
        frame = reader.next_frame()
        assert frame is not None
        assert frame.get_payload_as_bytes() == bytes([i % 256]) * (i * 7 % 700)
        views.append(frame.get_payload_as_memoryview())
    assert len(views) == 300


# --- hostile input -----------------------------------------------------------------


def consume_hostile(conn: Connection, chunks: list[bytes], mode: int, bound: int) -> None:
    """Feed chunks, touch every frame like a listener would; only WSProtocolError may escape."""
    try:
        for i, chunk in enumerate(chunks):
            if (mode >> (i % 8)) & 1:
                feed_connection(conn, chunk)
            else:
                conn.receive_data(chunk)
            while True:
                frame = conn.next_frame()
                if frame is None:
                    break
                str(frame)
                frame.get_payload_as_bytes()
                frame.get_payload_as_memoryview().release()
                assert frame.payload_size <= 1024
                if frame.msg_type is CLOSE:
                    frame.get_close_code()
                    frame.get_close_reason()
            assert conn.buffer_capacity <= bound, conn.buffer_capacity
    except WSProtocolError as exc:
        assert isinstance(exc.code, int)
        assert exc.code in (PE, WSCloseCode.MESSAGE_TOO_BIG, WSCloseCode.INVALID_TEXT)
        assert str(exc)


MAX_CHUNK = 600
HOSTILE_MAX_FRAME = 1024
# The largest incomplete frame is 14 + 1024 bytes, plus one chunk read behind it.
HOSTILE_BOUND = 2 * (2 * HOSTILE_MAX_FRAME + 14 + MAX_CHUNK)


@st.composite
def chunked(draw: Any, data: bytes) -> list[bytes]:
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=40))
    chunks = split_at(data, cuts)
    out = []
    for chunk in chunks:
        while len(chunk) > MAX_CHUNK:
            out.append(chunk[:MAX_CHUNK])
            chunk = chunk[MAX_CHUNK:]
        out.append(chunk)
    return out


# Two-byte frame starts that reach the deeper parser states: every length form, with
# and without the mask bit, valid and invalid opcodes and flags.
HEADER_STARTS = [
    bytes([first, second])
    for first in (0x00, 0x01, 0x02, 0x80, 0x81, 0x82, 0x88, 0x89, 0x8A, 0x09, 0xC1, 0x83, 0x8F)
    for second in (0x00, 0x01, 0x02, 0x7D, 0x7E, 0x7F, 0x80, 0x82, 0xFD, 0xFE, 0xFF)
]


def valid_prefix(reader_is_client: bool) -> bytes:
    """~10 KB of good traffic ahead of the hostile part, so the buffer has cycled."""
    key = None if reader_is_client else RFC_KEY
    return b"".join(encode_frame(BINARY, bytes(i * 37 % 330), mask_key=key) for i in range(60))


hostile_bytes = st.one_of(
    st.binary(max_size=3000),
    st.lists(st.one_of(st.sampled_from(HEADER_STARTS), st.binary(max_size=12)), max_size=80).map(
        b"".join
    ),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), raw=hostile_bytes, is_client=st.booleans(), mode=st.integers(0, 255))
def test_hostile_random_bytes(data: Any, raw: bytes, is_client: bool, mode: int) -> None:
    conn = open_connection(
        is_client=is_client,
        max_frame_size=HOSTILE_MAX_FRAME,
        read_buffer_init_size=2048,
        auto_pong=False,
    )
    if data.draw(st.booleans(), label="valid prefix"):
        raw = valid_prefix(is_client) + raw
    consume_hostile(conn, data.draw(chunked(raw)), mode, HOSTILE_BOUND)


@st.composite
def mutated_streams(draw: Any) -> tuple[bytes, bool]:
    is_client = draw(st.booleans())
    frames = []
    for _ in range(draw(st.integers(1, 12))):
        opcode = draw(st.sampled_from([CONT, TEXT, BINARY, PING, PONG, CLOSE]))
        if opcode is CLOSE:
            payload, fin = draw(close_payloads()), True
        elif opcode >= 8:
            payload, fin = draw(st.binary(max_size=125)), draw(st.integers(0, 9)) > 0
        else:
            size = draw(st.sampled_from([0, 1, 5, 125, 126, 127, 1000, 1024, 1025, 1100]))
            payload, fin = bytes([size & 0xFF]) * size, draw(st.booleans())
        key = None if is_client else draw(st.binary(min_size=4, max_size=4))
        frames.append(encode_frame(opcode, payload, fin, mask_key=key))
    wire = bytearray(b"".join(frames))
    for _ in range(draw(st.integers(0, 6))):
        action = draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(wire) - 1, 0)))
        if action == "insert" or not wire:
            wire[pos:pos] = draw(st.one_of(st.sampled_from(HEADER_STARTS), st.binary(max_size=10)))
        elif action == "delete":
            del wire[pos : pos + draw(st.integers(1, 10))]
        elif action == "flip":
            wire[pos] ^= 1 << draw(st.integers(0, 7))
        else:
            wire[pos] = draw(st.integers(0, 255))
    return bytes(wire), is_client


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), stream=mutated_streams(), mode=st.integers(0, 255))
def test_hostile_mutated_streams(data: Any, stream: tuple[bytes, bool], mode: int) -> None:
    wire, is_client = stream
    conn = open_connection(
        is_client=is_client,
        max_frame_size=HOSTILE_MAX_FRAME,
        read_buffer_init_size=2048,
        auto_pong=False,
    )
    if data.draw(st.booleans(), label="valid prefix"):
        wire = valid_prefix(is_client) + wire
    consume_hostile(conn, data.draw(chunked(wire)), mode, HOSTILE_BOUND)


def test_hostile_stream_of_max_size_frames_stays_bounded() -> None:
    """Frames just under the limit, read in awkward chunk sizes, never balloon the buffer."""
    rng = random.Random(7)
    wire = b"".join(
        encode_frame(BINARY, bytes(rng.randint(1000, 1024)), mask_key=RFC_KEY) for _ in range(300)
    )
    conn = open_connection(is_client=False, max_frame_size=1024, read_buffer_init_size=2048)
    chunks, pos = [], 0
    while pos < len(wire):
        size = rng.randint(1, MAX_CHUNK)
        chunks.append(wire[pos : pos + size])
        pos += size
    consume_hostile(conn, chunks, 0xAA, HOSTILE_BOUND)
    assert conn.buffered == 0


# --- MaskKeySource -------------------------------------------------------------------


def test_mask_keys_are_4_random_bytes() -> None:
    source = MaskKeySource()
    keys = [source.next_key() for _ in range(3000)]
    assert all(type(k) is bytes and len(k) == 4 for k in keys)
    assert len(set(keys)) > 2900  # 32-bit random keys: collisions are rare


def test_mask_keys_come_from_os_urandom_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    import picows._frames as frames_module

    calls: list[int] = []

    def fake_urandom(n: int) -> bytes:
        calls.append(n)
        return b"\xa5" * n

    monkeypatch.setattr(frames_module.os, "urandom", fake_urandom)
    source = MaskKeySource()
    batch = MaskKeySource._BATCH
    keys = [source.next_key() for _ in range(batch)]
    assert keys == [b"\xa5" * 4] * batch
    assert calls == [4 * batch]
    source.next_key()
    assert calls == [4 * batch] * 2
    for _ in range(batch - 1 + batch):
        source.next_key()
    assert len(calls) == 3
    source.next_key()
    assert len(calls) == 4


def test_mask_keys_round_trip() -> None:
    source = MaskKeySource()
    wire = b"".join(encode_frame(TEXT, b"msg%d" % i, mask_key=source.next_key()) for i in range(50))
    frames = parse_all(wire, is_client=False)
    assert [f[-1] for f in frames] == [b"msg%d" % i for i in range(50)]
