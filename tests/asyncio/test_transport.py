"""WSTransport, observed from outside: what the peer receives, what callbacks see,
which exception is raised.

Each test talks to a raw peer (``rawpeer``) that parses the bytes picows puts on
the wire.  ``side`` is picows' role: "client" (ws_connect against a raw server) or
"server" (ws_create_server with a raw client).
"""

from __future__ import annotations

import array
import asyncio
import logging
import socket
import struct
import threading
import weakref
from collections.abc import AsyncIterator
from typing import Any, Callable, Optional

import pytest

import picows
from helpers import CollectingListener, EchoListener, serve_picows
from picows import WSCloseCode, WSCloseInfo, WSMsgType, WSProtocolError
from rawpeer import Harness, RawPeer, RecordingListener, unmask

SIDES = ["client", "server"]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with Harness() as h:
        yield h


async def assert_receives_only(peer: RawPeer, transport: picows.WSTransport) -> list[Any]:
    """Close the picows side gracefully and return every frame the peer got first.

    A graceful disconnect flushes what was queued and then closes TCP, so the
    returned list is exactly what picows wrote: nothing can still be in flight.
    """
    transport.disconnect()
    return await peer.read_until_eof()


# -- send(): payload types, flags, opcodes -------------------------------------------

PAYLOADS: list[tuple[str, Any, bytes]] = [
    ("bytes", b"hello bytes", b"hello bytes"),
    ("bytearray", bytearray(b"hello bytearray"), b"hello bytearray"),
    ("memoryview", memoryview(b"xxhello viewxx")[2:-2], b"hello view"),
    ("memoryview-strided", memoryview(b"a-b-c-d-e-f")[::2], b"abcdef"),
    ("memoryview-2d", memoryview(bytes(range(12))).cast("B", (3, 4)), bytes(range(12))),
    ("str-utf8", "h\u00e9llo \u20ac \U0001f600", "h\u00e9llo \u20ac \U0001f600".encode()),
    ("array-int32", array.array("i", [1, -2, 3]), array.array("i", [1, -2, 3]).tobytes()),
    ("none", None, b""),
    ("empty", b"", b""),
    ("medium", b"m" * 300, b"m" * 300),
    ("large", bytes(range(256)) * 300, bytes(range(256)) * 300),
]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    ("message", "expected"), [p[1:] for p in PAYLOADS], ids=[p[0] for p in PAYLOADS]
)
async def test_send_payload_types(
    harness: Harness, side: str, message: Any, expected: bytes
) -> None:
    pair = await harness.open(side)
    pair.transport.send(WSMsgType.BINARY, message)
    frame = await pair.peer.read_frame()
    assert (frame.opcode, frame.fin, frame.payload) == (2, 1, expected)
    # 5.1: the client masks every frame, the server none.
    assert frame.masked == (side == "client")


@pytest.mark.parametrize("side", SIDES)
async def test_send_text_str_is_utf8(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    pair.transport.send(WSMsgType.TEXT, "gr\u00fc\u00dfe")
    frame = await pair.peer.read_frame()
    assert (frame.opcode, frame.payload) == (1, "gr\u00fc\u00dfe".encode())


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    ("fin", "rsv1", "rsv2", "rsv3"),
    [
        (True, False, False, False),
        (False, False, False, False),
        (True, True, False, False),
        (True, False, True, False),
        (False, False, False, True),
        (False, True, True, True),
    ],
)
async def test_send_flags_on_the_wire(
    harness: Harness, side: str, fin: bool, rsv1: bool, rsv2: bool, rsv3: bool
) -> None:
    pair = await harness.open(side)
    pair.transport.send(WSMsgType.BINARY, b"flags", fin=fin, rsv1=rsv1, rsv2=rsv2, rsv3=rsv3)
    frame = await pair.peer.read_frame()
    assert (frame.fin, frame.rsv1, frame.rsv2, frame.rsv3) == (fin, rsv1, rsv2, rsv3)
    assert (frame.opcode, frame.payload) == (2, b"flags")


