"""Hostile peers: each misbehaviour ends with its documented outcome, and nothing leaks.

The peer is a raw socket that never completes the handshake, sends oversized or
garbage headers, announces a frame over ``max_frame_size``, stops reading, drops the
connection mid-frame or mid-handshake, or floods us with PINGs.  Our side is the
conforming echo of ``examples/`` (server) or ``ws_connect`` (client).

Every test ends with :meth:`Guard.assert_clean`: every TCP connection picows served is
closed (``WSProtocol.connection_made``/``connection_lost`` bookkeeping, our own stand-in
for a server's connection table), and no task is left running.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Optional

import pytest

import picows
from conforming import ObservedClient, ObservedServer
from helpers import eventually, read_to_eof
from leakcheck import Guard
from rawpeer import RawPeer, accept_for, connect_raw_client, unmask

TIMEOUT = 5.0
HANDSHAKE_TIMEOUT = 0.3


@pytest.fixture
async def guard(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Guard]:
    yield Guard(monkeypatch)


class Server:
    """A conforming echo server; ``listeners`` are the ones its router created."""

    def __init__(self, server: asyncio.Server, listeners: list[ObservedServer]) -> None:
        self.server = server
        self.listeners = listeners
        self.port: int = server.sockets[0].getsockname()[1]
        self.new_listener: asyncio.Queue[ObservedServer] = asyncio.Queue()


@asynccontextmanager
async def serve(**kwargs: Any) -> AsyncIterator[Server]:
    listeners: list[ObservedServer] = []
    holder: list[Server] = []

    def route(request: picows.WSUpgradeRequest) -> ObservedServer:
        listener = ObservedServer()
        listeners.append(listener)
        holder[0].new_listener.put_nowait(listener)
        return listener

    kwargs.setdefault("websocket_handshake_timeout", HANDSHAKE_TIMEOUT)
    server = await picows.ws_create_server(route, "127.0.0.1", 0, **kwargs)
    holder.append(Server(server, listeners))
    try:
        yield holder[0]
    finally:
        for listener in listeners:
            if listener.transport is not None:
                listener.transport.disconnect(graceful=False)
        server.close()
        await server.wait_closed()


def upgrade_request(*extra: tuple[str, str], key: Optional[str] = None) -> bytes:
    key = key or base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET / HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in extra),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def open_raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def close_raw(writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


def reader_capacity(transport: picows.WSTransport) -> int:
    """The size of picows' receive buffer for this connection (private, for memory checks)."""
    return transport._conn.buffer_capacity


async def assert_server_still_serves(server: Server) -> None:
    """A fresh client still gets its messages echoed."""
    peer = await connect_raw_client(server.port)
    try:
        peer.send_frame(1, b"still alive")
        frame = await peer.read_frame(TIMEOUT)
        assert (frame.opcode, frame.payload) == (1, b"still alive")
        peer.send_close(1000)
        assert (await peer.expect_close(TIMEOUT)).close_code == 1000
        assert await peer.read_until_eof(TIMEOUT) == []
    finally:
        peer.abort()


