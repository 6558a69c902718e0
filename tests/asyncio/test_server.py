"""``ws_create_server`` over real loopback sockets, plain TCP and TLS.

Clients are picows, raw asyncio streams that send exact HTTP bytes, and the `websockets`
library.  Nothing is mocked and nothing waits on a sleep: every wait is on a future,
queue or stream read, bounded by ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Callable, Optional

import pytest

import picows
from helpers import (
    CollectingListener,
    EchoListener,
    NetMode,
    RawHTTPResponse,
    close_server,
    read_to_eof,
    serve_picows,
    server_port,
    ws_accept,
)
from picows import WSCloseCode, WSMsgType

TIMEOUT = 5

Frame = tuple[WSMsgType, bytes, int]


# ---------------------------------------------------------------------------
# Listeners and helpers


class ServerRecorder(picows.WSListener):
    """Server-side: echoes data, records frames and its transport, completes the closing
    handshake; TEXT "close-me" makes it start one with code 4000."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport: asyncio.Future[picows.WSTransport] = loop.create_future()
        self.frames: asyncio.Queue[Frame] = asyncio.Queue()
        self.disconnected: asyncio.Future[None] = loop.create_future()

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self.transport.set_result(transport)

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        payload = frame.get_payload_as_bytes()
        self.frames.put_nowait((frame.msg_type, payload, frame.fin))
        if frame.msg_type == WSMsgType.CLOSE:
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type == WSMsgType.TEXT and payload == b"close-me":
            transport.send_close(4000, "server bye")
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            transport.send(frame.msg_type, payload, bool(frame.fin))

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        self.disconnected.set_result(None)

    async def next(self) -> Frame:
        return await asyncio.wait_for(self.frames.get(), TIMEOUT)


class Recorders:
    """A server factory that hands out a new ServerRecorder per connection."""

    def __init__(self) -> None:
        self.requests: list[picows.WSUpgradeRequest] = []
        self.listeners: asyncio.Queue[ServerRecorder] = asyncio.Queue()

    def __call__(self, request: picows.WSUpgradeRequest) -> picows.WSListener:
        self.requests.append(request)
        listener = ServerRecorder()
        self.listeners.put_nowait(listener)
        return listener

    async def next(self) -> ServerRecorder:
        return await asyncio.wait_for(self.listeners.get(), TIMEOUT)


async def connect(
    factory: Any, url: str, **kwargs: Any
) -> tuple[picows.WSTransport, picows.WSListener]:
    """``picows.ws_connect``, bounded so that a misbehaving connect fails instead of hanging."""
    return await asyncio.wait_for(picows.ws_connect(factory, url, **kwargs), TIMEOUT)


async def close_client(transport: picows.WSTransport) -> None:
    transport.send_close(WSCloseCode.OK)
    transport.disconnect()
    await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)


def close_code(payload: bytes) -> int:
    return int.from_bytes(payload[:2], "big")


async def next_close(client: CollectingListener) -> tuple[int, bytes]:
    """Skips data frames up to the peer's CLOSE; returns its code and reason."""
    while True:
        msg_type, payload, _ = await client.next()
        if msg_type == WSMsgType.CLOSE:
            return close_code(payload), payload[2:]


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def upgrade_request(
    path: str = "/",
    *,
    key: Optional[str] = None,
    drop: Sequence[str] = (),
    override: Optional[dict[str, str]] = None,
    method: str = "GET",
    extra: Sequence[tuple[str, str]] = (),
) -> bytes:
    """A complete upgrade request; ``drop``/``override`` change the standard headers."""
    headers = {
        "Host": "127.0.0.1",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key or new_key(),
        "Sec-WebSocket-Version": "13",
    }
    headers.update(override or {})
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{n}: {v}" for n, v in headers.items() if n not in drop]
    lines += [f"{n}: {v}" for n, v in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@contextlib.asynccontextmanager
async def raw_connection(
    port: int, tls: Optional[ssl.SSLContext] = None
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=tls), TIMEOUT
    )
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), TIMEOUT)


