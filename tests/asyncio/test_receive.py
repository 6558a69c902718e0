"""The receive path, observed from outside: a raw peer writes frames (valid or not)
and the test checks what reached ``on_ws_frame`` and what came back on the wire.

``side`` is picows' role: "client" (raw server peer, frames unmasked) or "server"
(raw client peer, frames masked).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any, Callable

import pytest

import picows
from helpers import open_connection
from picows import WSCloseCode, WSCloseInfo, WSMsgType, WSProtocolError
from rawpeer import Harness, Pair, RawPeer, RecordingListener, frame_bytes

SIDES = ["client", "server"]
EXTENSION = ("Sec-WebSocket-Extensions", "x-test-ext")


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with Harness() as h:
        yield h


async def open_negotiated(harness: Harness, side: str, **kwargs: Any) -> Pair:
    """A connection whose 101 response carries Sec-WebSocket-Extensions."""
    if side == "client":
        return await harness.open(
            side, extra_headers=[EXTENSION], response_headers=[EXTENSION], **kwargs
        )
    return await harness.open(
        side, client_headers=[EXTENSION], response_headers=[EXTENSION], **kwargs
    )


# -- delivery -------------------------------------------------------------------------


@pytest.mark.parametrize("side", SIDES)
async def test_frames_reach_on_ws_frame(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    peer = pair.peer
    peer.send_frame(1, "h\u00e9llo".encode())
    peer.send_frame(2, b"\x00\xff\x10")
    peer.send_frame(2, b"")
    peer.send_frame(10, b"unsolicited pong")  # no ping outstanding: delivered
    received = [await pair.listener.next_frame() for _ in range(4)]
    assert [(f.msg_type, f.payload, f.fin) for f in received] == [
        (WSMsgType.TEXT, "h\u00e9llo".encode(), 1),
        (WSMsgType.BINARY, b"\x00\xff\x10", 1),
        (WSMsgType.BINARY, b"", 1),
        (WSMsgType.PONG, b"unsolicited pong", 1),
    ]
    for frame in received:
        assert isinstance(frame.msg_type, WSMsgType)
        assert (frame.rsv1, frame.rsv2, frame.rsv3) == (0, 0, 0)
        assert frame.payload_size == len(frame.payload)
        # fin/rsv are 0/1 ints, as upstream (uint8), not bools.
        assert type(frame.fin) is int and type(frame.rsv1) is int


class InspectingListener(RecordingListener):
    """Exercises the WSFrame accessors while the frame is valid."""

    def __init__(self) -> None:
        super().__init__()
        self.checks: list[dict[str, Any]] = []

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        view = frame.get_payload_as_memoryview()
        check: dict[str, Any] = {
            "readonly": view.readonly,
            "contiguous": view.c_contiguous,
            "len": view.nbytes,
            "view_bytes": bytes(view),
            "bytes": frame.get_payload_as_bytes(),
            "str": str(frame),
        }
        try:
            view[0:1] = b"X"
        except TypeError:
            check["write_refused"] = True
        if frame.msg_type == WSMsgType.TEXT:
            check["utf8"] = frame.get_payload_as_utf8_text()
            try:
                check["ascii"] = frame.get_payload_as_ascii_text()
            except UnicodeDecodeError:
                check["ascii"] = UnicodeDecodeError
        try:
            frame.get_close_code()
        except AssertionError:
            check["close_getter_refused"] = True
        self.checks.append(check)
        super().on_ws_frame(transport, frame)


@pytest.mark.parametrize("side", SIDES)
async def test_payload_memoryview_is_readonly_and_valid_in_callback(
    harness: Harness, side: str
) -> None:
    pair = await harness.open(side, InspectingListener)
    pair.peer.send_raw(
        pair.peer.build(1, "caf\u00e9".encode()) + pair.peer.build(2, b"binary payload")
    )
    await pair.listener.next_frame()
    await pair.listener.next_frame()
    text, binary = pair.listener.checks
    assert text["readonly"] and binary["readonly"]
    assert text["contiguous"] and binary["contiguous"]
    assert text.get("write_refused") and binary.get("write_refused")
    assert text["view_bytes"] == text["bytes"] == "caf\u00e9".encode()
    assert binary["view_bytes"] == binary["bytes"] == b"binary payload"
    assert binary["len"] == len(b"binary payload")
    assert text["utf8"] == "caf\u00e9"
    assert text["ascii"] is UnicodeDecodeError
    assert text.get("close_getter_refused") and binary.get("close_getter_refused")
    assert binary["str"].startswith("WSFrame(BINARY, fin=True, rsv1=False")
    assert "payload_sz=14" in binary["str"]


@pytest.mark.parametrize("side", SIDES)
async def test_last_in_buffer_and_tail_size(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    peer = pair.peer
    f1 = peer.build(1, b"first")
    f2 = peer.build(2, b"second" * 50)  # 16-bit length form
    f3 = peer.build(1, b"")
    f4 = peer.build(2, b"fourth, split across two writes")
    partial = f4[:5]
    peer.send_raw(f1 + f2 + f3 + partial)  # one write: one read on loopback
    got = [await pair.listener.next_frame() for _ in range(3)]
    assert [(f.payload_size, f.last_in_buffer, f.tail_size) for f in got] == [
        (5, 0, len(f2) + len(f3) + len(partial)),
        (300, 0, len(f3) + len(partial)),
        (0, 1, len(partial)),  # only an incomplete frame follows
    ]
    peer.send_raw(f4[5:])
    last = await pair.listener.next_frame()
    assert (last.payload, last.last_in_buffer, last.tail_size) == (
        b"fourth, split across two writes",
        1,
        0,
    )


@pytest.mark.parametrize("side", SIDES)
async def test_byte_by_byte_delivery(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    data = pair.peer.build(2, b"x" * 200) + pair.peer.build(1, b"tail")
    for i in range(len(data)):
        pair.peer.send_raw(data[i : i + 1])
        await pair.peer.writer.drain()
    first = await pair.listener.next_frame()
    second = await pair.listener.next_frame()
    assert (first.msg_type, first.payload) == (WSMsgType.BINARY, b"x" * 200)
    assert (second.msg_type, second.payload) == (WSMsgType.TEXT, b"tail")


@pytest.mark.parametrize("side", SIDES)
async def test_5mib_message_with_small_read_buffer(harness: Harness, side: str) -> None:
    pair = await harness.open(side, read_buffer_init_size=2048)
    payload = os.urandom(5 * 1024 * 1024)
    pair.peer.send_frame(2, payload)
    pair.peer.send_frame(1, b"after")
    big = await pair.listener.next_frame()
    assert big.msg_type == WSMsgType.BINARY
    assert big.payload_size == len(payload)
    assert big.payload == payload
    assert (await pair.listener.next_frame()).payload == b"after"


@pytest.mark.parametrize("side", SIDES)
async def test_fragmented_message(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    peer = pair.peer
    peer.send_frame(1, b"frag-1 ", fin=False)
    peer.send_frame(9, b"interleaved")  # control frames may interleave (5.4)
    peer.send_frame(0, b"frag-2 ", fin=False)
    peer.send_frame(0, b"frag-3")
    got = [await pair.listener.next_frame() for _ in range(3)]
    assert [(f.msg_type, f.fin, f.payload) for f in got] == [
        (WSMsgType.TEXT, 0, b"frag-1 "),
        (WSMsgType.CONTINUATION, 0, b"frag-2 "),
        (WSMsgType.CONTINUATION, 1, b"frag-3"),
    ]
    pong = await peer.read_frame()
    assert (pong.opcode, pong.payload) == (10, b"interleaved")


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("negotiated", [True, False], ids=["negotiated", "not-negotiated"])
async def test_rsv_bits_of_data_frames_are_delivered(
    harness: Harness, side: str, negotiated: bool
) -> None:
    """As upstream: extensions are the application's, so are the RSV bits of data frames
    (it negotiates in its own headers; the examples' conforming listener fails 1002)."""
    pair = await (open_negotiated(harness, side) if negotiated else harness.open(side))
    pair.peer.send_frame(2, b"r1", rsv1=True)
    pair.peer.send_frame(1, b"r2", rsv2=True, fin=False)
    pair.peer.send_frame(0, b"r123", rsv1=True, rsv2=True, rsv3=True)
    got = [await pair.listener.next_frame() for _ in range(3)]
    assert [(f.payload, f.fin, f.rsv1, f.rsv2, f.rsv3) for f in got] == [
        (b"r1", 1, 1, 0, 0),
        (b"r2", 0, 0, 1, 0),
        (b"r123", 1, 1, 1, 1),
    ]


# -- CLOSE from the peer --------------------------------------------------------------------


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    ("payload", "code", "reason"),
    [
        (b"", WSCloseCode.NO_INFO, None),
        (b"\x03\xe8", WSCloseCode.OK, None),
        (b"\x03\xe9going", WSCloseCode.GOING_AWAY, "going"),
        (struct.pack("!H", 4321) + "\u00fcber".encode(), 4321, "\u00fcber"),
        (struct.pack("!H", 3000), 3000, None),
    ],
)
async def test_received_close_is_delivered_without_automatic_reply(
    harness: Harness, side: str, payload: bytes, code: int, reason: Any
) -> None:
    pair = await harness.open(side)
    pair.peer.send_frame(8, payload)
    frame = await pair.listener.next_frame()
    assert frame.msg_type == WSMsgType.CLOSE
    assert (frame.close_code, frame.close_reason) == (code, reason)
    # close_handshake.recv was already set when on_ws_frame ran.
    assert frame.close_handshake_recv == WSCloseInfo(WSCloseCode(code), reason or "")
    t = pair.transport
    assert not t.is_close_frame_sent
    # No automatic CLOSE reply: the first thing the peer gets is what we send now.
    t.send(WSMsgType.TEXT, "still sending")
    first = await pair.peer.read_frame()
    assert (first.opcode, first.payload) == (1, b"still sending")
    t.send_close(WSCloseCode.OK, "echo")
    echo = await pair.peer.expect_close()
    assert (echo.close_code, echo.close_reason) == (1000, "echo")
    assert not t.is_disconnected  # picows does not disconnect by itself either
    handshake = t.close_handshake
    assert handshake is not None and handshake.recv_then_sent