class ScriptedServer:
    """A raw TCP server whose connection handling is the test's ``handler`` coroutine."""

    def __init__(self, handler: Any, rcvbuf: Optional[int] = None) -> None:
        self.handler = handler
        self.rcvbuf = rcvbuf
        self.done: asyncio.Queue[Optional[BaseException]] = asyncio.Queue()
        self._server: Optional[asyncio.Server] = None

    async def __aenter__(self) -> ScriptedServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.rcvbuf is not None:
            # Inherited by accepted sockets: a small window from the first byte.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.bind(("127.0.0.1", 0))
        self._server = await asyncio.start_server(self._handle, sock=sock)
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        error: Optional[BaseException] = None
        try:
            await self.handler(reader, writer)
        except Exception as exc:  # reported to the test through `done`
            error = exc
        finally:
            writer.transport.abort()
            self.done.put_nowait(error)

    async def finished(self, timeout: float = TIMEOUT) -> None:
        """The handler of one connection returned; re-raises what it raised."""
        error = await asyncio.wait_for(self.done.get(), timeout)
        if error is not None:
            raise error

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/"

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> str:
    """Reads the upgrade request; returns its Sec-WebSocket-Key."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-key":
            return value.strip()
    raise AssertionError(f"no key in {head!r}")


def response_101(key: str, *extra: str) -> bytes:
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_for(key)}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# ---------------------------------------------------------------------------
# A handshake that never completes.


@pytest.mark.parametrize(
    "sent", [b"", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"], ids=["silent", "partial"]
)
async def test_server_frees_a_handshake_that_never_completes(guard: Guard, sent: bytes) -> None:
    async with serve() as server:
        reader, writer = await open_raw(server.port)
        writer.write(sent)
        # websocket_handshake_timeout: closed without an answer, the router never asked.
        assert await read_to_eof(reader, HANDSHAKE_TIMEOUT + TIMEOUT) == b""
        assert server.listeners == []
        await close_raw(writer)
        await assert_server_still_serves(server)
    await guard.assert_clean()


async def test_server_handshake_timeout_is_not_reset_by_a_trickle(guard: Guard) -> None:
    """A slowloris peer sending a byte at a time is cut off at the same deadline."""
    async with serve() as server:
        reader, writer = await open_raw(server.port)
        request = upgrade_request()
        loop = asyncio.get_running_loop()
        started = loop.time()
        eof = asyncio.ensure_future(reader.read(1))
        for byte in request[:-1]:  # never the final LF
            writer.write(bytes([byte]))
            # Pacing: wait up to 20 ms for the server to hang up, then send the next byte.
            done, _ = await asyncio.wait({eof}, timeout=0.02)
            if done:
                break
        try:
            assert await asyncio.wait_for(eof, TIMEOUT) == b""
        except ConnectionResetError:
            pass  # hung up on bytes still arriving: the kernel answers them with a reset
        assert loop.time() - started < HANDSHAKE_TIMEOUT + 2
        assert server.listeners == []
        await close_raw(writer)
    await guard.assert_clean()


@pytest.mark.parametrize(
    "response", [b"", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"]
)
async def test_client_handshake_that_never_completes_times_out(
    guard: Guard, response: bytes
) -> None:
    async def never_finishes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response)
        # The client gives up and closes: EOF, with nothing sent after the request.
        assert await read_to_eof(reader, HANDSHAKE_TIMEOUT + TIMEOUT) == b""

    async with ScriptedServer(never_finishes) as raw:
        with pytest.raises(asyncio.TimeoutError):
            await picows.ws_connect(
                ObservedClient, raw.url, websocket_handshake_timeout=HANDSHAKE_TIMEOUT
            )
        await raw.finished()
    await guard.assert_clean()


# ---------------------------------------------------------------------------
# Oversized headers, garbage instead of HTTP.

_BIG_VALUE = "x" * (16 * 1024)


@pytest.mark.parametrize(
    "extra",
    [
        [("X-Big", _BIG_VALUE)],
        [(f"X-H{i}", "v") for i in range(130)],
    ],
    ids=["17KiB-header", "135-headers"],
)
async def test_server_closes_oversized_requests_without_answer(
    guard: Guard, extra: list[tuple[str, str]]
) -> None:
    async with serve() as server:
        reader, writer = await open_raw(server.port)
        writer.write(upgrade_request(*extra))
        assert await read_to_eof(reader, TIMEOUT) == b""
        assert server.listeners == []
        await close_raw(writer)
        await assert_server_still_serves(server)
    await guard.assert_clean()


@pytest.mark.parametrize(("count", "accepted"), [(128, True), (129, False)])
async def test_server_header_count_limit(guard: Guard, count: int, accepted: bool) -> None:
    """128 header lines are accepted; one more closes the connection without answer."""
    async with serve() as server:
        reader, writer = await open_raw(server.port)
        # upgrade_request() has 5 standard header lines.
        writer.write(upgrade_request(*((f"X-H{i}", "v") for i in range(count - 5))))
        if accepted:
            status_line = await asyncio.wait_for(reader.readline(), TIMEOUT)
            assert status_line.startswith(b"HTTP/1.1 101 "), status_line
            listener = await asyncio.wait_for(server.new_listener.get(), TIMEOUT)
            await listener.wait_connected()
        else:
            assert await read_to_eof(reader, TIMEOUT) == b""
            assert server.listeners == []
        await close_raw(writer)
    await guard.assert_clean()


@pytest.mark.parametrize(
    ("garbage", "status"),
    [
        # A TLS ClientHello to a plain-text port: no line ends at all.
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\xaa" * 200, None),
        (bytes(range(256)) * 4, 400),  # binary with bare LFs
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", 400),
        (b"\r\n\r\n", 400),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    ],
    ids=["tls-hello", "binary", "ssh", "empty-head", "http2-preface"],
)
async def test_server_answers_garbage(guard: Guard, garbage: bytes, status: Optional[int]) -> None:
    async with serve() as server:
        reader, writer = await open_raw(server.port)
        writer.write(garbage)
        answer = await read_to_eof(reader, HANDSHAKE_TIMEOUT + TIMEOUT)
        if status is None:
            assert answer == b""  # cut off by the handshake timeout
        else:
            assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:100]
            assert b"\r\nConnection: close\r\n" in answer
        assert server.listeners == []
        await close_raw(writer)
        await assert_server_still_serves(server)
    await guard.assert_clean()


@pytest.mark.parametrize(
    ("garbage", "close_after", "error"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", False, picows.WSInvalidMessageError),
        (bytes(range(256)), False, picows.WSInvalidMessageError),
        (b"\x15\x03\x03\x00\x02\x02\x46", True, picows.WSInvalidMessageError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", False, picows.WSInvalidStatusError),
        (
            b"HTTP/1.1 101 OK\r\n" + b"X-Big: " + _BIG_VALUE.encode(),
            False,
            picows.WSInvalidMessageError,
        ),
        (
            b"HTTP/1.1 101 OK\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(130)) + b"\r\n",
            False,
            picows.WSInvalidMessageError,
        ),
    ],
    ids=["ssh", "binary", "tls-alert-then-close", "200", "17KiB-header", "130-headers"],
)
async def test_client_refuses_garbage(
    guard: Guard, garbage: bytes, close_after: bool, error: type[Exception]
) -> None:
    async def answer_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(garbage)
        if close_after:
            writer.write_eof()
        # The client gives up on its own and closes.
        await read_to_eof(reader, TIMEOUT)

    async with ScriptedServer(answer_garbage) as raw:
        with pytest.raises(error):
            await picows.ws_connect(ObservedClient, raw.url)
        await raw.finished()
    await guard.assert_clean()


# ---------------------------------------------------------------------------
# A frame over max_frame_size: the announced length alone fails the connection.

MAX_FRAME = 4096


@pytest.mark.parametrize("length", [MAX_FRAME + 1, 65536, 2**62], ids=["16bit", "64KiB", "2^62"])
async def test_server_fails_an_oversized_frame_on_its_header(guard: Guard, length: int) -> None:
    async with serve(max_frame_size=MAX_FRAME) as server:
        peer = await connect_raw_client(server.port)
        listener = await asyncio.wait_for(server.new_listener.get(), TIMEOUT)
        transport = await listener.wait_connected()
        initial = reader_capacity(transport)
        if length <= 0xFFFF:
            header = struct.pack("!BBH", 0x82, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x82, 0x80 | 127, length)
        peer.send_raw(header + os.urandom(4))  # the masking key, and no payload at all
        close = await peer.expect_close(TIMEOUT)
        assert close.close_code == 1009
        assert await peer.read_until_eof(TIMEOUT) == []
        await listener.wait_disconnected()
        assert listener.disconnected_calls == 1
        assert reader_capacity(transport) == initial  # nothing allocated for it
        peer.abort()
    await guard.assert_clean()


async def test_client_fails_an_oversized_frame_on_its_header(guard: Guard) -> None:
    async def announce_1gib(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(response_101(await read_request(reader)))
        writer.write(struct.pack("!BBQ", 0x82, 127, 2**30))  # 1 GiB announced, none sent
        peer = RawPeer(reader, writer, is_client=False)
        assert (await peer.expect_close(TIMEOUT)).close_code == 1009
        assert await peer.read_until_eof(TIMEOUT) == []

    async with ScriptedServer(announce_1gib) as raw:
        transport, _ = await picows.ws_connect(ObservedClient, raw.url, max_frame_size=MAX_FRAME)
        with pytest.raises(picows.WSProtocolError) as info:
            await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
        assert info.value.code == 1009
        assert reader_capacity(transport) == 16 * 1024
        await raw.finished()
    await guard.assert_clean()


async def test_a_frame_within_max_frame_size_costs_at_most_that(guard: Guard) -> None:
    """A frame of exactly max_frame_size, announced then stalled: the buffer stays bounded."""
    limit = 1024 * 1024
    async with serve(max_frame_size=limit) as server:
        peer = await connect_raw_client(server.port)
        listener = await asyncio.wait_for(server.new_listener.get(), TIMEOUT)
        transport = await listener.wait_connected()
        key = os.urandom(4)
        payload = bytes(range(256)) * (limit // 256)
        masked = unmask(payload, key)
        peer.send_raw(struct.pack("!BBQ", 0x82, 0x80 | 127, limit) + key + masked[:100])
        # A PING queued behind the stalled frame is answered only once the frame is whole.
        peer.send_raw(masked[100:] + peer.build(9, b"after"))
        echo = await peer.read_frame(TIMEOUT)
        assert (echo.opcode, echo.payload) == (2, payload)
        pong = await peer.read_frame(TIMEOUT)
        assert (pong.opcode, pong.payload) == (10, b"after")
        assert reader_capacity(transport) <= 2 * limit
        peer.abort()
    await guard.assert_clean()


@pytest.mark.parametrize("side", ["server", "client"])
async def test_an_announced_frame_costs_only_the_bytes_that_came(guard: Guard, side: str) -> None:
    """A header announcing 8 MiB, then 2 payload bytes: no memory for the rest.

    The attack of issue 15: memory must be paid for with bytes, never allocated because
    a header says so (upstream grows ~30 KiB per such connection).
    """
    header = struct.pack("!BBQ", 0x82, 127, 8 * 1024 * 1024 + 1)
    if side == "server":
        async with serve() as server:
            peer = await connect_raw_client(server.port)
            listener = await asyncio.wait_for(server.new_listener.get(), TIMEOUT)
            transport = await listener.wait_connected()
            peer.send_raw(bytes([0x82, 0x80 | 127]) + header[2:] + os.urandom(4) + b"x")
            peer.send_raw(b"y")
            # 14 header bytes (with the masking key) and the 2 payload bytes have arrived.
            await eventually(lambda: transport._conn.buffered == 16)
            assert reader_capacity(transport) == 16 * 1024  # the initial buffer, no more
            peer.abort()
    else:

        async def announce(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(response_101(await read_request(reader)) + header + b"xy")
            await writer.drain()
            await reader.read()  # until the client goes

        async with ScriptedServer(announce) as raw:
            transport, _ = await picows.ws_connect(ObservedClient, raw.url)
            await eventually(lambda: transport._conn.buffered == 12)  # header + 2 bytes
            assert reader_capacity(transport) == 16 * 1024
            transport.disconnect(graceful=False)
            await raw.finished()
    await guard.assert_clean()


async def test_a_grown_buffer_shrinks_once_the_connection_is_quiet(guard: Guard) -> None:
    """After a 4 MiB frame the receive buffer goes back to its initial size."""
    async with serve() as server:
        peer = await connect_raw_client(server.port)
        listener = await asyncio.wait_for(server.new_listener.get(), TIMEOUT)
        transport = await listener.wait_connected()
        payload = os.urandom(4 * 1024 * 1024)
        peer.send_frame(2, payload)
        echo = await peer.read_frame(TIMEOUT)
        assert echo.payload == payload
        assert reader_capacity(transport) > 4 * 1024 * 1024
        # The idle shrink comes after a second of quiet (picows._protocol._SHRINK_DELAY).
        await eventually(lambda: reader_capacity(transport) == 16 * 1024)
        # And the connection still works, growing again when needed.
        peer.send_frame(2, payload[:100_000])
        assert (await peer.read_frame(TIMEOUT)).payload == payload[:100_000]
        peer.abort()
    await guard.assert_clean()


async def test_a_peer_that_ignores_our_close_is_disconnected(
    guard: Guard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After our CLOSE, the TCP connection ends within the close timeout (issue 15.4)."""
    monkeypatch.setattr(picows._protocol, "CLOSE_TIMEOUT", 0.3)
    async with serve() as server:
        peer = await connect_raw_client(server.port)
        listener = await asyncio.wait_for(server.new_listener.get(), TIMEOUT)
        transport = await listener.wait_connected()
        started = asyncio.get_running_loop().time()
        transport.send_close(picows.WSCloseCode.GOING_AWAY, "bye")
        assert (await peer.expect_close(TIMEOUT)).close_code == 1001
        # The peer never answers and never closes: picows does, after 0.3 s.
        await listener.wait_disconnected(TIMEOUT)
        elapsed = asyncio.get_running_loop().time() - started
        assert 0.25 <= elapsed < 3, elapsed
        peer.abort()
    await guard.assert_clean()