async def exchange(
    port: int, request: bytes, tls: Optional[ssl.SSLContext] = None
) -> tuple[bytes, float]:
    """Sends ``request``, reads until the server closes; returns (bytes, seconds to close)."""
    async with raw_connection(port, tls) as (reader, writer):
        writer.write(request)
        started = time.monotonic()
        data = await read_to_eof(reader, TIMEOUT)
        return data, time.monotonic() - started


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


async def read_101(reader: asyncio.StreamReader) -> RawHTTPResponse:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    return RawHTTPResponse(head)


# ---------------------------------------------------------------------------
# Router semantics


async def test_listener_gets_standard_101(net_mode: NetMode) -> None:
    recorders = Recorders()
    async with serve_picows(recorders, net_mode) as (_, base):
        transport, client = await connect(
            CollectingListener, f"{base}/ws", **net_mode.client_kwargs
        )
        assert isinstance(client, CollectingListener)
        assert transport.response.status == 101
        assert transport.response.headers["Upgrade"].lower() == "websocket"
        server = await recorders.next()
        transport.send(WSMsgType.TEXT, "hi")
        assert await server.next() == (WSMsgType.TEXT, b"hi", 1)
        assert await client.next() == (WSMsgType.TEXT, b"hi", 1)
        await close_client(transport)
        await asyncio.wait_for(server.disconnected, TIMEOUT)


async def test_raw_101_response_layout() -> None:
    key = new_key()
    async with serve_picows(lambda r: EchoListener()) as (_, base):
        async with raw_connection(port_of(base)) as (reader, writer):
            writer.write(upgrade_request(key=key))
            response = await read_101(reader)
    assert response.status_line.startswith("HTTP/1.1 101 ")
    assert response.headers["Sec-WebSocket-Accept"] == ws_accept(key)
    assert response.headers["Connection"].lower() == "upgrade"
    assert response.headers["Upgrade"].lower() == "websocket"
    assert "Content-Length" not in response.headers
    # The core never negotiates extensions or subprotocols.
    assert "Sec-WebSocket-Extensions" not in response.headers
    assert "Sec-WebSocket-Protocol" not in response.headers


async def test_custom_101_with_extra_header(net_mode: NetMode) -> None:
    listener = ServerRecorder()

    def factory(request: picows.WSUpgradeRequest) -> Any:
        response = picows.WSUpgradeResponse.create_101_response(
            extra_headers={"X-Custom": "custom value", "Set-Cookie": "session=1"}
        )
        return picows.WSUpgradeResponseWithListener(response, listener)

    async with serve_picows(factory, net_mode) as (_, base):
        transport, _ = await connect(CollectingListener, f"{base}/", **net_mode.client_kwargs)
        assert transport.response.status == 101
        assert transport.response.headers["X-Custom"] == "custom value"
        assert transport.response.headers["Set-Cookie"] == "session=1"
        server_transport = await asyncio.wait_for(listener.transport, TIMEOUT)
        assert server_transport.response.headers["X-Custom"] == "custom value"
        await close_client(transport)


async def test_factory_returning_none_sends_404(net_mode: NetMode) -> None:
    paths: list[bytes] = []

    def factory(request: picows.WSUpgradeRequest) -> None:
        paths.append(request.path)
        return None

    async with serve_picows(factory, net_mode) as (_, base):
        data, _ = await exchange(port_of(base), upgrade_request("/nope"), net_mode.client_ssl)
        with pytest.raises(picows.WSInvalidStatusError) as info:
            await connect(CollectingListener, f"{base}/nope", **net_mode.client_kwargs)
    response = RawHTTPResponse(data)  # read to EOF: the server closed the connection
    assert response.status == 404
    assert response.body == b"404 Not Found"
    assert response.headers.getall("Connection") == ["close"]
    assert response.headers["Content-Length"] == str(len(b"404 Not Found"))
    assert paths == [b"/nope", b"/nope"]
    assert info.value.response is not None
    assert info.value.response.status == 404
    assert info.value.response.body == b"404 Not Found"


async def test_factory_raising_sends_500_with_message() -> None:
    def factory(request: picows.WSUpgradeRequest) -> picows.WSListener:
        raise ValueError("router exploded")

    async with serve_picows(factory) as (_, base):
        data, _ = await exchange(port_of(base), upgrade_request())
    response = RawHTTPResponse(data)
    assert response.status == 500
    assert response.body == b"router exploded"
    assert response.headers.getall("Connection") == ["close"]