@pytest.mark.parametrize("side", SIDES)
async def test_frames_after_received_close_are_ignored(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    peer = pair.peer
    # In the same write as the CLOSE, then in later writes.
    peer.send_raw(peer.build(8, b"\x03\xe8") + peer.build(1, b"same write"))
    first = await pair.listener.next_frame()
    assert first.msg_type == WSMsgType.CLOSE
    peer.send_frame(1, b"later")
    peer.send_frame(8, b"\x03\xe9")  # a second CLOSE is ignored too
    peer.send_frame(3, b"even a reserved opcode")
    peer.close()
    await asyncio.wait_for(pair.transport.wait_disconnected(), 5)  # no error either
    assert [f.msg_type for f in pair.listener.frames] == [WSMsgType.CLOSE]
    assert not pair.transport.is_close_frame_sent


# -- protocol violations -----------------------------------------------------------------


def _header(peer: RawPeer, first: int, length_bytes: bytes, payload: bytes) -> bytes:
    """A frame with a hand-written length field, masked when the peer is a client."""
    if not peer.is_client:
        return bytes([first]) + length_bytes + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([first, length_bytes[0] | 0x80]) + length_bytes[1:] + key + masked


def _close(code: int, reason: bytes = b"") -> Callable[[RawPeer], bytes]:
    return lambda peer: peer.build(8, struct.pack("!H", code) + reason)


# (id, frame builder, expected CLOSE code, needs a negotiated extension)
VIOLATIONS: list[tuple[str, Callable[[RawPeer], bytes], int, bool]] = [
    ("reserved-opcode-3", lambda p: p.build(0x3, b"x"), 1002, False),
    ("reserved-opcode-7", lambda p: p.build(0x7), 1002, False),
    ("reserved-opcode-B", lambda p: p.build(0xB, b"x"), 1002, False),
    ("reserved-opcode-F", lambda p: p.build(0xF, b"x"), 1002, False),
    ("wrong-masking", lambda p: p.build(2, b"data", masked=not p.is_client), 1002, False),
    ("ping-over-125", lambda p: p.build(9, b"p" * 126), 1002, False),
    ("pong-over-125", lambda p: p.build(10, b"p" * 200), 1002, False),
    ("close-over-125", lambda p: p.build(8, b"\x03\xe8" + b"r" * 124), 1002, False),
    ("fragmented-ping", lambda p: p.build(9, b"p", fin=False), 1002, False),
    ("fragmented-close", lambda p: p.build(8, b"\x03\xe8", fin=False), 1002, False),
    ("close-1-byte", lambda p: p.build(8, b"\x03"), 1002, False),
    ("close-code-0", _close(0), 1002, False),
    ("close-code-999", _close(999), 1002, False),
    ("close-code-1004", _close(1004), 1002, False),
    ("close-code-1005", _close(1005), 1002, False),
    ("close-code-1006", _close(1006), 1002, False),
    ("close-code-1015", _close(1015), 1002, False),
    ("close-code-2999", _close(2999), 1002, False),
    ("close-code-5000", _close(5000), 1002, False),
    ("close-code-65535", _close(65535), 1002, False),
    ("close-reason-bad-utf8", _close(1000, b"ok\xff\xfe"), 1007, False),
    ("close-reason-truncated-utf8", _close(1000, "\u20ac".encode()[:2]), 1007, False),
    ("rsv1-on-ping-without-extension", lambda p: p.build(9, b"x", rsv1=True), 1002, False),
    ("rsv1-on-ping", lambda p: p.build(9, b"x", rsv1=True), 1002, True),
    ("rsv2-on-pong", lambda p: p.build(10, b"x", rsv2=True), 1002, True),
    ("rsv3-on-close", lambda p: p.build(8, b"\x03\xe8", rsv3=True), 1002, True),
    ("16-bit-length-under-126", lambda p: _header(p, 0x82, b"\x7e\x00\x05", b"12345"), 1002, False),
    (
        "64-bit-length-under-65536",
        lambda p: _header(p, 0x82, b"\x7f" + struct.pack("!Q", 200), b"y" * 200),
        1002,
        False,
    ),
    (
        "64-bit-length-msb-set",
        lambda p: _header(p, 0x82, b"\x7f" + struct.pack("!Q", 1 << 63), b""),
        1002,
        False,
    ),
]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    ("build", "code", "negotiated"),
    [v[1:] for v in VIOLATIONS],
    ids=[v[0] for v in VIOLATIONS],
)
async def test_protocol_violation_fails_connection(
    harness: Harness,
    side: str,
    build: Callable[[RawPeer], bytes],
    code: int,
    negotiated: bool,
) -> None:
    if negotiated:
        pair = await open_negotiated(harness, side)
    else:
        pair = await harness.open(side)
    pair.peer.send_raw(build(pair.peer))
    close = await pair.peer.expect_close()
    assert close.close_code == code
    await pair.peer.expect_eof()  # then picows drops TCP
    assert pair.listener.frames == []  # the bad frame never reaches the listener
    handshake = pair.transport.close_handshake
    assert handshake is not None and handshake.sent is not None
    assert handshake.sent.code == code
    if side == "client":
        with pytest.raises(WSProtocolError) as info:
            await asyncio.wait_for(pair.transport.wait_disconnected(), 5)
        assert info.value.code == code
    else:
        await asyncio.wait_for(pair.transport.wait_disconnected(), 5)