@pytest.mark.parametrize("side", SIDES)
async def test_send_fragmented_message(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    pair.transport.send(WSMsgType.TEXT, "one ", fin=False)
    pair.transport.send(WSMsgType.CONTINUATION, "two ", fin=False)
    pair.transport.send(WSMsgType.CONTINUATION, "three")
    frames = [await pair.peer.read_frame() for _ in range(3)]
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [
        (1, 0, b"one "),
        (0, 0, b"two "),
        (0, 1, b"three"),
    ]


async def test_client_frames_masked_with_varying_keys(harness: Harness) -> None:
    pair = await harness.open("client")
    payload = b"same payload every time"
    for _ in range(32):
        pair.transport.send(WSMsgType.BINARY, payload)
    pair.transport.send_ping(b"p")
    pair.transport.send_pong(b"q")
    frames = [await pair.peer.read_frame() for _ in range(34)]
    assert all(f.masked for f in frames)
    assert [f.payload for f in frames[:32]] == [payload] * 32
    keys = {f.mask_key for f in frames}
    # Fresh keys per frame (10.3); 34 random 32-bit keys collide essentially never.
    assert len(keys) >= 30
    # The bytes on the wire really are masked, not the plain payload.
    assert {f.header[-4:] for f in frames[:32]} == {f.mask_key for f in frames[:32]}


async def test_server_frames_unmasked(harness: Harness) -> None:
    pair = await harness.open("server")
    pair.transport.send(WSMsgType.TEXT, "plain")
    pair.transport.send_ping(b"p")
    pair.transport.send_close(WSCloseCode.OK)
    frames = [await pair.peer.read_frame() for _ in range(3)]
    assert [f.mask_key for f in frames] == [None, None, None]
    assert [f.header[1] & 0x80 for f in frames] == [0, 0, 0]


@pytest.mark.parametrize("side", SIDES)
async def test_send_raw_int_opcode(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    pair.transport.send(0x4, b"reserved")  # picows lets it through; the peer decides
    pair.transport.send(2, b"binary as int")
    first = await pair.peer.read_frame()
    second = await pair.peer.read_frame()
    assert (first.opcode, first.payload) == (0x4, b"reserved")
    assert (second.opcode, second.payload) == (2, b"binary as int")


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("close_type", [WSMsgType.CLOSE, 8], ids=["enum", "int"])
async def test_send_close_type_is_refused(harness: Harness, side: str, close_type: int) -> None:
    """Difference 9: send(CLOSE) cannot bypass the closing-handshake state."""
    pair = await harness.open(side)
    with pytest.raises(ValueError, match="send_close"):
        pair.transport.send(close_type, b"\x03\xe8")
    assert not pair.transport.is_close_frame_sent
    assert pair.transport.close_handshake is None
    # Nothing went out, and the connection is still usable.
    pair.transport.send(WSMsgType.TEXT, "after")
    frame = await pair.peer.read_frame()
    assert (frame.opcode, frame.payload) == (1, b"after")


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    "bad", [123, 1.5, object(), [1, 2, 3], {"a": 1}], ids=lambda v: type(v).__name__
)
async def test_send_wrong_message_type(harness: Harness, side: str, bad: Any) -> None:
    pair = await harness.open(side)
    with pytest.raises(TypeError):
        pair.transport.send(WSMsgType.BINARY, bad)
    with pytest.raises(TypeError):
        pair.transport.send_ping(bad)
    with pytest.raises(TypeError):
        pair.transport.send_pong(bad)
    pair.transport.send(WSMsgType.BINARY, b"ok")
    assert (await pair.peer.read_frame()).payload == b"ok"


@pytest.mark.parametrize("side", SIDES)
async def test_send_ping_and_pong_payloads(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    t = pair.transport
    t.send_ping(b"ping payload")
    t.send_ping()
    t.send_ping("p\u00efng")
    t.send_pong(b"pong payload")
    t.send_pong()
    t.send_pong(bytearray(b"ba"))
    t.send_ping(b"x" * 125)
    frames = [await pair.peer.read_frame() for _ in range(7)]
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [
        (9, 1, b"ping payload"),
        (9, 1, b""),
        (9, 1, "p\u00efng".encode()),
        (10, 1, b"pong payload"),
        (10, 1, b""),
        (10, 1, b"ba"),
        (9, 1, b"x" * 125),
    ]


# -- send_close() ---------------------------------------------------------------------


@pytest.mark.parametrize("side", SIDES)
async def test_send_close_default_sends_empty_payload(harness: Harness, side: str) -> None:
    """Difference 4: NO_INFO means "no status code", never the code 0 on the wire."""
    pair = await harness.open(side)
    t = pair.transport
    assert not t.is_close_frame_sent
    assert t.close_handshake is None
    t.send_close()
    frame = await pair.peer.expect_close()
    assert frame.payload == b""
    assert frame.fin == 1
    assert t.is_close_frame_sent
    assert t.close_handshake is not None
    assert t.close_handshake.sent == WSCloseInfo(WSCloseCode.NO_INFO, "")
    assert t.close_handshake.recv is None
    assert not t.close_handshake.recv_then_sent
    # send_close does not disconnect.
    assert not t.is_disconnected
    assert not pair.listener.disconnected.is_set()


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    ("code", "message", "wire_reason", "reason"),
    [
        (WSCloseCode.OK, None, b"", ""),
        (WSCloseCode.GOING_AWAY, b"bye", b"bye", "bye"),
        (WSCloseCode.INTERNAL_ERROR, "\u00e9chec", "\u00e9chec".encode(), "\u00e9chec"),
        (4000, b"private", b"private", "private"),
        (3001, bytearray(b"lib"), b"lib", "lib"),
    ],
)
async def test_send_close_code_and_reason(
    harness: Harness, side: str, code: int, message: Any, wire_reason: bytes, reason: str
) -> None:
    pair = await harness.open(side)
    pair.transport.send_close(code, message)
    frame = await pair.peer.expect_close()
    assert frame.payload == struct.pack("!H", code) + wire_reason
    handshake = pair.transport.close_handshake
    assert handshake is not None and handshake.sent is not None
    assert handshake.sent.code == code
    assert handshake.sent.reason == reason
    assert pair.transport.is_close_frame_sent


@pytest.mark.parametrize("side", SIDES)
async def test_every_send_is_a_noop_after_close(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    t = pair.transport
    t.send_close(WSCloseCode.OK, b"first")
    t.send(WSMsgType.TEXT, "late")
    t.send(WSMsgType.BINARY, b"late", fin=False)
    t.send_ping(b"late")
    t.send_pong(b"late")
    t.send_close(WSCloseCode.GOING_AWAY, b"second")
    buffer = bytearray(14) + b"late"
    t.send_reuse_external_bytearray(WSMsgType.BINARY, buffer, 14)
    assert buffer == bytearray(14) + b"late"  # not even the header was written
    assert t.close_handshake is not None
    assert t.close_handshake.sent == WSCloseInfo(WSCloseCode.OK, "first")
    frames = await assert_receives_only(pair.peer, t)
    assert [(f.opcode, f.payload) for f in frames] == [(8, b"\x03\xe8first")]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("queued", [0, 1 << 20], ids=["idle", "queued"])
async def test_sends_after_disconnect_are_noops(harness: Harness, side: str, queued: int) -> None:
    pair = await harness.open(side)
    t = pair.transport
    big = b"q" * queued
    if big:
        # A small kernel buffer, so that asyncio still holds data when disconnect()
        # is called: the transport is then closing but not closed yet.
        sock = t.underlying_transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        t.send(WSMsgType.BINARY, big)
        assert t.underlying_transport.get_write_buffer_size() > 0
    t.send(WSMsgType.TEXT, "before")
    t.disconnect()
    # Right after disconnect(), before asyncio reported connection_lost.
    t.send(WSMsgType.TEXT, "between")
    t.send_ping(b"between")
    frames = await pair.peer.read_until_eof()
    await asyncio.wait_for(t.wait_disconnected(), 5)
    assert t.is_disconnected
    # After connection_lost: still silent, no exception.
    t.send(WSMsgType.TEXT, "after")
    t.send_ping(b"after")
    t.send_pong(b"after")
    t.send_close(WSCloseCode.OK)
    t.send_reuse_external_bytearray(WSMsgType.BINARY, bytearray(20), 14)
    assert not t.is_close_frame_sent
    expected = [(2, big)] if big else []
    assert [(f.opcode, f.payload) for f in frames] == [*expected, (1, b"before")]


# -- big frames: built in a send buffer the transport reuses --------------------------


def _big_payloads() -> list[Any]:
    """Frames of 64 KiB and more with distinct contents, shrinking and growing, in
    every payload type, so that a reused buffer is also written partly."""
    sizes = [65536, 300_000, 70_000, 65_536 + 7, 1 << 20, 200_000]
    makers: list[Callable[[bytes], Any]] = [bytes, bytearray, memoryview]
    return [
        makers[i % 3](bytes((i * 37 + j) % 251 for j in range(251)) * (size // 251 + 1))[:size]
        for i, size in enumerate(sizes)
    ]


@pytest.mark.parametrize("side", SIDES)
async def test_big_frames_back_to_back_arrive_intact(harness: Harness, side: str) -> None:
    # A small kernel buffer: asyncio (or uvloop) still holds most of each frame when
    # the next send() comes, so those sends must not write into a buffer it holds.
    pair = await harness.open(side)
    t = pair.transport
    t.underlying_transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDBUF, 8192
    )
    payloads = _big_payloads()
    for payload in payloads:
        t.send(WSMsgType.BINARY, payload)
    assert t.underlying_transport.get_write_buffer_size() > 0
    frames = await assert_receives_only(pair.peer, t)
    assert [f.payload for f in frames] == [bytes(p) for p in payloads]
    assert all(f.masked == (side == "client") for f in frames)


@pytest.mark.parametrize("side", SIDES)
async def test_big_frames_one_at_a_time_arrive_intact(harness: Harness, side: str) -> None:
    # Each frame is read before the next is sent: the transport is drained every time,
    # so each send reuses the buffer of the previous one, bigger or smaller.
    pair = await harness.open(side)
    for payload in _big_payloads():
        pair.transport.send(WSMsgType.BINARY, payload)
        frame = await pair.peer.read_frame()
        assert frame.payload == bytes(payload)
    pair.transport.send(WSMsgType.TEXT, "small after big")
    assert (await pair.peer.read_frame()).payload == b"small after big"


async def test_big_frames_over_tls_in_both_directions(net_mode: Any) -> None:
    # A picows echo server and a picows client, over TCP and TLS: TLS transports keep
    # what they have not encrypted yet, and the echo sends views of the read buffer.

    payloads = _big_payloads()
    async with serve_picows(lambda request: EchoListener(), net_mode) as (_, url):
        transport, listener = await picows.ws_connect(
            CollectingListener, url, **net_mode.client_kwargs
        )
        try:
            for payload in payloads:  # all in flight at once
                transport.send(WSMsgType.BINARY, payload)
            for payload in payloads:
                assert await listener.next(timeout=10) == (WSMsgType.BINARY, bytes(payload), 1)
            for payload in payloads:  # and one at a time
                transport.send(WSMsgType.BINARY, payload)
                assert await listener.next(timeout=10) == (WSMsgType.BINARY, bytes(payload), 1)
        finally:
            transport.disconnect()
            await asyncio.wait_for(transport.wait_disconnected(), 5)


# -- send_reuse_external_bytearray() ---------------------------------------------------


@pytest.mark.parametrize("size", [0, 5, 125, 126, 300, 65535, 65536, 70000])
@pytest.mark.parametrize("msg_offset", [14, 20])
async def test_reuse_external_bytearray_server(
    harness: Harness, size: int, msg_offset: int
) -> None:
    pair = await harness.open("server")
    payload = bytes(i % 251 for i in range(size))
    prefix = bytes(range(100, 100 + msg_offset))
    buffer = bytearray(prefix + payload)
    pair.transport.send_reuse_external_bytearray(WSMsgType.BINARY, buffer, msg_offset)
    frame = await pair.peer.read_frame()
    assert (frame.opcode, frame.fin, frame.payload) == (2, 1, payload)
    # The header sits right in front of the message; the server does not mask.
    header = frame.header
    assert bytes(buffer[msg_offset - len(header) : msg_offset]) == header
    assert bytes(buffer[: msg_offset - len(header)]) == prefix[: msg_offset - len(header)]
    assert bytes(buffer[msg_offset:]) == payload


@pytest.mark.parametrize("size", [1, 126, 70000])
async def test_reuse_external_bytearray_client_masks_in_place(harness: Harness, size: int) -> None:
    pair = await harness.open("client")
    payload = bytes(i % 253 for i in range(size))
    buffer = bytearray(b"\xaa" * 16) + payload
    pair.transport.send_reuse_external_bytearray(WSMsgType.TEXT, buffer, 16, fin=False, rsv2=True)
    frame = await pair.peer.read_frame()
    assert (frame.opcode, frame.fin, frame.rsv2, frame.payload) == (1, 0, 1, payload)
    assert frame.mask_key is not None
    header = frame.header
    assert bytes(buffer[16 - len(header) : 16]) == header
    assert bytes(buffer[12:16]) == frame.mask_key
    # The documented no-copy contract: the user's buffer now holds the masked payload.
    assert bytes(buffer[16:]) == unmask(payload, frame.mask_key)
    assert bytes(buffer[:2]) == b"\xaa\xaa"


@pytest.mark.parametrize("side", SIDES)
async def test_reuse_external_bytearray_flags_and_ping(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    pair.transport.send_reuse_external_bytearray(WSMsgType.PING, bytearray(14) + b"pp", 14)
    pair.transport.send_reuse_external_bytearray(
        WSMsgType.BINARY, bytearray(14) + b"zz", 14, fin=False, rsv1=True, rsv3=True
    )
    ping = await pair.peer.read_frame()
    data = await pair.peer.read_frame()
    assert (ping.opcode, ping.payload) == (9, b"pp")
    assert (data.opcode, data.fin, data.rsv1, data.rsv2, data.rsv3) == (2, 0, 1, 0, 1)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    ("msg_type", "buffer", "msg_offset"),
    [
        (WSMsgType.BINARY, bytearray(13) + b"x", 13),
        (WSMsgType.BINARY, bytearray(30), 0),
        (WSMsgType.BINARY, bytearray(20), 21),
        (WSMsgType.BINARY, bytearray(14), 100),
        (WSMsgType.BINARY, None, 14),
        (WSMsgType.CLOSE, bytearray(14) + b"\x03\xe8", 14),
        (8, bytearray(14) + b"\x03\xe8", 14),
    ],
    ids=[
        "offset-13",
        "offset-0",
        "offset-past-end",
        "offset-far-past-end",
        "none",
        "close",
        "close-int",
    ],
)
async def test_reuse_external_bytearray_value_errors(
    harness: Harness, side: str, msg_type: int, buffer: Optional[bytearray], msg_offset: int
) -> None:
    pair = await harness.open(side)
    before = None if buffer is None else bytes(buffer)
    with pytest.raises(ValueError):
        pair.transport.send_reuse_external_bytearray(msg_type, buffer, msg_offset)
    if buffer is not None:
        assert bytes(buffer) == before
    assert not pair.transport.is_close_frame_sent
    frames = await assert_receives_only(pair.peer, pair.transport)
    assert frames == []


async def test_reuse_external_bytearray_offset_equal_to_len_sends_empty(harness: Harness) -> None:
    pair = await harness.open("server")
    pair.transport.send_reuse_external_bytearray(WSMsgType.BINARY, bytearray(14), 14)
    frame = await pair.peer.read_frame()
    assert (frame.opcode, frame.payload) == (2, b"")


# -- disconnect() ------------------------------------------------------------------------


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("graceful", [True, False])
async def test_disconnect_is_idempotent_and_sends_no_close(
    harness: Harness, side: str, graceful: bool
) -> None:
    pair = await harness.open(side)
    t = pair.transport
    t.disconnect(graceful=graceful)
    t.disconnect(graceful=graceful)
    t.disconnect(graceful=not graceful)
    frames = await pair.peer.read_until_eof()
    assert frames == []  # no CLOSE: disconnect() only drops TCP
    await asyncio.wait_for(t.wait_disconnected(), 5)
    t.disconnect()
    t.disconnect(graceful=False)
    assert t.is_disconnected
    assert not t.is_close_frame_sent
    assert pair.listener.disconnected_calls == 1


@pytest.mark.parametrize("side", SIDES)
async def test_graceful_disconnect_flushes_queued_frames(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    big = bytes(range(256)) * 4096  # 1 MiB: more than the socket takes at once
    pair.transport.send(WSMsgType.BINARY, big)
    pair.transport.send_close(WSCloseCode.OK)
    pair.transport.disconnect(graceful=True)
    frames = await pair.peer.read_until_eof()
    assert [(f.opcode, f.payload) for f in frames] == [(2, big), (8, b"\x03\xe8")]


# -- wait_disconnected() ---------------------------------------------------------------------


class OrderListener(RecordingListener):
    """Notes whether on_ws_disconnected had finished when the waiter woke up."""

    def __init__(self) -> None:
        super().__init__()
        self.finished_disconnect = False

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        super().on_ws_disconnected(transport)
        assert transport.is_disconnected
        self.finished_disconnect = True


@pytest.mark.parametrize("side", SIDES)
async def test_wait_disconnected_after_on_ws_disconnected(harness: Harness, side: str) -> None:
    pair = await harness.open(side, OrderListener)
    waiter = asyncio.ensure_future(pair.transport.wait_disconnected())
    await asyncio.sleep(0)
    assert not waiter.done()
    assert not pair.transport.is_disconnected
    pair.peer.close()
    await asyncio.wait_for(waiter, 5)
    assert pair.listener.finished_disconnect
    assert pair.transport.is_disconnected
    assert pair.listener.disconnected_calls == 1
    # Waiting again after the fact returns at once.
    await asyncio.wait_for(pair.transport.wait_disconnected(), 1)


class RaisingListener(RecordingListener):
    def __init__(
        self,
        on_connected: Optional[BaseException] = None,
        on_disconnected: Optional[BaseException] = None,
    ) -> None:
        super().__init__()
        self.on_connected_error = on_connected
        self.on_disconnected_error = on_disconnected

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        super().on_ws_connected(transport)
        if self.on_connected_error is not None:
            raise self.on_connected_error

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        super().on_ws_disconnected(transport)
        if self.on_disconnected_error is not None:
            raise self.on_disconnected_error


async def test_client_reraises_on_ws_frame_exception(harness: Harness) -> None:
    pair = await harness.open("client")
    error = RuntimeError("boom in on_ws_frame")
    pair.listener.raise_on_payload[b"explode"] = error
    pair.peer.send_frame(1, b"explode")
    close = await pair.peer.expect_close()
    assert close.close_code == WSCloseCode.INTERNAL_ERROR
    assert close.close_reason == ""  # the exception text stays private
    await pair.peer.expect_eof()
    with pytest.raises(RuntimeError) as info:
        await asyncio.wait_for(pair.transport.wait_disconnected(), 5)
    assert info.value is error
    # Every waiter gets it, not only the first one.
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(pair.transport.wait_disconnected(), 5)


async def test_client_reraises_on_ws_connected_exception(harness: Harness) -> None:
    error = KeyError("boom in on_ws_connected")
    pair = await harness.open("client", lambda: RaisingListener(on_connected=error))
    close = await pair.peer.expect_close()
    assert close.close_code == WSCloseCode.INTERNAL_ERROR
    await pair.peer.expect_eof()
    with pytest.raises(KeyError) as info:
        await asyncio.wait_for(pair.transport.wait_disconnected(), 5)
    assert info.value is error


async def test_client_reraises_on_ws_disconnected_exception(harness: Harness) -> None:
    error = ValueError("boom in on_ws_disconnected")
    pair = await harness.open("client", lambda: RaisingListener(on_disconnected=error))
    pair.peer.close()
    with pytest.raises(ValueError) as info:
        await asyncio.wait_for(pair.transport.wait_disconnected(), 5)
    assert info.value is error


async def test_client_reraises_the_first_exception(harness: Harness) -> None:
    first = RuntimeError("first")
    second = ValueError("second")
    pair = await harness.open("client", lambda: RaisingListener(on_disconnected=second))
    pair.listener.raise_on_payload[b"one"] = first
    pair.listener.raise_on_payload[b"two"] = RuntimeError("not delivered")
    pair.peer.send_raw(pair.peer.build(1, b"one") + pair.peer.build(1, b"two"))
    await pair.peer.expect_close()
    with pytest.raises(RuntimeError) as info:
        await asyncio.wait_for(pair.transport.wait_disconnected(), 5)
    assert info.value is first
    # The connection is failed at the first exception: the next frame is dropped.
    assert [f.payload for f in pair.listener.frames] == [b"one"]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("where", ["on_ws_frame", "on_ws_connected"])
async def test_user_protocol_error_chooses_close_code(
    harness: Harness, side: str, where: str
) -> None:
    error = WSProtocolError(4001, "custom reason \u00e9")
    if where == "on_ws_connected":
        pair = await harness.open(side, lambda: RaisingListener(on_connected=error))
    else:
        pair = await harness.open(side)
        pair.listener.raise_on_payload[b"bad"] = error
        pair.peer.send_frame(2, b"bad")
    close = await pair.peer.expect_close()
    assert (close.close_code, close.close_reason) == (4001, "custom reason \u00e9")
    await pair.peer.expect_eof()
    if side == "client":
        with pytest.raises(WSProtocolError) as info:
            await asyncio.wait_for(pair.transport.wait_disconnected(), 5)
        assert info.value is error
    else:
        await asyncio.wait_for(pair.transport.wait_disconnected(), 5)
    handshake = pair.transport.close_handshake
    assert handshake is not None
    assert handshake.sent == WSCloseInfo(WSCloseCode(4001), "custom reason \u00e9")


@pytest.mark.parametrize("side", SIDES)
async def test_disconnect_on_exception_false_keeps_connection(
    harness: Harness, side: str, caplog: pytest.LogCaptureFixture
) -> None:
    pair = await harness.open(side, disconnect_on_exception=False)
    pair.listener.raise_on_payload[b"oops"] = RuntimeError("only logged")
    pair.peer.send_frame(1, b"oops")
    pair.peer.send_frame(1, b"still here")
    assert (await pair.listener.next_frame()).payload == b"oops"
    assert (await pair.listener.next_frame()).payload == b"still here"
    pair.transport.send(WSMsgType.TEXT, "alive")
    assert (await pair.peer.read_frame()).payload == b"alive"
    assert not pair.transport.is_close_frame_sent
    assert any("only logged" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    pair.peer.close()
    await asyncio.wait_for(pair.transport.wait_disconnected(), 5)  # nothing stored


@pytest.mark.parametrize("side", SIDES)
async def test_disconnect_on_exception_false_still_honours_protocol_error(
    harness: Harness, side: str
) -> None:
    pair = await harness.open(side, disconnect_on_exception=False)
    pair.listener.raise_on_payload[b"stop"] = WSProtocolError(WSCloseCode.POLICY_VIOLATION, "no")
    pair.peer.send_frame(1, b"stop")
    close = await pair.peer.expect_close()
    assert (close.close_code, close.close_reason) == (WSCloseCode.POLICY_VIOLATION, "no")
    await pair.peer.expect_eof()


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("code", [None, 1000, 1001, 1002, 1011, 3000, 4999])
async def test_wait_disconnected_does_not_raise_on_peer_close(
    harness: Harness, side: str, code: Optional[int]
) -> None:
    pair = await harness.open(side)
    pair.peer.send_close(code, b"peer reason" if code is not None else b"")
    frame = await pair.listener.next_frame()
    assert frame.msg_type == WSMsgType.CLOSE
    pair.peer.close()
    await asyncio.wait_for(pair.transport.wait_disconnected(), 5)
    handshake = pair.transport.close_handshake
    assert handshake is not None and handshake.recv is not None
    assert handshake.recv.code == (0 if code is None else code)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("how", ["fin", "rst"])
async def test_wait_disconnected_does_not_raise_on_tcp_drop(
    harness: Harness, side: str, how: str
) -> None:
    pair = await harness.open(side)
    if how == "fin":
        pair.peer.close()
    else:
        pair.peer.abort()
    await asyncio.wait_for(pair.transport.wait_disconnected(), 5)
    assert pair.transport.is_disconnected
    assert pair.transport.close_handshake is None
    assert pair.listener.disconnected_calls == 1


async def test_server_wait_disconnected_never_raises(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    error = RuntimeError("server side failure")
    pair = await harness.open(
        "server", lambda: RaisingListener(on_disconnected=ValueError("in on_ws_disconnected"))
    )
    pair.listener.raise_on_payload[b"x"] = error
    pair.peer.send_frame(2, b"x")
    close = await pair.peer.expect_close()
    assert close.close_code == WSCloseCode.INTERNAL_ERROR
    await pair.peer.expect_eof()
    await asyncio.wait_for(pair.transport.wait_disconnected(), 5)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(r.exc_info and r.exc_info[1] is error for r in errors)


async def test_server_on_ws_connected_exception_closes_and_logs(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    error = RuntimeError("server connect failure")
    pair = await harness.open("server", lambda: RaisingListener(on_connected=error))
    close = await pair.peer.expect_close()
    assert close.close_code == WSCloseCode.INTERNAL_ERROR
    await pair.peer.expect_eof()
    await asyncio.wait_for(pair.transport.wait_disconnected(), 5)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(r.exc_info and r.exc_info[1] is error for r in errors)


@pytest.mark.parametrize("side", SIDES)
async def test_cancelling_a_waiter_does_not_affect_others(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    t = pair.transport
    cancelled = asyncio.ensure_future(t.wait_disconnected())
    survivor = asyncio.ensure_future(t.wait_disconnected())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(t.wait_disconnected(), 0.01)  # cancelled by the timeout
    assert not survivor.done()
    assert not t.is_disconnected
    # The connection still works, and the remaining waiter wakes on disconnect.
    t.send(WSMsgType.TEXT, "still open")
    assert (await pair.peer.read_frame()).payload == b"still open"
    pair.peer.close()
    await asyncio.wait_for(survivor, 5)
    await asyncio.wait_for(t.wait_disconnected(), 5)


# -- threads -------------------------------------------------------------------------------


def _call_in_thread(func: Callable[[], Any]) -> BaseException:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            func()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert len(errors) == 1, "the call from another thread did not raise"
    return errors[0]


@pytest.mark.parametrize("side", SIDES)
async def test_calls_from_another_thread_raise(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    t = pair.transport
    calls: dict[str, Callable[[], Any]] = {
        "send": lambda: t.send(WSMsgType.TEXT, "from thread"),
        "send_ping": lambda: t.send_ping(b"from thread"),
        "send_pong": lambda: t.send_pong(b"from thread"),
        "send_close": lambda: t.send_close(WSCloseCode.OK),
        "send_reuse_external_bytearray": lambda: t.send_reuse_external_bytearray(
            WSMsgType.BINARY, bytearray(20), 14
        ),
        "disconnect": lambda: t.disconnect(),
        "notify_user_specific_pong_received": t.notify_user_specific_pong_received,
        "wait_disconnected": lambda: asyncio.run(t.wait_disconnected()),
        "measure_roundtrip_time": lambda: asyncio.run(t.measure_roundtrip_time(1)),
    }
    for name, call in calls.items():
        error = _call_in_thread(call)
        assert isinstance(error, RuntimeError), (name, error)
        assert "wrong thread" in str(error), (name, error)
        assert name in str(error), (name, error)
    # None of them had an effect: the connection is open and nothing was sent.
    assert not t.is_close_frame_sent
    assert not t.is_disconnected
    t.send(WSMsgType.TEXT, "from the loop thread")
    frame = await pair.peer.read_frame()
    assert (frame.opcode, frame.payload) == (1, b"from the loop thread")


# -- close_handshake and flags -----------------------------------------------------------


@pytest.mark.parametrize("side", SIDES)
async def test_close_handshake_recv_then_sent(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    t = pair.transport
    pair.peer.send_close(WSCloseCode.OK, b"peer first")
    frame = await pair.listener.next_frame()
    # Recorded before on_ws_frame ran.
    assert frame.close_handshake_recv == WSCloseInfo(WSCloseCode.OK, "peer first")
    handshake = t.close_handshake
    assert handshake is not None
    # As upstream: the peer closed first, so recv_then_sent is True at once, even if
    # we never answer.
    assert handshake.sent is None and handshake.recv_then_sent
    assert not t.is_close_frame_sent
    t.send_close(WSCloseCode.GOING_AWAY, "me second")
    assert handshake is t.close_handshake or t.close_handshake is not None
    handshake = t.close_handshake
    assert handshake is not None
    assert handshake.recv == WSCloseInfo(WSCloseCode.OK, "peer first")
    assert handshake.sent == WSCloseInfo(WSCloseCode.GOING_AWAY, "me second")
    assert handshake.recv_then_sent
    close = await pair.peer.expect_close()
    assert (close.close_code, close.close_reason) == (1001, "me second")


@pytest.mark.parametrize("side", SIDES)
async def test_close_handshake_sent_then_recv(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    t = pair.transport
    t.send_close(WSCloseCode.OK, "me first")
    close = await pair.peer.expect_close()
    assert close.close_code == 1000
    pair.peer.send_close(4000, b"peer second")
    frame = await pair.listener.next_frame()
    assert frame.msg_type == WSMsgType.CLOSE
    assert (frame.close_code, frame.close_reason) == (4000, "peer second")
    handshake = t.close_handshake
    assert handshake is not None
    assert handshake.sent == WSCloseInfo(WSCloseCode.OK, "me first")
    assert handshake.recv == WSCloseInfo(WSCloseCode(4000), "peer second")
    assert not handshake.recv_then_sent


@pytest.mark.parametrize("side", SIDES)
async def test_is_disconnected_flag(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    t = pair.transport
    assert t.is_disconnected is False
    assert t.is_client_side is (side == "client")
    assert t.is_secure is False
    pair.peer.close()
    await pair.listener.wait_disconnected()
    assert t.is_disconnected is True


@pytest.mark.parametrize("side", SIDES)
async def test_weakrefs(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    transport_ref = weakref.ref(pair.transport)
    listener_ref = weakref.ref(pair.listener)
    assert transport_ref() is pair.transport
    assert listener_ref() is pair.listener
    proxy = weakref.proxy(pair.transport)
    proxy.send(WSMsgType.TEXT, "via proxy")
    assert (await pair.peer.read_frame()).payload == b"via proxy"


async def test_tls_connection(wss_echo_server: str, client_ssl_context: Any) -> None:
    transport, listener = await picows.ws_connect(
        RecordingListener, wss_echo_server, ssl_context=client_ssl_context
    )
    assert transport.is_secure
    transport.send(WSMsgType.BINARY, b"over tls" * 1000)
    frame = await listener.next_frame()
    assert frame.payload == b"over tls" * 1000
    transport.send_close(WSCloseCode.OK, b"done")
    close = await listener.next_frame()
    assert (close.msg_type, close.close_code, close.close_reason) == (
        WSMsgType.CLOSE,
        WSCloseCode.OK,
        "done",
    )
    await asyncio.wait_for(transport.wait_disconnected(), 5)