@pytest.mark.parametrize(
    "wrong", [42, "listener", CollectingListener], ids=["int", "str", "listener-class"]
)
async def test_factory_returning_wrong_type_sends_500(wrong: Any) -> None:
    async with serve_picows(lambda r: wrong) as (_, base):
        data, _ = await exchange(port_of(base), upgrade_request())
    response = RawHTTPResponse(data)
    assert response.status == 500
    assert response.headers.getall("Connection") == ["close"]
    assert b"101" not in data.split(b"\r\n", 1)[0]


async def test_custom_error_response_forces_connection_close() -> None:
    def factory(request: picows.WSUpgradeRequest) -> Any:
        response = picows.WSUpgradeResponse.create_error_response(
            403, b"go away", extra_headers=[("Connection", "keep-alive"), ("X-Why", "policy")]
        )
        return picows.WSUpgradeResponseWithListener(response, None)

    async with serve_picows(factory) as (_, base):
        data, _ = await exchange(port_of(base), upgrade_request())
        with pytest.raises(picows.WSInvalidStatusError) as info:
            await connect(CollectingListener, f"{base}/")
    response = RawHTTPResponse(data)
    assert response.status == 403
    assert response.body == b"go away"
    assert response.headers.getall("Connection") == ["close"]
    assert response.headers["X-Why"] == "policy"
    assert info.value.response is not None
    assert info.value.response.status == 403
    assert info.value.response.body == b"go away"


async def test_health_check_and_websocket_on_one_port(net_mode: NetMode) -> None:
    recorders = Recorders()

    def factory(request: picows.WSUpgradeRequest) -> Any:
        if request.path == b"/health":
            response = picows.WSUpgradeResponse.create_ok_response(b"healthy\n")
            return picows.WSUpgradeResponseWithListener(response, None)
        return recorders(request)

    async with serve_picows(factory, net_mode) as (_, base):
        health = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: probe\r\n\r\n"
        data, _ = await exchange(port_of(base), health, net_mode.client_ssl)
        response = RawHTTPResponse(data)
        assert response.status == 200
        assert response.body == b"healthy\n"
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert response.headers["Content-Length"] == "8"
        assert response.headers.getall("Connection") == ["close"]
        # The same port still upgrades websocket requests.
        transport, client = await connect(
            CollectingListener, f"{base}/ws", **net_mode.client_kwargs
        )
        assert isinstance(client, CollectingListener)
        transport.send(WSMsgType.TEXT, "ws works")
        assert await client.next() == (WSMsgType.TEXT, b"ws works", 1)
        await close_client(transport)
    assert [r.path for r in recorders.requests] == [b"/ws"]


# ---------------------------------------------------------------------------
# Request validation


@pytest.mark.parametrize(
    ("request_bytes", "reason"),
    [
        (upgrade_request(drop=["Upgrade"]), b"Upgrade"),
        (upgrade_request(override={"Upgrade": "h2c"}), b"Upgrade"),
        (upgrade_request(drop=["Connection"]), b"Connection"),
        (upgrade_request(override={"Connection": "keep-alive"}), b"Connection"),
        (upgrade_request(override={"Sec-WebSocket-Key": "not-a-key"}), b"Sec-WebSocket-Key"),
        (upgrade_request(key=base64.b64encode(b"short").decode()), b"Sec-WebSocket-Key"),
        (upgrade_request(drop=["Sec-WebSocket-Key"]), b"Sec-WebSocket-Key"),
        (upgrade_request(drop=["Sec-WebSocket-Version"]), b"Sec-WebSocket-Version"),
    ],
    ids=[
        "no-upgrade",
        "wrong-upgrade",
        "no-connection",
        "connection-without-upgrade",
        "bad-key",
        "short-key",
        "no-key",
        "no-version",
    ],
)
async def test_invalid_upgrade_request_gets_400(request_bytes: bytes, reason: bytes) -> None:
    paths: list[bytes] = []

    def factory(request: picows.WSUpgradeRequest) -> picows.WSListener:
        paths.append(request.path)  # the factory sees the request before validation
        return EchoListener()

    async with serve_picows(factory) as (_, base):
        data, _ = await exchange(port_of(base), request_bytes)
    response = RawHTTPResponse(data)
    assert response.status == 400
    assert reason.lower() in response.body.lower()
    assert response.headers.getall("Connection") == ["close"]
    assert response.headers["Content-Length"] == str(len(response.body))
    assert paths == [b"/"]