@pytest.mark.parametrize("side", SIDES)
async def test_rsv_on_ping_fails_even_with_auto_pong(harness: Harness, side: str) -> None:
    """Difference 6: auto-pong does not answer a PING with RSV bits."""
    pair = await open_negotiated(harness, side)
    pair.peer.send_frame(9, b"ping", rsv1=True)
    frames = await pair.peer.read_until_eof()
    assert [(f.opcode, f.close_code) for f in frames] == [(8, 1002)]


@pytest.mark.parametrize("side", SIDES)
async def test_max_frame_size_is_judged_on_the_header(harness: Harness, side: str) -> None:
    pair = await harness.open(side, max_frame_size=1024)
    peer = pair.peer
    peer.send_frame(2, b"a" * 1024)  # exactly at the limit: fine
    assert (await pair.listener.next_frame()).payload_size == 1024
    # Only the header of a 1 MiB frame: no payload byte is ever sent.
    key = os.urandom(4) if peer.is_client else None
    header = picows._frames.encode_frame_header(2, 1 << 20, mask_key=key)
    peer.send_raw(header)
    close = await peer.expect_close()
    assert close.close_code == WSCloseCode.MESSAGE_TOO_BIG
    assert "1048576 > 1024" in close.close_reason
    await peer.expect_eof()
    if side == "client":
        with pytest.raises(WSProtocolError) as info:
            await asyncio.wait_for(pair.transport.wait_disconnected(), 5)
        assert info.value.code == WSCloseCode.MESSAGE_TOO_BIG


