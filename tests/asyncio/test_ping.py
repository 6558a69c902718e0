"""Ping/pong: auto-pong, auto-ping (both strategies, user-specific probes), round-trip
measurement, and write flow control, observed from a raw peer.

Timeouts are short (0.1-0.3 s).  Waiting is done on frames and events; the few
bounded waits only assert that something does *not* happen in that window.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any, Optional

import pytest

import picows
from picows import WSAutoPingStrategy, WSCloseCode, WSMsgType
from rawpeer import Harness, Pair, RawPeer, RecordingListener

SIDES = ["client", "server"]
PING, PONG, TEXT, CLOSE = 9, 10, 1, 8


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with Harness() as h:
        yield h


def auto_ping(
    idle: float,
    reply: float,
    strategy: WSAutoPingStrategy = WSAutoPingStrategy.PING_WHEN_IDLE,
) -> dict[str, Any]:
    return {
        "enable_auto_ping": True,
        "auto_ping_idle_timeout": idle,
        "auto_ping_reply_timeout": reply,
        "auto_ping_strategy": strategy,
    }


async def expect_no_pong_close(peer: RawPeer, reply_timeout: str) -> None:
    """The peer gets CLOSE(GOING_AWAY) with the documented reason, then EOF."""
    close = await peer.expect_close()
    assert close.close_code == WSCloseCode.GOING_AWAY
    assert close.close_reason == (
        f"peer has not replied to ping/heartbeat request within {reply_timeout} second(s)"
    )
    await peer.expect_eof()


# -- auto-pong -------------------------------------------------------------------------


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("payload", [b"hello", b"", bytes(range(125))], ids=["5", "0", "125"])
async def test_auto_pong_answers_with_same_payload(
    harness: Harness, side: str, payload: bytes
) -> None:
    pair = await harness.open(side)
    pair.peer.send_frame(PING, payload)
    pair.peer.send_frame(TEXT, b"marker")
    pong = await pair.peer.read_frame()
    assert (pong.opcode, pong.fin, pong.payload) == (PONG, 1, payload)
    marker = await pair.listener.next_frame()
    assert marker.payload == b"marker"
    assert [f.msg_type for f in pair.listener.frames] == [WSMsgType.TEXT]  # PING consumed


@pytest.mark.parametrize("side", SIDES)
async def test_auto_pong_disabled_delivers_ping(harness: Harness, side: str) -> None:
    pair = await harness.open(side, enable_auto_pong=False)
    pair.peer.send_frame(PING, b"deliver me")
    frame = await pair.listener.next_frame()
    assert (frame.msg_type, frame.payload) == (WSMsgType.PING, b"deliver me")
    # Had picows answered, the PONG would have been written before on_ws_frame ran
    # and would reach the peer before this marker.
    pair.transport.send(WSMsgType.TEXT, "marker")
    first = await pair.peer.read_frame()
    assert (first.opcode, first.payload) == (TEXT, b"marker")
    # The application answers by hand.
    pair.transport.send_pong(frame.payload)
    assert (await pair.peer.read_frame()).opcode == PONG


# -- auto-ping -------------------------------------------------------------------------


@pytest.mark.parametrize("side", SIDES)
async def test_idle_connection_is_pinged_and_kept_alive(harness: Harness, side: str) -> None:
    pair = await harness.open(side, **auto_ping(0.1, 0.1))
    loop = asyncio.get_running_loop()
    for _ in range(3):
        ping = await pair.peer.read_frame(2)
        assert ping.opcode == PING
        pair.peer.send_frame(PONG, ping.payload)
    # Answered pongs are consumed, not delivered.
    assert pair.listener.frames == []
    assert not pair.transport.is_close_frame_sent
    # Now stay silent: one more PING, then CLOSE(GOING_AWAY) and the drop.
    assert (await pair.peer.read_frame(2)).opcode == PING
    silent_since = loop.time()
    await expect_no_pong_close(pair.peer, "0.1")
    assert loop.time() - silent_since >= 0.05
    await pair.listener.wait_disconnected()
    handshake = pair.transport.close_handshake
    assert handshake is not None and handshake.sent is not None
    assert handshake.sent.code == WSCloseCode.GOING_AWAY


async def _send_data_for(peer: RawPeer, duration: float, interval: float) -> int:
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    sent = 0
    while loop.time() < end:
        peer.send_frame(TEXT, b"data")
        sent += 1
        await asyncio.sleep(interval)
    return sent


@pytest.mark.parametrize("side", SIDES)
async def test_ping_when_idle_holds_off_while_data_flows(harness: Harness, side: str) -> None:
    pair = await harness.open(side, **auto_ping(0.15, 0.15))
    sender = asyncio.ensure_future(_send_data_for(pair.peer, 0.45, 0.03))
    # Three idle periods of traffic: no PING may arrive while data keeps flowing.
    with pytest.raises(asyncio.TimeoutError):
        await pair.peer.read_frame(0.4)
    sent = await sender
    assert len(pair.listener.frames) >= sent - 1
    # Once the peer goes quiet, it is pinged.
    ping = await pair.peer.read_frame(2)
    assert ping.opcode == PING


@pytest.mark.parametrize("side", SIDES)
async def test_ping_periodically_pings_while_data_flows(harness: Harness, side: str) -> None:
    pair = await harness.open(side, **auto_ping(0.1, 0.1, WSAutoPingStrategy.PING_PERIODICALLY))
    sender = asyncio.ensure_future(_send_data_for(pair.peer, 1.0, 0.02))
    try:
        for _ in range(2):
            ping = await pair.peer.read_frame(0.5)
            assert ping.opcode == PING
            assert not sender.done()  # data was still flowing
            pair.peer.send_frame(PONG, ping.payload)
    finally:
        sender.cancel()
    assert all(f.msg_type == WSMsgType.TEXT for f in pair.listener.frames)


class TextPingListener(RecordingListener):
    """Application-level heartbeat: TEXT "ping" out, TEXT "pong" back."""

    def __init__(self) -> None:
        super().__init__()
        self.pong_checks = 0

    def send_user_specific_ping(self, transport: picows.WSTransport) -> None:
        transport.send(WSMsgType.TEXT, "ping")

    def is_user_specific_pong(self, frame: picows.WSFrame) -> bool:
        self.pong_checks += 1
        return frame.msg_type == WSMsgType.TEXT and frame.get_payload_as_bytes() == b"pong"


@pytest.mark.parametrize("side", SIDES)
async def test_user_specific_ping_pong(harness: Harness, side: str) -> None:
    pair = await harness.open(side, TextPingListener, **auto_ping(0.1, 0.1))
    peer = pair.peer
    for i in range(2):
        ping = await peer.read_frame(2)
        assert (ping.opcode, ping.payload) == (TEXT, b"ping")
        peer.send_frame(TEXT, b"pong")
        if i == 1:
            peer.send_frame(TEXT, b"data")
    data = await pair.listener.next_frame()
    assert data.payload == b"data"
    # Both pongs were consumed, only the data reached on_ws_frame.
    assert [f.payload for f in pair.listener.frames] == [b"data"]
    # A frame that is not the pong, while one is awaited, is delivered.
    ping = await peer.read_frame(2)
    assert (ping.opcode, ping.payload) == (TEXT, b"ping")
    peer.send_frame(TEXT, b"not a pong")
    assert (await pair.listener.next_frame()).payload == b"not a pong"
    await expect_no_pong_close(peer, "0.1")


class NotifyingListener(RecordingListener):
    """Recognises pongs in on_ws_frame, as apps that parse JSON there do."""

    def __init__(self, notify: bool) -> None:
        super().__init__()
        self.notify = notify

    def send_user_specific_ping(self, transport: picows.WSTransport) -> None:
        transport.send(WSMsgType.TEXT, "ping")

    def is_user_specific_pong(self, frame: picows.WSFrame) -> bool:
        return False

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        super().on_ws_frame(transport, frame)
        if self.notify and frame.get_payload_as_bytes() == b"pong":
            transport.notify_user_specific_pong_received()


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("notify", [True, False])
async def test_notify_user_specific_pong_keeps_alive(
    harness: Harness, side: str, notify: bool
) -> None:
    pair = await harness.open(side, lambda: NotifyingListener(notify), **auto_ping(0.1, 0.1))
    peer = pair.peer
    rounds = 3 if notify else 1
    for _ in range(rounds):
        ping = await peer.read_frame(2)
        assert (ping.opcode, ping.payload) == (TEXT, b"ping")
        peer.send_frame(TEXT, b"pong")
        # Not consumed by is_user_specific_pong: on_ws_frame sees it.
        assert (await pair.listener.next_frame()).payload == b"pong"
    if notify:
        # Still alive: the next probe comes instead of a CLOSE.
        ping = await peer.read_frame(2)
        assert (ping.opcode, ping.payload) == (TEXT, b"ping")
        assert not pair.transport.is_close_frame_sent
    else:
        # The pong reached on_ws_frame but nobody told the auto-ping loop.
        await expect_no_pong_close(peer, "0.1")


async def test_notify_without_auto_ping_is_harmless(harness: Harness) -> None:
    pair = await harness.open("client")
    pair.transport.notify_user_specific_pong_received()
    pair.transport.notify_user_specific_pong_received()
    pair.transport.send(WSMsgType.TEXT, "fine")
    assert (await pair.peer.read_frame()).payload == b"fine"


class BrokenPongCheckListener(RecordingListener):
    def __init__(self) -> None:
        super().__init__()
        self.error = RuntimeError("is_user_specific_pong failed")

    def is_user_specific_pong(self, frame: picows.WSFrame) -> bool:
        raise self.error


@pytest.mark.parametrize("side", SIDES)
async def test_is_user_specific_pong_raising_closes_1011(harness: Harness, side: str) -> None:
    pair = await harness.open(side, BrokenPongCheckListener, **auto_ping(0.1, 0.1))
    ping = await pair.peer.read_frame(2)
    assert ping.opcode == PING
    pair.peer.send_frame(PONG, ping.payload)
    close = await pair.peer.expect_close()
    assert close.close_code == WSCloseCode.INTERNAL_ERROR
    await pair.peer.expect_eof()
    assert pair.listener.frames == []
    if side == "client":
        with pytest.raises(RuntimeError) as info:
            await asyncio.wait_for(pair.transport.wait_disconnected(), 5)
        assert info.value is pair.listener.error
    else:
        await asyncio.wait_for(pair.transport.wait_disconnected(), 5)


async def test_reply_timeout_over_idle_timeout_is_refused(harness: Harness) -> None:
    with pytest.raises(ValueError):
        await picows.ws_connect(
            RecordingListener, "ws://127.0.0.1:9/", **auto_ping(idle=0.1, reply=0.2)
        )
    with pytest.raises(ValueError):
        await picows.ws_create_server(
            lambda request: RecordingListener(), "127.0.0.1", 0, **auto_ping(idle=1, reply=2)
        )
    # Equal timeouts are fine.
    pair = await harness.open("client", **auto_ping(idle=0.2, reply=0.2))
    assert (await pair.peer.read_frame(2)).opcode == PING


# -- measure_roundtrip_time ---------------------------------------------------------------


async def _answer_pings(peer: RawPeer, reply: Optional[bytes] = None) -> list[Any]:
    """Answer every probe (PING with PONG, or TEXT "ping" with TEXT ``reply``)."""
    seen: list[Any] = []
    while True:
        try:
            frame = await peer.read_frame(5)
        except (EOFError, ConnectionResetError):
            return seen
        seen.append(frame)
        if frame.opcode == PING:
            peer.send_frame(PONG, frame.payload)
        elif reply is not None and frame.payload == b"ping":
            peer.send_frame(TEXT, reply)


@pytest.mark.parametrize("side", SIDES)
async def test_measure_roundtrip_time(harness: Harness, side: str) -> None:
    pair = await harness.open(side)
    answerer = asyncio.ensure_future(_answer_pings(pair.peer))
    rtts = await asyncio.wait_for(pair.transport.measure_roundtrip_time(5), 5)
    assert len(rtts) == 5
    assert all(isinstance(r, float) and r > 0 for r in rtts)
    pair.transport.disconnect()
    seen = await asyncio.wait_for(answerer, 5)
    assert [f.opcode for f in seen] == [PING] * 5
    assert pair.listener.frames == []  # the pongs were consumed


async def test_measure_roundtrip_time_against_picows_server(echo_server: str) -> None:
    transport, _ = await picows.ws_connect(RecordingListener, echo_server)
    try:
        rtts = await asyncio.wait_for(transport.measure_roundtrip_time(3), 5)
        assert len(rtts) == 3 and all(r > 0 for r in rtts)
    finally:
        transport.disconnect()
        await transport.wait_disconnected()


@pytest.mark.parametrize("side", SIDES)
async def test_measure_roundtrip_time_with_user_specific_ping(harness: Harness, side: str) -> None:
    pair = await harness.open(side, TextPingListener)
    answerer = asyncio.ensure_future(_answer_pings(pair.peer, reply=b"pong"))
    rtts = await asyncio.wait_for(pair.transport.measure_roundtrip_time(4), 5)
    assert len(rtts) == 4 and all(r > 0 for r in rtts)
    pair.transport.disconnect()
    seen = await asyncio.wait_for(answerer, 5)
    assert [(f.opcode, f.payload) for f in seen] == [(TEXT, b"ping")] * 4
    assert pair.listener.frames == []


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("how", ["close", "abort"])
async def test_measure_roundtrip_time_connection_drops(
    harness: Harness, side: str, how: str
) -> None:
    pair = await harness.open(side)
    measuring = asyncio.ensure_future(pair.transport.measure_roundtrip_time(3))
    ping = await pair.peer.read_frame()
    assert ping.opcode == PING
    pair.peer.send_frame(PONG, ping.payload)  # first round completes
    assert (await pair.peer.read_frame()).opcode == PING
    if how == "close":
        pair.peer.close()
    else:
        pair.peer.abort()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(measuring, 5)


async def test_measure_roundtrip_time_with_auto_ping(harness: Harness) -> None:
    """Both use the same probe; each pong is matched to one of them."""
    pair = await harness.open("client", **auto_ping(0.05, 0.05))
    answerer = asyncio.ensure_future(_answer_pings(pair.peer))
    for _ in range(3):
        rtts = await asyncio.wait_for(pair.transport.measure_roundtrip_time(3), 5)
        assert len(rtts) == 3
    assert not pair.transport.is_close_frame_sent
    pair.transport.disconnect()
    await asyncio.wait_for(answerer, 5)


# -- flow control ------------------------------------------------------------------------------

HIGH_WATER = 32 * 1024
LOW_WATER = 8 * 1024
CHUNK = 16 * 1024


class FlowListener(RecordingListener):
    def __init__(self, override: bool = True) -> None:
        super().__init__()
        self.paused = asyncio.Event()
        self.resumed = asyncio.Event()
        self.pause_calls = 0
        self.resume_calls = 0

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        transport.underlying_transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)
        sock = transport.underlying_transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        super().on_ws_connected(transport)


class BackpressureListener(FlowListener):
    def pause_writing(self) -> None:
        self.pause_calls += 1
        self.paused.set()

    def resume_writing(self) -> None:
        self.resume_calls += 1
        self.resumed.set()


async def _fill_until(pair: Pair, condition: Any) -> int:
    """Send CHUNK-sized frames to a peer that does not read until ``condition()``."""
    for sent in range(1, 4001):
        pair.transport.send(WSMsgType.BINARY, bytes([sent % 256]) * CHUNK)
        if condition():
            return sent
        if sent % 8 == 0:
            await asyncio.sleep(0)  # let the loop flush to the socket
    raise AssertionError("the write buffer never went over the high watermark")


async def _read_all_binary_then_end(peer: RawPeer) -> list[bytes]:
    payloads: list[bytes] = []
    while True:
        frame = await peer.read_frame(10)
        if frame.opcode == TEXT and frame.payload == b"end":
            return payloads
        payloads.append(frame.payload)


async def test_pause_and_resume_writing(harness: Harness) -> None:
    pair = await harness.open("server", BackpressureListener, rcvbuf=4096)
    listener: BackpressureListener = pair.listener
    sent = await _fill_until(pair, listener.paused.is_set)
    assert listener.pause_calls == 1
    assert listener.resume_calls == 0
    assert pair.transport.underlying_transport.get_write_buffer_size() > HIGH_WATER
    # Now the peer reads: the buffer drains and resume_writing is called.
    reader = asyncio.ensure_future(_read_all_binary_then_end(pair.peer))
    await asyncio.wait_for(listener.resumed.wait(), 10)
    assert listener.resume_calls == 1
    assert pair.transport.underlying_transport.get_write_buffer_size() <= LOW_WATER
    pair.transport.send(WSMsgType.TEXT, "end")
    payloads = await asyncio.wait_for(reader, 10)
    # Nothing was lost while paused: pausing is informative only.
    assert payloads == [bytes([i % 256]) * CHUNK for i in range(1, sent + 1)]
    assert listener.pause_calls == 1


async def test_backpressure_without_override_logs_warning(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="picows")
    pair = await harness.open("server", FlowListener, rcvbuf=4096)
    underlying = pair.transport.underlying_transport
    sent = await _fill_until(pair, lambda: underlying.get_write_buffer_size() > HIGH_WATER)
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("picows")
    ]
    assert len(warnings) == 1
    assert "watermark" in warnings[0].getMessage()
    reader = asyncio.ensure_future(_read_all_binary_then_end(pair.peer))
    pair.transport.send(WSMsgType.TEXT, "end")
    payloads = await asyncio.wait_for(reader, 10)
    assert len(payloads) == sent
    # The drain (resume_writing, not overridden) logs nothing more.
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == warnings