@pytest.mark.parametrize(
    "request_bytes",
    [
        upgrade_request(method="POST"),
        b"GET / HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        upgrade_request(extra=[("Transfer-Encoding", "chunked")]),
    ],
    ids=["post", "http10", "garbage", "transfer-encoding"],
)
async def test_malformed_request_gets_400_without_routing(request_bytes: bytes) -> None:
    paths: list[bytes] = []

    def factory(request: picows.WSUpgradeRequest) -> picows.WSListener:
        paths.append(request.path)
        return EchoListener()

    async with serve_picows(factory) as (_, base):
        data, _ = await exchange(port_of(base), request_bytes)
    response = RawHTTPResponse(data)
    assert response.status == 400
    assert response.body
    assert response.headers.getall("Connection") == ["close"]
    assert paths == []


@pytest.mark.parametrize("version", ["8", "7", "14"])
async def test_other_websocket_version_gets_426(version: str) -> None:
    async with serve_picows(lambda r: EchoListener()) as (_, base):
        request = upgrade_request(override={"Sec-WebSocket-Version": version})
        data, _ = await exchange(port_of(base), request)
    response = RawHTTPResponse(data)
    assert response.status == 426
    assert response.headers.getall("Sec-WebSocket-Version") == ["13"]
    assert "close" in response.headers["Connection"].lower()


@pytest.mark.parametrize(
    ("connection", "upgrade"),
    [("keep-alive, Upgrade", "websocket"), ("Upgrade", "WebSocket"), ("upgrade,keep-alive", "ws")],
    ids=["firefox", "upgrade-case", "no-space"],
)
async def test_connection_token_list_accepted(connection: str, upgrade: str) -> None:
    key = new_key()
    listener = ServerRecorder()
    overrides = {"Connection": connection}
    if upgrade != "ws":
        overrides["Upgrade"] = upgrade
    async with serve_picows(lambda r: listener) as (_, base):
        async with raw_connection(port_of(base)) as (reader, writer):
            writer.write(upgrade_request(key=key, override=overrides))
            response = await read_101(reader)
            assert response.status == 101
            assert response.headers["Sec-WebSocket-Accept"] == ws_accept(key)
            # And frames flow: a masked TEXT "hey" (mask 1,2,3,4) is echoed unmasked.
            mask = b"\x01\x02\x03\x04"
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(b"hey"))
            writer.write(b"\x81\x83" + mask + masked)
            assert await asyncio.wait_for(reader.readexactly(5), TIMEOUT) == b"\x81\x03hey"
            assert await listener.next() == (WSMsgType.TEXT, b"hey", 1)


async def test_request_in_single_bytes_with_frames_in_the_same_write() -> None:
    listener = ServerRecorder()
    key = new_key()
    request = upgrade_request("/slow?q=1", key=key, extra=[("X-Pad", "p" * 5000)])
    mask = b"\x0a\x0b\x0c\x0d"
    payload = os.urandom(70000)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    frame = b"\x82\xff" + len(payload).to_bytes(8, "big") + mask + masked
    async with serve_picows(lambda r: listener) as (_, base):
        async with raw_connection(port_of(base)) as (reader, writer):
            for i in range(100):
                writer.write(request[i : i + 1])
                await writer.drain()
            writer.write(request[100:] + frame)
            response = await read_101(reader)
            assert response.headers["Sec-WebSocket-Accept"] == ws_accept(key)
            assert await listener.next() == (WSMsgType.BINARY, payload, 1)
            server_t = await asyncio.wait_for(listener.transport, TIMEOUT)
            assert server_t.request.path == b"/slow?q=1"
            assert server_t.request.headers["X-Pad"] == "p" * 5000


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n",
        upgrade_request(extra=[(f"X-H{i}", "v") for i in range(129)]),
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Filler: " + b"b" * 20000,  # never ends
    ],
    ids=["17k-header", "129-headers", "unterminated-17k"],
)
async def test_oversized_request_is_closed_without_answer(request_bytes: bytes) -> None:
    paths: list[bytes] = []

    def factory(request: picows.WSUpgradeRequest) -> picows.WSListener:
        paths.append(request.path)
        return EchoListener()

    async with serve_picows(factory) as (_, base):
        data, _ = await exchange(port_of(base), request_bytes)
    assert data == b""
    assert paths == []