@pytest.mark.parametrize("side", SIDES)
async def test_max_frame_size_does_not_limit_messages(harness: Harness, side: str) -> None:
    """The limit is per frame: a message of many small frames is fine."""
    pair = await harness.open(side, max_frame_size=100)
    for i in range(5):
        pair.peer.send_frame(0 if i else 2, b"z" * 100, fin=i == 4)
    got = [await pair.listener.next_frame() for _ in range(5)]
    assert sum(f.payload_size for f in got) == 500
    assert got[-1].fin == 1


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    "bad",
    [
        lambda p: p.build(0x3, b"reserved"),
        lambda p: p.build(9, b"p", fin=False),
        lambda p: p.build(8, b"\x03\xed"),  # 1005
        lambda p: p.build(2, b"x", masked=not p.is_client),
    ],
    ids=["reserved-opcode", "fragmented-ping", "close-1005", "wrong-masking"],
)
async def test_frames_before_a_violation_are_delivered(
    harness: Harness, side: str, bad: Callable[[RawPeer], bytes]
) -> None:
    """Difference 5: upstream drops the frame just before the bad one."""
    pair = await harness.open(side)
    peer = pair.peer
    peer.send_raw(
        peer.build(1, b"one")
        + peer.build(2, b"two")
        + peer.build(9, b"auto-ponged")
        + peer.build(2, b"three", fin=False)
        + bad(peer)
        + peer.build(1, b"after the violation")
    )
    frames = await peer.read_until_eof()
    assert [f.opcode for f in frames] == [10, 8]
    assert frames[0].payload == b"auto-ponged"
    assert frames[1].close_code == 1002
    assert [f.payload for f in pair.listener.frames] == [b"one", b"two", b"three"]
    assert pair.listener.frames[-1].fin == 0