async def test_a_failed_connection_reads_on_until_the_peer_closes(guard: Guard) -> None:
    """After failing the connection (7.1.7) picows half-closes and drops whatever still
    arrives: a peer that goes on sending reads the CLOSE and an EOF, not a reset that
    destroys them (closing a socket with unread input makes the kernel send one)."""
    async with serve() as server:
        peer = await connect_raw_client(server.port)
        listener = await asyncio.wait_for(server.new_listener.get(), TIMEOUT)
        await listener.wait_connected()
        peer.send_raw(b"\x82\x01x")  # unmasked, from a client: 5.1 fails the connection
        for _ in range(10):  # a peer slow to notice, still sending for a while
            # (paced well inside picows' 0.1 s of quiet, even on a loaded machine)
            await asyncio.sleep(0.01)
            peer.send_raw(b"\x00")
        assert (await peer.expect_close(TIMEOUT)).close_code == 1002
        assert await peer.read_until_eof(TIMEOUT) == []
        peer.close()
        await listener.wait_disconnected(TIMEOUT)
        assert listener.disconnected_calls == 1
    await guard.assert_clean()


async def test_a_failed_connection_ends_in_bounded_time_while_the_peer_sends(
    guard: Guard,
) -> None:
    """The wait for a failed connection's peer to stop sending has a bound: a peer that
    never stops is cut off within _FAIL_LINGER_TIMEOUT."""
    async with serve() as server:
        peer = await connect_raw_client(server.port)
        listener = await asyncio.wait_for(server.new_listener.get(), TIMEOUT)
        await listener.wait_connected()
        loop = asyncio.get_running_loop()
        started = loop.time()
        peer.send_raw(b"\x82\x01x")  # unmasked, from a client: 5.1 fails the connection
        disconnected = asyncio.ensure_future(listener.wait_disconnected(TIMEOUT))
        while not disconnected.done():  # a byte every 20 ms, until picows hangs up
            peer.send_raw(b"\x00")
            await asyncio.wait({disconnected}, timeout=0.02)
        await disconnected
        assert loop.time() - started < picows._protocol._FAIL_LINGER_TIMEOUT + 1
        assert listener.disconnected_calls == 1
        peer.abort()
    await guard.assert_clean()