@pytest.mark.parametrize(
    ("request_bytes", "answer"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n", b""),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"b" * 20000, b""),
        # A 404, with 256 KiB more that the client sent before reading it.
        (upgrade_request() + b"x" * 262144, b"HTTP/1.1 404 Not Found\r\n"),
    ],
    ids=["oversized", "unterminated", "404-then-more-data"],
)
async def test_refused_request_ends_with_a_clean_eof(request_bytes: bytes, answer: bytes) -> None:
    """Closing with unread input would send a reset, which can destroy the answer: the
    server half-closes and drops what still comes (RFC 9112 9.6), as upstream does."""
    async with serve_picows(lambda request: None) as (_, base):
        async with raw_connection(port_of(base)) as (reader, writer):
            writer.write(request_bytes)
            # read() to EOF raises ConnectionResetError if the server reset.
            data = await asyncio.wait_for(reader.read(), TIMEOUT)
    assert data.startswith(answer)
    if answer:
        assert data.endswith(b"404 Not Found")


# ---------------------------------------------------------------------------
# Server handshake timeout


async def test_handshake_timeout_closes_silent_client() -> None:
    async with serve_picows(lambda r: EchoListener(), websocket_handshake_timeout=0.2) as (
        _,
        base,
    ):
        started = time.monotonic()
        async with raw_connection(port_of(base)) as (reader, _):
            data = await read_to_eof(reader, TIMEOUT)
        elapsed = time.monotonic() - started
    assert data == b""
    assert 0.15 <= elapsed < 1.5


async def test_handshake_timeout_closes_client_with_partial_request() -> None:
    async with serve_picows(lambda r: EchoListener(), websocket_handshake_timeout=0.2) as (
        _,
        base,
    ):
        data, elapsed = await exchange(port_of(base), upgrade_request()[:30])
    assert data == b""
    assert elapsed < 1.5


async def test_handshake_timeout_does_not_affect_open_websocket() -> None:
    async with serve_picows(lambda r: EchoListener(), websocket_handshake_timeout=0.2) as (
        _,
        base,
    ):
        transport, client = await connect(CollectingListener, f"{base}/")
        assert isinstance(client, CollectingListener)
        # Well past the handshake timeout, the connection is still up.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(transport.wait_disconnected(), 0.4)
        transport.send(WSMsgType.TEXT, "alive")
        assert await client.next() == (WSMsgType.TEXT, b"alive", 1)
        await close_client(transport)


async def test_handshake_timeout_none_waits_for_slow_client() -> None:
    async with serve_picows(lambda r: EchoListener(), websocket_handshake_timeout=None) as (
        _,
        base,
    ):
        async with raw_connection(port_of(base)) as (reader, writer):
            # Nothing is sent for a while, and the server does not give up.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(reader.read(1), 0.4)
            writer.write(upgrade_request())
            response = await read_101(reader)
            assert response.status == 101


# ---------------------------------------------------------------------------
# host / port forms and create_server kwargs