@pytest.mark.parametrize("side", SIDES)
async def test_tcp_nodelay_is_set(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    sock = pair.transport.underlying_transport.get_extra_info("socket")
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest.mark.parametrize("side", SIDES)
async def test_frames_in_the_same_write_as_the_upgrade(harness: Harness, side: str) -> None:
    masked = side == "server"  # the raw peer is the client: it masks
    frames = frame_bytes(1, b"early one", masked=masked) + frame_bytes(
        9, b"early ping", masked=masked
    )
    frames += frame_bytes(2, b"early two", masked=masked)
    if side == "client":
        pair = await harness.open(side, after_101=frames)
    else:
        pair = await harness.open(side, after_request=frames)
    got = [await pair.listener.next_frame() for _ in range(2)]
    assert [(f.msg_type, f.payload) for f in got] == [
        (WSMsgType.TEXT, b"early one"),
        (WSMsgType.BINARY, b"early two"),
    ]
    pong = await pair.peer.read_frame()
    assert (pong.opcode, pong.payload) == (10, b"early ping")


@pytest.mark.parametrize("side", SIDES)
async def test_violation_in_the_same_write_as_the_upgrade(harness: Harness, side: str) -> None:
    masked = side == "server"
    frames = frame_bytes(1, b"valid", masked=masked) + frame_bytes(0x3, b"", masked=masked)
    if side == "client":
        pair = await harness.open(side, after_101=frames)
    else:
        pair = await harness.open(side, after_request=frames)
    close = await pair.peer.expect_close()
    assert close.close_code == WSCloseCode.PROTOCOL_ERROR
    await pair.peer.expect_eof()
    assert [f.payload for f in pair.listener.frames] == [b"valid"]
    if side == "client":
        with pytest.raises(WSProtocolError):
            await asyncio.wait_for(pair.transport.wait_disconnected(), 5)


# -- the glue's inline loop against the readable one -------------------------------------


def random_stream(rng: random.Random, peer: RawPeer) -> bytes:
    """Data frames of every length class, flags and fragments, PINGs and PONGs, maybe
    a CLOSE, maybe garbage: as the peer of picows sends them."""
    parts = []
    for _ in range(rng.randint(1, 30)):
        kind = rng.random()
        if kind < 0.7:
            size = rng.choice([0, 1, 125, 126, 300, 65535, 65536, 70000])
            opcode = rng.choice([0, 1, 2])
            parts.append(
                peer.build(
                    opcode,
                    os.urandom(size),
                    fin=rng.random() < 0.8,
                    rsv1=rng.random() < 0.1,
                    rsv3=rng.random() < 0.05,
                )
            )
        elif kind < 0.85:
            parts.append(peer.build(rng.choice([9, 10]), os.urandom(rng.randint(0, 125))))
        elif kind < 0.92:
            parts.append(peer.build(8, (1000).to_bytes(2, "big") + b"bye"))
        else:
            parts.append(bytes([rng.choice([0x83, 0x89, 0x8A]), rng.randint(0, 255)]))
    return b"".join(parts)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("seed", range(6))
async def test_the_inline_loop_delivers_what_the_connection_would(
    harness: Harness, side: str, seed: int
) -> None:
    """WSProtocol._frame_dispatcher runs Connection.next_frame's loop inline: over a real
    socket, the listener sees exactly the frames Connection.next_frame returns for the
    same bytes, and the connection fails the same way."""
    pair = await harness.open(side)
    wire = random_stream(random.Random(seed), pair.peer)
    reference = open_connection(is_client=side == "client")
    reference.receive_data(wire)
    expected = []
    failure = None
    try:
        while (frame := reference.next_frame()) is not None:
            expected.append(
                (int(frame.msg_type), frame.fin, frame.rsv1, frame.get_payload_as_bytes())
            )
    except WSProtocolError as exc:
        failure = exc.code
    pair.peer.send_raw(wire)
    got = [await pair.listener.next_frame() for _ in expected]
    assert [(int(f.msg_type), f.fin, f.rsv1, f.payload) for f in got] == expected
    if failure is not None:
        assert (await pair.peer.expect_close()).close_code == failure
