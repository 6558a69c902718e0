"""picows.websockets behaviours that upstream's tests leave out, over real sockets:
flow control (max_queue, write_limit), keepalive, the RFC checks of _messages,
closing, reconnection, TLS and a proxy."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest

import picows
import picows.websockets as websockets
from picows import WSMsgType

TIMEOUT = 10


def url_of(server: Any, scheme: str = "ws") -> str:
    return f"{scheme}://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


async def echo(connection: Any) -> None:
    async for message in connection:
        await connection.send(message)


async def test_max_queue_pauses_reading_and_the_sender_feels_it() -> None:
    """Past max_queue frames the client stops reading; TCP pushes back until the
    server's write buffer passes its high-water mark and its send() waits."""
    server_paused = asyncio.Event()
    size, most = 64 * 1024, 2000  # 128 MiB at most: more than any socket buffers

    async def flood(connection: Any) -> None:
        original = connection.pause_writing

        def pause_writing() -> None:
            original()
            server_paused.set()

        connection.pause_writing = pause_writing
        sent = 0
        while not server_paused.is_set() and sent < most:
            await connection.send(sent.to_bytes(4, "big") * (size // 4))
            sent += 1
            await asyncio.sleep(0)  # a turn of the loop, so the client reads meanwhile
        await connection.send(b"end")
        await connection.wait_closed()

    async with websockets.serve(flood, "127.0.0.1", 0, compression=None) as server:
        async with websockets.connect(url_of(server), compression=None, max_queue=(4, 1)) as ws:
            await asyncio.wait_for(server_paused.wait(), TIMEOUT)
            assert ws._reading_paused
            assert 4 < len(ws._queue) <= 4 + 4  # the high mark, plus one read's frames
            received = 0
            while (message := await asyncio.wait_for(ws.recv(), TIMEOUT)) != b"end":
                assert message == received.to_bytes(4, "big") * (size // 4)  # none lost
                received += 1
            assert received > 4 and not ws._reading_paused


async def test_write_limit_sets_the_transport_watermarks() -> None:
    async with websockets.serve(echo, "127.0.0.1", 0) as server:
        async with websockets.connect(url_of(server), write_limit=(4096, 1024)) as ws:
            assert ws.transport.underlying_transport.get_write_buffer_limits() == (1024, 4096)


class NoPong(picows.WSListener):
    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        pass  # never answers PINGs (auto-pong is off) nor CLOSE


@contextlib.asynccontextmanager
async def core_server(listener: Any, **kwargs: Any) -> AsyncIterator[str]:
    server = await picows.ws_create_server(listener, "127.0.0.1", 0, **kwargs)
    try:
        yield url_of(server)
    finally:
        server.close()
        await server.wait_closed()


async def test_keepalive_timeout_closes_1011() -> None:
    async with core_server(lambda _: NoPong(), enable_auto_pong=False) as url:
        ws = await websockets.connect(
            url, ping_interval=0.05, ping_timeout=0.05, close_timeout=0.5, compression=None
        )
        with pytest.raises(websockets.ConnectionClosedError) as info:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert (info.value.sent.code, info.value.sent.reason) == (1011, "keepalive ping timeout")
        assert ws.state is websockets.State.CLOSED


class SendsOnConnect(picows.WSListener):
    """Negotiates permessage-deflate (see the factory) and sends ``frames``."""

    def __init__(self, frames: list[tuple[int, bytes, dict[str, bool]]]) -> None:
        self.frames = frames

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        for msg_type, payload, bits in self.frames:
            transport.send(msg_type, payload, **bits)

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


def deflate_route(frames: list[tuple[int, bytes, dict[str, bool]]]) -> Any:
    def route(request: picows.WSUpgradeRequest) -> Any:
        response = picows.WSUpgradeResponse.create_101_response(
            {"Sec-WebSocket-Extensions": "permessage-deflate"}
        )
        return picows.WSUpgradeResponseWithListener(response, SendsOnConnect(frames))

    return route


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        # 5.2: RSV2/RSV3 are never negotiated, even with permessage-deflate.
        ([(WSMsgType.TEXT, b"x", {"rsv2": True})], 1002),
        ([(WSMsgType.BINARY, b"x", {"rsv3": True})], 1002),
        # RFC 7692 6.1: RSV1 on a continuation frame.
        ([(WSMsgType.TEXT, b"", {"fin": False}), (0, b"", {"rsv1": True})], 1002),
        # 5.4: a new message inside a fragmented one.
        ([(WSMsgType.TEXT, b"a", {"fin": False}), (WSMsgType.TEXT, b"b", {})], 1002),
        # 8.1: invalid UTF-8 fails before the message is complete.
        ([(WSMsgType.TEXT, b"ok", {"fin": False}), (0, b"\xff", {"fin": False})], 1007),
        # RFC 7692 7.2.2: compressed data that doesn't inflate.
        ([(WSMsgType.BINARY, b"not deflate data", {"rsv1": True})], 1002),
    ],
)
async def test_invalid_frames_fail_the_connection(frames: Any, code: int) -> None:
    async with core_server(deflate_route(frames)) as url:
        async with websockets.connect(url, ping_interval=None) as ws:
            with pytest.raises(websockets.ConnectionClosedError) as info:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert info.value.sent.code == code


async def test_uncompressed_message_over_max_size_is_1009() -> None:
    async with websockets.serve(echo, "127.0.0.1", 0, max_size=1000) as server:
        async with websockets.connect(url_of(server)) as ws:
            await ws.send([b"x" * 600, b"y" * 600])  # each frame fits, the message doesn't
            with pytest.raises(websockets.ConnectionClosedError) as info:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert info.value.rcvd.code == 1009


async def test_messages_received_before_close_are_still_returned() -> None:
    async def two_then_close(connection: Any) -> None:
        await connection.send("one")
        await connection.send(b"two")

    async with websockets.serve(two_then_close, "127.0.0.1", 0) as server:
        async with websockets.connect(url_of(server)) as ws:
            await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
            assert await ws.recv() == "one"
            assert await ws.recv(decode=True) == "two"
            with pytest.raises(websockets.ConnectionClosedOK):
                await ws.recv()
            assert ws.close_code == 1000


async def test_server_close_and_handler_errors() -> None:
    async def fails(connection: Any) -> None:
        await connection.recv()
        raise RuntimeError("boom")

    async with websockets.serve(fails, "127.0.0.1", 0) as server:
        async with websockets.connect(url_of(server)) as ws:
            await ws.send("go")
            with pytest.raises(websockets.ConnectionClosedError) as info:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert info.value.rcvd.code == 1011


async def test_client_exception_in_async_with_closes_1011() -> None:
    closes: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(connection: Any) -> None:
        try:
            await connection.recv()
        except websockets.ConnectionClosed as exc:
            closes.put_nowait(exc.rcvd.code)

    async with websockets.serve(handler, "127.0.0.1", 0) as server:
        with pytest.raises(ZeroDivisionError):
            async with websockets.connect(url_of(server)):
                1 / 0  # noqa: B018
        assert await asyncio.wait_for(closes.get(), TIMEOUT) == 1011


async def test_async_for_connect_reconnects_after_a_closed_connection() -> None:
    served = 0

    async def first_one_closes(connection: Any) -> None:
        nonlocal served
        served += 1
        if served == 1:
            await connection.close(1012, "restart")
        else:
            await echo(connection)

    async with websockets.serve(first_one_closes, "127.0.0.1", 0) as server:
        attempts = 0
        async for ws in websockets.connect(url_of(server)):
            attempts += 1
            try:
                await ws.send("ping")
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "ping"
                break
            except websockets.ConnectionClosed:
                continue
        assert attempts == 2


async def test_tls(server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext) -> None:
    async with websockets.serve(echo, "127.0.0.1", 0, ssl=server_ssl_context) as server:
        async with websockets.connect(url_of(server, "wss"), ssl=client_ssl_context) as ws:
            assert ws.transport.is_secure
            await ws.send("secret " * 100)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "secret " * 100


async def test_http_proxy_and_credentials_in_uri() -> None:
    """Through a CONNECT proxy (ours, minimal), with Basic auth from the URI."""
    connects: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        connects.append(head.split(b"\r\n")[0])
        host, port = head.split()[1].decode().rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def whoami(connection: Any) -> None:
        await connection.send(connection.username)

    auth = websockets.basic_auth(credentials=("alice", "s3cret"))
    proxy_server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    try:
        async with websockets.serve(whoami, "127.0.0.1", 0, process_request=auth) as server:
            port = server.sockets[0].getsockname()[1]
            proxy_url = f"http://127.0.0.1:{proxy_server.sockets[0].getsockname()[1]}"
            url = f"ws://alice:s3cret@127.0.0.1:{port}/"
            async with websockets.connect(url, proxy=proxy_url) as ws:
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "alice"
            assert connects == [f"CONNECT 127.0.0.1:{port} HTTP/1.1".encode()]
    finally:
        proxy_server.close()
        await proxy_server.wait_closed()


async def test_ping_latency_and_broadcast_to_many() -> None:
    connected: list[Any] = []
    ready = asyncio.Event()

    async def hold(connection: Any) -> None:
        connected.append(connection)
        if len(connected) == 3:
            ready.set()
        await connection.wait_closed()

    async with websockets.serve(hold, "127.0.0.1", 0) as server:
        clients = [await websockets.connect(url_of(server)) for _ in range(3)]
        try:
            await asyncio.wait_for(ready.wait(), TIMEOUT)
            websockets.broadcast(server.connections, "news")
            for ws in clients:
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "news"
                latency = await asyncio.wait_for(await ws.ping(), TIMEOUT)
                assert latency >= 0 and ws.latency == latency
        finally:
            for ws in clients:
                await ws.close()


async def test_system_proxy_settings_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """proxy=True (the default) reads the environment, and honours no_proxy."""
    from picows.websockets.asyncio.client import _process_proxy

    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    monkeypatch.setenv("https_proxy", "http://secure-proxy.invalid:3128")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    assert _process_proxy(True, False, "example.com", 80) == "http://proxy.invalid:3128"
    assert _process_proxy(True, True, "example.com", 443) == "http://secure-proxy.invalid:3128"
    assert _process_proxy(True, False, "127.0.0.1", 80) is None
    async with websockets.serve(echo, "127.0.0.1", 0) as server:  # no_proxy: direct
        async with websockets.connect(url_of(server)) as ws:
            await ws.send("direct")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "direct"