async def _check_echo(url: str, **kwargs: Any) -> None:
    transport, client = await connect(CollectingListener, url, **kwargs)
    assert isinstance(client, CollectingListener)
    transport.send(WSMsgType.TEXT, "echo")
    assert await client.next() == (WSMsgType.TEXT, b"echo", 1)
    await close_client(transport)


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", ["127.0.0.1"], ("127.0.0.1",), None, ""],
    ids=["str", "list", "tuple", "none", "empty"],
)
async def test_host_forms(host: Any) -> None:
    server = await picows.ws_create_server(lambda r: EchoListener(), host, 0)
    try:
        assert server.sockets
        port = server_port(server)
        assert port != 0
        families = {sock.family for sock in server.sockets}
        assert socket.AF_INET in families
        if host in (None, ""):
            addresses = {sock.getsockname()[0] for sock in server.sockets}
            assert addresses & {"0.0.0.0", "::"}
        await _check_echo(f"ws://127.0.0.1:{port}/")
    finally:
        await close_server(server)


async def test_port_none_picks_a_free_port() -> None:
    server = await picows.ws_create_server(lambda r: EchoListener(), "127.0.0.1")
    try:
        port = server_port(server)
        assert port > 0
        await _check_echo(f"ws://127.0.0.1:{port}/")
    finally:
        await close_server(server)