# ---------------------------------------------------------------------------
# A peer that stops reading.

# Under 64 KiB: the 16-bit length form, a 4-byte header (8 with the client's mask key).
FRAME = 60_000


class Flooder(ObservedServer):
    """On connect, queues 64 KiB frames until picows reports backpressure."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = 0
        self.resumed = asyncio.Event()
        self.queued_frames = 0

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        super().on_ws_connected(transport)
        sock = transport.underlying_transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)

    def flood(self, transport: picows.WSTransport, limit: int = 2000) -> None:
        while not self.paused and self.queued_frames < limit:
            transport.send(picows.WSMsgType.BINARY, frame_payload(self.queued_frames))
            self.queued_frames += 1

    def pause_writing(self) -> None:
        self.paused += 1

    def resume_writing(self) -> None:
        self.resumed.set()


def frame_payload(index: int) -> bytes:
    return index.to_bytes(4, "big") * (FRAME // 4)


async def test_server_to_a_peer_that_stops_reading(guard: Guard) -> None:
    flooders: list[Flooder] = []

    def route(request: picows.WSUpgradeRequest) -> Flooder:
        flooders.append(Flooder())
        return flooders[-1]

    server = await picows.ws_create_server(route, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        peer = await connect_raw_client(port, rcvbuf=4096, stream_limit=2**16)
        listener = flooders[0]
        transport = await listener.wait_connected()
        initial = reader_capacity(transport)
        listener.flood(transport)
        # Backpressure is reported once asyncio holds more than its high-water mark.
        assert listener.paused == 1, listener.queued_frames
        underlying = transport.underlying_transport
        buffered = underlying.get_write_buffer_size()
        queued = listener.queued_frames * (FRAME + 4)  # 4-byte header per frame
        assert 0 < buffered <= queued
        # Queuing more adds exactly that much: picows keeps no copy of its own.
        transport.send(picows.WSMsgType.BINARY, frame_payload(listener.queued_frames))
        listener.queued_frames += 1
        assert underlying.get_write_buffer_size() == buffered + FRAME + 4
        assert reader_capacity(transport) == initial
        # The peer reads again: every frame arrives, whole and in order.
        for index in range(listener.queued_frames):
            frame = await peer.read_frame(TIMEOUT)
            assert (frame.opcode, frame.payload) == (2, frame_payload(index)), index
        await asyncio.wait_for(listener.resumed.wait(), TIMEOUT)
        assert underlying.get_write_buffer_size() == 0
        peer.send_close(1000)
        assert (await peer.expect_close(TIMEOUT)).close_code == 1000
        assert await peer.read_until_eof(TIMEOUT) == []
        peer.abort()
    finally:
        server.close()
        await server.wait_closed()
    await guard.assert_clean()


class PausingClient(ObservedClient):
    def __init__(self) -> None:
        super().__init__()
        self.paused = 0
        self.resumed = asyncio.Event()

    def pause_writing(self) -> None:
        self.paused += 1

    def resume_writing(self) -> None:
        self.resumed.set()


async def test_client_to_a_peer_that_stops_reading(guard: Guard) -> None:
    reading = asyncio.Event()
    received: list[bytes] = []
    expected_frames: list[int] = []

    async def slow_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(response_101(await read_request(reader)))
        await asyncio.wait_for(reading.wait(), TIMEOUT)
        peer = RawPeer(reader, writer, is_client=False)
        for _ in range(expected_frames[0]):
            frame = await peer.read_frame(TIMEOUT)
            assert frame.masked and frame.opcode == 2
            received.append(frame.payload)
        peer.send_close(1000)
        assert (await peer.expect_close(TIMEOUT)).close_code == 1000

    async with ScriptedServer(slow_reader, rcvbuf=4096) as raw:
        transport, client = await picows.ws_connect(PausingClient, raw.url)
        assert isinstance(client, PausingClient)
        sock = transport.underlying_transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
        count = 0
        while not client.paused and count < 2000:
            transport.send(picows.WSMsgType.BINARY, frame_payload(count))
            count += 1
        assert client.paused == 1
        underlying = transport.underlying_transport
        buffered = underlying.get_write_buffer_size()
        assert 0 < buffered <= count * (FRAME + 8)  # 4-byte header + 4-byte mask key
        transport.send(picows.WSMsgType.BINARY, frame_payload(count))
        count += 1
        assert underlying.get_write_buffer_size() == buffered + FRAME + 8
        assert reader_capacity(transport) == 16 * 1024
        expected_frames.append(count)
        reading.set()
        await asyncio.wait_for(client.resumed.wait(), TIMEOUT)
        await raw.finished()
        assert received == [frame_payload(i) for i in range(count)]
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
    await guard.assert_clean()


# ---------------------------------------------------------------------------
# Abrupt disconnects.


@pytest.mark.parametrize("how", ["reset", "fin"])
@pytest.mark.parametrize(
    "cut", ["header", "payload", "mask-key"], ids=["mid-header", "mid-payload", "mid-mask-key"]
)
async def test_server_survives_a_drop_in_the_middle_of_a_frame(
    guard: Guard, how: str, cut: str
) -> None:
    async with serve() as server:
        peer = await connect_raw_client(server.port)
        listener = await asyncio.wait_for(server.new_listener.get(), TIMEOUT)
        await listener.wait_connected()
        wire = peer.build(2, b"p" * 1000)
        part = {"header": wire[:3], "mask-key": wire[:6], "payload": wire[:500]}[cut]
        peer.send_raw(part)
        await peer.writer.drain()
        if how == "reset":
            peer.abort()
        else:
            peer.writer.write_eof()
        await listener.wait_disconnected()
        assert (listener.connected_calls, listener.disconnected_calls) == (1, 1)
        if how == "fin":
            # Nothing was delivered, so nothing echoed; the server just closes.
            assert await peer.read_until_eof(TIMEOUT) == []
            peer.abort()
        await assert_server_still_serves(server)
    await guard.assert_clean()


@pytest.mark.parametrize("how", ["reset", "fin"])
@pytest.mark.parametrize("sent", [10, "all"], ids=["partial-request", "whole-request"])
async def test_server_survives_a_drop_during_the_handshake(
    guard: Guard, how: str, sent: Any
) -> None:
    async with serve() as server:
        reader, writer = await open_raw(server.port)
        request = upgrade_request()
        writer.write(request if sent == "all" else request[:sent])
        await writer.drain()
        if how == "reset":
            writer.transport.abort()
        else:
            writer.write_eof()
            await read_to_eof(reader, TIMEOUT)
            writer.transport.abort()
        await guard.wait_all_closed()
        # on_ws_disconnected only for a connection whose handshake completed.
        for listener in server.listeners:
            assert listener.disconnected_calls == listener.connected_calls
        if sent != "all":
            assert server.listeners == []
        await assert_server_still_serves(server)
    await guard.assert_clean()


@pytest.mark.parametrize("how", ["reset", "fin"])
async def test_client_peer_drops_in_the_middle_of_a_frame(guard: Guard, how: str) -> None:
    async def drop_mid_frame(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(response_101(await read_request(reader)))
        writer.write(struct.pack("!BB", 0x82, 100) + b"half")
        await writer.drain()
        if how == "fin":
            writer.write_eof()
            await read_to_eof(reader, TIMEOUT)

    async with ScriptedServer(drop_mid_frame) as raw:
        transport, client = await picows.ws_connect(ObservedClient, raw.url)
        assert isinstance(client, ObservedClient)
        # A peer drop is not an error of ours: wait_disconnected returns normally.
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
        assert (client.connected_calls, client.disconnected_calls) == (1, 1)
        assert transport.close_handshake is None
        await raw.finished()
    await guard.assert_clean()


@pytest.mark.parametrize("how", ["reset", "fin"])
@pytest.mark.parametrize("sent", [0, 20], ids=["nothing", "partial-101"])
async def test_client_peer_drops_during_the_handshake(guard: Guard, how: str, sent: int) -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        key = await read_request(reader)
        writer.write(response_101(key)[:sent])
        await writer.drain()
        if how == "fin":
            writer.write_eof()
            await read_to_eof(reader, TIMEOUT)

    created: list[ObservedClient] = []

    def factory() -> ObservedClient:
        created.append(ObservedClient())
        return created[-1]

    async with ScriptedServer(drop) as raw:
        # Never a silent half-success: a WSHandshakeError subclass or ConnectionResetError.
        with pytest.raises((picows.WSHandshakeError, ConnectionResetError)):
            await picows.ws_connect(factory, raw.url)
        assert created == []  # no listener: on_ws_disconnected cannot be called
        await raw.finished()
    await guard.assert_clean()


# ---------------------------------------------------------------------------
# A flood of PINGs.

PINGS = 10_000


@pytest.mark.parametrize("side", ["server", "client"])
async def test_ping_flood_is_answered_in_order_with_bounded_memory(guard: Guard, side: str) -> None:
    async def flood(peer: RawPeer, transport: picows.WSTransport) -> None:
        masked = peer.is_client
        burst = bytearray()
        for i in range(PINGS):
            payload = b"%08d" % i
            if masked:
                key = os.urandom(4)
                burst += struct.pack("!BB", 0x89, 0x80 | 8) + key + unmask(payload, key)
            else:
                burst += struct.pack("!BB", 0x89, 8) + payload
        peer.send_raw(bytes(burst))  # one burst of 100+ KB
        for i in range(PINGS):
            frame = await peer.read_frame(TIMEOUT)
            assert (frame.opcode, frame.payload) == (10, b"%08d" % i)
        # Every PONG was small and written as it was due: nothing piles up.
        assert reader_capacity(transport) <= 64 * 1024
        assert transport.underlying_transport.get_write_buffer_size() == 0
        peer.send_close(1000)
        assert (await peer.expect_close(TIMEOUT)).close_code == 1000

    if side == "server":
        async with serve() as server:
            peer = await connect_raw_client(server.port, stream_limit=2**16)
            listener = await asyncio.wait_for(server.new_listener.get(), TIMEOUT)
            transport = await listener.wait_connected()
            await flood(peer, transport)
            assert await peer.read_until_eof(TIMEOUT) == []
            await listener.wait_disconnected()
            peer.abort()
    else:
        transports: list[picows.WSTransport] = []

        async def flooding_server(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            writer.write(response_101(await read_request(reader)))
            await asyncio.wait_for(connected.wait(), TIMEOUT)
            await flood(RawPeer(reader, writer, is_client=False), transports[0])
            writer.write_eof()
            await read_to_eof(reader, TIMEOUT)

        connected = asyncio.Event()
        async with ScriptedServer(flooding_server) as raw:
            transport, _ = await picows.ws_connect(ObservedClient, raw.url)
            transports.append(transport)
            connected.set()
            await raw.finished()
            await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
    await guard.assert_clean()