async def test_ssl_kwarg(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    async with serve_picows(lambda r: EchoListener(), ssl=server_ssl_context) as (_, base):
        await _check_echo(f"wss://127.0.0.1:{port_of(base)}/", ssl_context=client_ssl_context)
        # A plain-TCP client cannot speak to the TLS port.
        with pytest.raises((picows.WSHandshakeError, ConnectionError, asyncio.TimeoutError)):
            await connect(
                CollectingListener,
                f"ws://127.0.0.1:{port_of(base)}/",
                websocket_handshake_timeout=1,
            )


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT")
async def test_reuse_port_kwarg() -> None:
    first = await picows.ws_create_server(lambda r: EchoListener(), "127.0.0.1", 0, reuse_port=True)
    try:
        port = server_port(first)
        assert first.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        second = await picows.ws_create_server(
            lambda r: EchoListener(), "127.0.0.1", port, reuse_port=True
        )
        try:
            assert server_port(second) == port
            for _ in range(3):
                await _check_echo(f"ws://127.0.0.1:{port}/")
        finally:
            await close_server(second)
    finally:
        await close_server(first)


async def test_create_server_kwargs_are_forwarded() -> None:
    # start_serving=False is a create_server option: nothing is accepted until asked.
    server = await picows.ws_create_server(
        lambda r: EchoListener(), "127.0.0.1", 0, start_serving=False
    )
    try:
        assert not server.is_serving()
        await server.start_serving()
        await _check_echo(f"ws://127.0.0.1:{server_port(server)}/")
    finally:
        await close_server(server)


# ---------------------------------------------------------------------------
# Exceptions in server-side callbacks


class FailingOnConnect(picows.WSListener):
    error = RuntimeError("on_ws_connected failed on purpose")

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        raise self.error


class FailingOnFrame(ServerRecorder):
    error = RuntimeError("on_ws_frame failed on purpose")

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT and frame.get_payload_as_bytes() == b"fail":
            raise self.error
        super().on_ws_frame(transport, frame)


def _logged_at_error(caplog: pytest.LogCaptureFixture, error: BaseException) -> bool:
    return any(
        record.levelno == logging.ERROR and record.exc_info and record.exc_info[1] is error
        for record in caplog.records
    )


async def test_on_ws_connected_exception_is_logged_and_closes_1011(
    net_mode: NetMode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with serve_picows(lambda r: FailingOnConnect(), net_mode) as (_, base):
        transport, client = await connect(CollectingListener, f"{base}/", **net_mode.client_kwargs)
        assert isinstance(client, CollectingListener)
        code, _ = await next_close(client)
        assert code == WSCloseCode.INTERNAL_ERROR
        # The server disconnects; the client is not at fault, so nothing is raised.
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
    assert _logged_at_error(caplog, FailingOnConnect.error)
    assert transport.close_handshake is not None
    assert transport.close_handshake.recv is not None
    assert transport.close_handshake.recv.code == WSCloseCode.INTERNAL_ERROR


async def test_on_ws_frame_exception_disconnects_by_default(
    net_mode: NetMode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with serve_picows(lambda r: FailingOnFrame(), net_mode) as (_, base):
        transport, client = await connect(CollectingListener, f"{base}/", **net_mode.client_kwargs)
        assert isinstance(client, CollectingListener)
        transport.send(WSMsgType.TEXT, "fail")
        code, _ = await next_close(client)
        assert code == WSCloseCode.INTERNAL_ERROR
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
    assert _logged_at_error(caplog, FailingOnFrame.error)


async def test_on_ws_frame_exception_without_disconnect(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with serve_picows(lambda r: FailingOnFrame(), disconnect_on_exception=False) as (
        _,
        base,
    ):
        transport, client = await connect(CollectingListener, f"{base}/")
        assert isinstance(client, CollectingListener)
        transport.send(WSMsgType.TEXT, "fail")
        transport.send(WSMsgType.TEXT, "after")
        assert await client.next() == (WSMsgType.TEXT, b"after", 1)
        assert not transport.is_disconnected
        await close_client(transport)
    assert _logged_at_error(caplog, FailingOnFrame.error)


async def test_protocol_error_from_server_listener_chooses_close_code() -> None:
    class Refusing(picows.WSListener):
        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            raise picows.WSProtocolError(WSCloseCode.POLICY_VIOLATION, "not allowed")

    async with serve_picows(lambda r: Refusing()) as (_, base):
        transport, client = await connect(CollectingListener, f"{base}/")
        assert isinstance(client, CollectingListener)
        transport.send(WSMsgType.TEXT, "anything")
        assert await next_close(client) == (WSCloseCode.POLICY_VIOLATION, b"not allowed")
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)


async def test_server_max_frame_size() -> None:
    async with serve_picows(lambda r: ServerRecorder(), max_frame_size=1000) as (_, base):
        transport, client = await connect(CollectingListener, f"{base}/")
        assert isinstance(client, CollectingListener)
        transport.send(WSMsgType.BINARY, b"z" * 1000)
        assert await client.next() == (WSMsgType.BINARY, b"z" * 1000, 1)
        transport.send(WSMsgType.BINARY, b"z" * 1001)
        code, _ = await next_close(client)
        assert code == WSCloseCode.MESSAGE_TOO_BIG
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)


async def test_server_logger_name(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with serve_picows(lambda r: EchoListener(), logger_name="edge") as (_, base):
        await _check_echo(f"{base}/")
    async with serve_picows(lambda r: EchoListener()) as (_, base):
        await _check_echo(f"{base}/")
    names = [r.name for r in caplog.records if "New connection accepted" in r.getMessage()]
    assert len(names) == 2
    assert names[0] == "picows.edge" or names[0].startswith("picows.edge.")
    assert names[1] == "picows.server" or names[1].startswith("picows.server.")


# ---------------------------------------------------------------------------
# Transport attributes on both sides


async def test_transport_attributes_both_sides(net_mode: NetMode) -> None:
    recorders = Recorders()
    async with serve_picows(recorders, net_mode) as (_, base):
        client_t, _ = await connect(
            CollectingListener, f"{base}/room/7?user=bob&x=1", **net_mode.client_kwargs
        )
        server_t = await asyncio.wait_for((await recorders.next()).transport, TIMEOUT)

        assert client_t.is_client_side is True
        assert server_t.is_client_side is False
        assert client_t.is_secure is net_mode.secure
        assert server_t.is_secure is net_mode.secure
        for t in (client_t, server_t):
            assert isinstance(t.request, picows.WSUpgradeRequest)
            assert isinstance(t.response, picows.WSUpgradeResponse)
            assert t.request.method == b"GET"
            assert t.request.path == b"/room/7?user=bob&x=1"
            assert t.request.version == b"HTTP/1.1"
            assert t.response.status == 101
            assert t.is_close_frame_sent is False
            assert t.is_disconnected is False
            assert t.close_handshake is None
        assert (
            server_t.request.headers["Sec-WebSocket-Key"]
            == (client_t.request.headers["Sec-WebSocket-Key"])
        )
        assert client_t.response.headers["Sec-WebSocket-Accept"] == ws_accept(
            client_t.request.headers["Sec-WebSocket-Key"]
        )
        client_sock = client_t.underlying_transport.get_extra_info("sockname")
        server_sock = server_t.underlying_transport.get_extra_info("sockname")
        assert server_t.underlying_transport.get_extra_info("peername") == client_sock
        assert client_t.underlying_transport.get_extra_info("peername") == server_sock
        assert server_sock[1] == port_of(base)

        client_t.send_close(WSCloseCode.OK, "bye")
        assert client_t.is_close_frame_sent is True
        await asyncio.wait_for(server_t.wait_disconnected(), TIMEOUT)
        await asyncio.wait_for(client_t.wait_disconnected(), TIMEOUT)
        assert client_t.is_disconnected and server_t.is_disconnected
        assert server_t.close_handshake is not None
        assert server_t.close_handshake.recv == picows.WSCloseInfo(WSCloseCode.OK, "bye")
        assert server_t.close_handshake.recv_then_sent is True


# ---------------------------------------------------------------------------
# Interop: the `websockets` library's client against our server


def _websockets_connect() -> Callable[..., Any]:
    client = pytest.importorskip("websockets.asyncio.client")
    return client.connect  # type: ignore[no-any-return]


async def test_websockets_client_echo(net_mode: NetMode) -> None:
    connect = _websockets_connect()
    recorders = Recorders()
    async with serve_picows(recorders, net_mode) as (_, base):
        async with connect(f"{base}/echo", ssl=net_mode.client_ssl, max_size=None) as ws:
            big = os.urandom(1024 * 1024)
            await ws.send("héllo")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "héllo"
            await ws.send(b"\x00\x01\x02")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == b"\x00\x01\x02"
            await ws.send(big)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == big
            # Our server answers the PING by itself.
            pong_waiter = await ws.ping(b"probe")
            await asyncio.wait_for(pong_waiter, TIMEOUT)
        assert ws.protocol.close_rcvd is not None
        assert ws.protocol.close_rcvd.code == 1000
        server = await recorders.next()
        await asyncio.wait_for(server.disconnected, TIMEOUT)
        server_t = await server.transport
    handshake = server_t.close_handshake
    assert handshake is not None
    assert handshake.recv is not None and handshake.recv.code == WSCloseCode.OK
    assert handshake.sent is not None and handshake.sent.code == WSCloseCode.OK
    assert handshake.recv_then_sent


@pytest.mark.parametrize(("code", "reason"), [(1000, "normal bye"), (4000, "custom ✓")])
async def test_websockets_client_close_codes(net_mode: NetMode, code: int, reason: str) -> None:
    connect = _websockets_connect()
    recorders = Recorders()
    async with serve_picows(recorders, net_mode) as (_, base):
        ws = await connect(f"{base}/", ssl=net_mode.client_ssl)
        await ws.send("x")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "x"
        await asyncio.wait_for(ws.close(code, reason), TIMEOUT)
        assert ws.protocol.close_rcvd is not None
        assert (ws.protocol.close_rcvd.code, ws.protocol.close_rcvd.reason) == (code, reason)
        server = await recorders.next()
        await asyncio.wait_for(server.disconnected, TIMEOUT)
        server_t = await server.transport
    handshake = server_t.close_handshake
    assert handshake is not None
    assert handshake.recv == picows.WSCloseInfo(WSCloseCode(code), reason)
    assert handshake.sent == picows.WSCloseInfo(WSCloseCode(code), reason)
    assert handshake.recv_then_sent


async def test_websockets_client_server_initiated_close(net_mode: NetMode) -> None:
    connect = _websockets_connect()
    exceptions = pytest.importorskip("websockets.exceptions")
    recorders = Recorders()
    async with serve_picows(recorders, net_mode) as (_, base):
        ws = await connect(f"{base}/", ssl=net_mode.client_ssl)
        await ws.send("close-me")
        with pytest.raises(exceptions.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
        assert ws.close_code == 4000
        assert ws.close_reason == "server bye"
        server = await recorders.next()
        await asyncio.wait_for(server.disconnected, TIMEOUT)
        server_t = await server.transport
    handshake = server_t.close_handshake
    assert handshake is not None
    assert handshake.sent == picows.WSCloseInfo(WSCloseCode(4000), "server bye")
    assert handshake.recv == picows.WSCloseInfo(WSCloseCode(4000), "server bye")
    assert not handshake.recv_then_sent
