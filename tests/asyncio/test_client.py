"""``ws_connect`` over real loopback sockets, plain TCP and TLS.

Peers are picows servers, raw asyncio servers that script an exact HTTP answer, and the
`websockets` library.  Nothing is mocked and nothing waits on a sleep: every wait is on a
future, queue or event, bounded by ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, Callable, Optional

import pytest

import picows
from helpers import (
    CollectingListener,
    EchoListener,
    NetMode,
    close_server,
    read_to_eof,
    serve_picows,
    ws_accept,
)
from picows import WSCloseCode, WSMsgType

TIMEOUT = 5

Frame = tuple[WSMsgType, bytes, int]


# ---------------------------------------------------------------------------
# Listeners


class ServerPeer(picows.WSListener):
    """Server-side listener: sends ``greeting`` frames on connect, records what arrives,
    and completes the closing handshake (echoes a CLOSE, then disconnects)."""

    def __init__(self, greeting: Sequence[tuple[WSMsgType, bytes]] = ()) -> None:
        loop = asyncio.get_running_loop()
        self.greeting = list(greeting)
        self.transport: asyncio.Future[picows.WSTransport] = loop.create_future()
        self.frames: asyncio.Queue[Frame] = asyncio.Queue()
        self.disconnected: asyncio.Future[None] = loop.create_future()

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        for msg_type, payload in self.greeting:
            transport.send(msg_type, payload)
        self.transport.set_result(transport)

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        self.frames.put_nowait((frame.msg_type, frame.get_payload_as_bytes(), frame.fin))
        if frame.msg_type == WSMsgType.CLOSE:
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        self.disconnected.set_result(None)

    async def next(self) -> Frame:
        return await asyncio.wait_for(self.frames.get(), TIMEOUT)

    async def next_close_code(self) -> int:
        """Skips data frames up to the peer's CLOSE; returns its status code."""
        while True:
            msg_type, payload, _ = await self.next()
            if msg_type == WSMsgType.CLOSE:
                return int.from_bytes(payload[:2], "big")


class CloseEchoClient(CollectingListener):
    """Collects frames; answers the peer's CLOSE with the same code, then disconnects."""

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        super().on_ws_frame(transport, frame)
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


class RaisingClient(CollectingListener):
    """Raises from on_ws_frame for the first frame only."""

    def __init__(self) -> None:
        super().__init__()
        self.error = RuntimeError("boom from on_ws_frame")
        self.raised = False

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        if not self.raised:
            self.raised = True
            raise self.error
        super().on_ws_frame(transport, frame)


async def connect(
    factory: Any, url: str, **kwargs: Any
) -> tuple[picows.WSTransport, picows.WSListener]:
    """``picows.ws_connect``, bounded so that a misbehaving connect fails instead of hanging."""
    return await asyncio.wait_for(picows.ws_connect(factory, url, **kwargs), TIMEOUT)


async def close_client(transport: picows.WSTransport) -> None:
    transport.send_close(WSCloseCode.OK)
    transport.disconnect()
    await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)


def fixed_peer(peer: picows.WSListener) -> Callable[[picows.WSUpgradeRequest], Any]:
    return lambda request: peer


# ---------------------------------------------------------------------------
# A raw TCP server that answers the upgrade request with scripted bytes.

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, str]:
    """The request header block and its Sec-WebSocket-Key."""
    block = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    match = re.search(rb"\r\nSec-WebSocket-Key: *([^\r]*)\r\n", block, re.IGNORECASE)
    assert match is not None, block
    return block, match.group(1).decode()


def response_101(key: str, *extra: str, connection: str = "Upgrade") -> bytes:
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        f"Connection: {connection}",
        f"Sec-WebSocket-Accept: {ws_accept(key)}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RawServer:
    """asyncio.start_server on 127.0.0.1:0; ``closed`` resolves when the client hangs up
    (EOF or reset) after the handler ran, with what the client sent after the request."""

    def __init__(self, handler: RawHandler) -> None:
        self.handler = handler
        self.port = 0
        self.connections = 0
        self.closed: Optional[asyncio.Future[bytes]] = None
        self._server: Optional[asyncio.AbstractServer] = None
        self._tasks: set[asyncio.Future[Any]] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/path"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        assert self.closed is not None
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.handler(reader, writer)
            rest = b"" if writer.is_closing() else await read_to_eof(reader, TIMEOUT)
            if not self.closed.done():
                self.closed.set_result(rest)
        except asyncio.CancelledError:
            pass  # torn down by __aexit__ while the handler still waited
        except Exception as exc:
            if not self.closed.done():
                self.closed.set_exception(exc)
        finally:
            writer.close()
            self._tasks.discard(task)

    async def __aenter__(self) -> RawServer:
        self.closed = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        assert self._server is not None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=TIMEOUT)
        await close_server(self._server)
        closed = self.closed
        if closed is not None and closed.done() and closed.exception() is not None:
            # A failed assertion inside the handler fails the test (unless it already failed).
            if exc_info[0] is None:
                raise closed.exception()  # type: ignore[misc]


# ---------------------------------------------------------------------------
# Listener factory forms and the return value


async def test_zero_arg_class_factory(net_mode: NetMode) -> None:
    async with serve_picows(lambda r: EchoListener(), net_mode) as (_, base):
        result = await connect(CollectingListener, f"{base}/", **net_mode.client_kwargs)
        assert isinstance(result, tuple) and len(result) == 2
        transport, client = result
        assert isinstance(transport, picows.WSTransport)
        assert type(client) is CollectingListener
        assert client.connected
        transport.send(WSMsgType.BINARY, b"\x00\x01")
        assert await client.next() == (WSMsgType.BINARY, b"\x00\x01", 1)
        await close_client(transport)
        assert client.disconnected


async def test_zero_arg_lambda_factory() -> None:
    listener = CollectingListener()
    async with serve_picows(lambda r: EchoListener()) as (_, base):
        transport, client = await connect(lambda: listener, f"{base}/")
        assert client is listener
        await close_client(transport)


async def test_two_arg_factory_receives_real_request_and_response(net_mode: NetMode) -> None:
    seen: list[tuple[Any, Any]] = []

    def factory(
        request: picows.WSUpgradeRequest, response: picows.WSUpgradeResponse
    ) -> picows.WSListener:
        seen.append((request, response))
        return CollectingListener()

    async with serve_picows(lambda r: EchoListener(), net_mode) as (_, base):
        transport, client = await connect(factory, f"{base}/chat?room=1", **net_mode.client_kwargs)
        assert len(seen) == 1
        request, response = seen[0]
        assert isinstance(request, picows.WSUpgradeRequest)
        assert isinstance(response, picows.WSUpgradeResponse)
        assert request.method == b"GET"
        assert request.path == b"/chat?room=1"
        assert response.status == 101
        # The real handshake: the accept value answers the key that was sent.
        assert response.headers["Sec-WebSocket-Accept"] == ws_accept(
            request.headers["Sec-WebSocket-Key"]
        )
        assert (
            transport.request.headers["Sec-WebSocket-Key"] == (request.headers["Sec-WebSocket-Key"])
        )
        assert transport.response.status == 101
        assert isinstance(client, CollectingListener)
        await close_client(transport)


async def test_base_listener_class_as_factory() -> None:
    async with serve_picows(lambda r: EchoListener()) as (_, base):
        transport, listener = await connect(picows.WSListener, f"{base}/")
        assert type(listener) is picows.WSListener
        await close_client(transport)


async def test_factory_exception_propagates_from_ws_connect() -> None:
    peer = ServerPeer()
    error = LookupError("factory failed")

    def factory() -> picows.WSListener:
        raise error

    async with serve_picows(fixed_peer(peer)) as (_, base):
        with pytest.raises(LookupError) as info:
            await connect(factory, f"{base}/")
        assert info.value is error
        # The half-open connection is dropped.
        await asyncio.wait_for(peer.disconnected, TIMEOUT)


async def test_client_on_ws_connected_exception(net_mode: NetMode) -> None:
    class FailingOnConnect(CollectingListener):
        error = RuntimeError("client on_ws_connected failed")

        def on_ws_connected(self, transport: picows.WSTransport) -> None:
            raise self.error

    peer = ServerPeer()
    async with serve_picows(fixed_peer(peer), net_mode) as (_, base):
        transport, _ = await connect(FailingOnConnect, f"{base}/", **net_mode.client_kwargs)
        assert await peer.next_close_code() == WSCloseCode.INTERNAL_ERROR
        with pytest.raises(RuntimeError) as info:
            await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
        assert info.value is FailingOnConnect.error


async def test_factory_must_return_a_listener() -> None:
    async with serve_picows(lambda r: EchoListener()) as (_, base):
        with pytest.raises(TypeError):
            await connect(lambda: object(), f"{base}/")


# ---------------------------------------------------------------------------
# TLS


async def test_wss_with_ssl_context(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    async with serve_picows(lambda r: EchoListener(), ssl=server_ssl_context) as (_, base):
        assert base.startswith("wss://")
        transport, client = await connect(
            CollectingListener, f"{base}/", ssl_context=client_ssl_context
        )
        assert transport.is_secure
        assert isinstance(client, CollectingListener)
        assert transport.underlying_transport.get_extra_info("ssl_object") is not None
        transport.send(WSMsgType.TEXT, "secret")
        assert await client.next() == (WSMsgType.TEXT, b"secret", 1)
        await close_client(transport)


async def test_wss_default_context_rejects_untrusted_cert(
    server_ssl_context: ssl.SSLContext,
) -> None:
    calls: list[bytes] = []

    def factory(request: picows.WSUpgradeRequest) -> picows.WSListener:
        calls.append(request.path)
        return EchoListener()

    async with serve_picows(factory, ssl=server_ssl_context) as (_, base):
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.wait_for(picows.ws_connect(CollectingListener, f"{base}/"), TIMEOUT)
        assert calls == []


# ---------------------------------------------------------------------------
# disconnect_on_exception


async def test_disconnect_on_exception_true(net_mode: NetMode) -> None:
    peer = ServerPeer([(WSMsgType.TEXT, b"first"), (WSMsgType.TEXT, b"second")])
    async with serve_picows(fixed_peer(peer), net_mode) as (_, base):
        transport, client = await connect(
            RaisingClient, f"{base}/", disconnect_on_exception=True, **net_mode.client_kwargs
        )
        assert isinstance(client, RaisingClient)
        assert await peer.next_close_code() == WSCloseCode.INTERNAL_ERROR
        with pytest.raises(RuntimeError) as info:
            await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
        assert info.value is client.error
        assert transport.is_disconnected
        assert transport.close_handshake is not None
        assert transport.close_handshake.sent is not None
        assert transport.close_handshake.sent.code == WSCloseCode.INTERNAL_ERROR
        # The frame after the failing one was never delivered.
        assert client.frames.empty()


async def test_disconnect_on_exception_false(
    net_mode: NetMode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    peer = ServerPeer([(WSMsgType.TEXT, b"first"), (WSMsgType.TEXT, b"second")])
    async with serve_picows(fixed_peer(peer), net_mode) as (_, base):
        transport, client = await connect(
            RaisingClient, f"{base}/", disconnect_on_exception=False, **net_mode.client_kwargs
        )
        assert isinstance(client, RaisingClient)
        # The first frame raised; the next one is still delivered.
        assert await client.next() == (WSMsgType.TEXT, b"second", 1)
        assert client.raised
        assert not transport.is_disconnected
        assert not transport.is_close_frame_sent
        # And the connection still works both ways.
        transport.send(WSMsgType.TEXT, "still here")
        assert await peer.next() == (WSMsgType.TEXT, b"still here", 1)
        assert any(r.exc_info and r.exc_info[1] is client.error for r in caplog.records)
        await close_client(transport)  # no exception: the failure was only logged


# ---------------------------------------------------------------------------
# websocket_handshake_timeout


async def test_handshake_timeout_when_server_never_answers() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with RawServer(silent) as raw:
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await connect(CollectingListener, raw.url, websocket_handshake_timeout=0.2)
        assert time.monotonic() - started < 1.5
        # The client closed its socket: the server reads EOF (or a reset).
        assert raw.closed is not None
        assert await asyncio.wait_for(raw.closed, TIMEOUT) == b""


async def test_handshake_timeout_none_waits_for_a_slow_server() -> None:
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, key = await read_request(reader)
        await release.wait()
        writer.write(response_101(key))

    # A short timeout fails against this server...
    async with RawServer(slow) as raw:
        with pytest.raises(asyncio.TimeoutError):
            await connect(CollectingListener, raw.url, websocket_handshake_timeout=0.1)
    # ...while None keeps waiting for as long as the server takes.
    async with RawServer(slow) as raw:
        task = asyncio.ensure_future(
            picows.ws_connect(CollectingListener, raw.url, websocket_handshake_timeout=None)
        )
        done, _ = await asyncio.wait([task], timeout=0.5)
        assert not done, "ws_connect gave up although the timeout is disabled"
        release.set()
        transport, _ = await asyncio.wait_for(task, TIMEOUT)
        assert transport.response.status == 101
        transport.disconnect()
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)


# ---------------------------------------------------------------------------
# logger_name


def _names(caplog: pytest.LogCaptureFixture) -> set[str]:
    return {record.name for record in caplog.records}


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


async def test_logger_name_str(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with serve_picows(lambda r: EchoListener()) as (_, base):
        transport, _ = await connect(CollectingListener, f"{base}/", logger_name="myclient")
        await close_client(transport)
    mine = [r for r in caplog.records if _under(r.name, "picows.myclient")]
    assert any("WS connection established" in r.getMessage() for r in mine)
    assert not any(_under(name, "picows.client") for name in _names(caplog))


async def test_logger_name_none_is_picows_client(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with serve_picows(lambda r: EchoListener()) as (_, base):
        transport, _ = await connect(CollectingListener, f"{base}/", logger_name=None)
        await close_client(transport)
    client_records = [r for r in caplog.records if _under(r.name, "picows.client")]
    assert any("WS connection established" in r.getMessage() for r in client_records)


async def test_logger_name_logger_object(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    logger = logging.getLogger("test_client.custom_logger")
    async with serve_picows(lambda r: EchoListener()) as (_, base):
        transport, _ = await connect(CollectingListener, f"{base}/", logger_name=logger)
        await close_client(transport)
    mine = [r for r in caplog.records if _under(r.name, logger.name)]
    assert any("WS connection established" in r.getMessage() for r in mine)
    assert not any(_under(name, "picows.client") for name in _names(caplog))


async def test_logger_name_logger_adapter(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    adapter = logging.LoggerAdapter(
        logging.getLogger("test_client.adapted"), {"connection_tag": "tag-42"}
    )
    async with serve_picows(lambda r: EchoListener()) as (_, base):
        transport, _ = await connect(CollectingListener, f"{base}/", logger_name=adapter)
        await close_client(transport)
    tagged = [r for r in caplog.records if getattr(r, "connection_tag", None) == "tag-42"]
    assert any("WS connection established" in r.getMessage() for r in tagged)
    assert all(_under(r.name, "test_client.adapted") for r in tagged)


async def test_per_connection_loggers_do_not_leak() -> None:
    registry = logging.Logger.manager.loggerDict
    async with serve_picows(lambda r: EchoListener(), logger_name="leak_srv") as (_, base):
        # Warm up: the parent loggers themselves are registered once.
        transport, _ = await connect(CollectingListener, f"{base}/", logger_name="leak_cli")
        await close_client(transport)
        before = set(registry)
        results = await asyncio.gather(
            *(
                picows.ws_connect(CollectingListener, f"{base}/", logger_name="leak_cli")
                for _ in range(20)
            )
        )
        await asyncio.gather(*(close_client(t) for t, _ in results))
    assert set(registry) == before
    assert not any(name.startswith(("picows.leak_cli.", "picows.leak_srv.")) for name in registry)


# ---------------------------------------------------------------------------
# extra_headers


async def _request_headers_for(extra_headers: Any) -> Any:
    seen: list[picows.WSUpgradeRequest] = []

    def factory(request: picows.WSUpgradeRequest) -> picows.WSListener:
        seen.append(request)
        return EchoListener()

    async with serve_picows(factory) as (_, base):
        transport, _ = await connect(CollectingListener, f"{base}/", extra_headers=extra_headers)
        await close_client(transport)
    assert len(seen) == 1
    return seen[0].headers


async def test_extra_headers_mapping() -> None:
    headers = await _request_headers_for({"X-One": "1", "Authorization": "Bearer abc"})
    assert headers.getall("X-One") == ["1"]
    assert headers["authorization"] == "Bearer abc"
    assert headers.getall("Host") == [headers["Host"]]
    assert headers["Upgrade"] == "websocket"


async def test_extra_headers_pairs_keep_duplicates() -> None:
    headers = await _request_headers_for([("X-Dup", "a"), ("X-Dup", "b"), ("X-Other", "c")])
    assert headers.getall("X-Dup") == ["a", "b"]
    assert headers["X-Other"] == "c"


@pytest.mark.parametrize("name", ["Host", "host"])
async def test_extra_host_header_replaces_generated_one(name: str) -> None:
    headers = await _request_headers_for([(name, "example.test:4321")])
    assert headers.getall("Host") == ["example.test:4321"]


@pytest.mark.parametrize(
    "bad",
    [{"X-Num": 1}, [("X-Bytes", b"value")], [(b"X-Name", "value")], {"X-None": None}],
    ids=["int-value", "bytes-value", "bytes-name", "none-value"],
)
async def test_extra_headers_non_str_is_type_error(bad: Any) -> None:
    calls: list[bytes] = []

    def factory(request: picows.WSUpgradeRequest) -> picows.WSListener:
        calls.append(request.path)
        return EchoListener()

    async with serve_picows(factory) as (_, base):
        with pytest.raises(TypeError):
            await connect(CollectingListener, f"{base}/", extra_headers=bad)
    assert calls == []


# ---------------------------------------------------------------------------
# max_frame_size and read_buffer_init_size


async def test_client_max_frame_size(net_mode: NetMode) -> None:
    peer = ServerPeer([(WSMsgType.BINARY, b"x" * 2000)])
    async with serve_picows(fixed_peer(peer), net_mode) as (_, base):
        transport, client = await connect(
            CollectingListener, f"{base}/", max_frame_size=1000, **net_mode.client_kwargs
        )
        assert await peer.next_close_code() == WSCloseCode.MESSAGE_TOO_BIG
        with pytest.raises(picows.WSProtocolError) as info:
            await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
        assert info.value.code == WSCloseCode.MESSAGE_TOO_BIG
        assert isinstance(client, CollectingListener)
        assert client.frames.empty()


async def test_client_max_frame_size_allows_frames_at_the_limit() -> None:
    peer = ServerPeer([(WSMsgType.BINARY, b"y" * 1000)])
    async with serve_picows(fixed_peer(peer)) as (_, base):
        transport, client = await connect(CollectingListener, f"{base}/", max_frame_size=1000)
        assert isinstance(client, CollectingListener)
        assert await client.next() == (WSMsgType.BINARY, b"y" * 1000, 1)
        await close_client(transport)


async def test_small_read_buffer_receives_1mib_message(net_mode: NetMode) -> None:
    message = bytes(range(256)) * 4096  # 1 MiB
    async with serve_picows(lambda r: EchoListener(), net_mode) as (_, base):
        transport, client = await connect(
            CollectingListener, f"{base}/", read_buffer_init_size=2048, **net_mode.client_kwargs
        )
        assert isinstance(client, CollectingListener)
        transport.send(WSMsgType.BINARY, message)
        transport.send(WSMsgType.TEXT, "after")
        assert await client.next() == (WSMsgType.BINARY, message, 1)
        assert await client.next() == (WSMsgType.TEXT, b"after", 1)
        await close_client(transport)


# ---------------------------------------------------------------------------
# **kwargs go to loop.create_connection


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_kwargs_reach_create_connection(net_mode: NetMode) -> None:
    peer = ServerPeer()
    port = _free_port()
    async with serve_picows(fixed_peer(peer), net_mode) as (_, base):
        transport, _ = await connect(
            CollectingListener,
            f"{base}/",
            local_addr=("127.0.0.1", port),
            **net_mode.client_kwargs,
        )
        server_transport = await asyncio.wait_for(peer.transport, TIMEOUT)
        assert server_transport.underlying_transport.get_extra_info("peername")[1] == port
        assert transport.underlying_transport.get_extra_info("sockname")[1] == port
        await close_client(transport)


@pytest.mark.parametrize("name", ["ssl", "sock"])
async def test_reserved_create_connection_kwargs(name: str) -> None:
    calls: list[bytes] = []

    def factory(request: picows.WSUpgradeRequest) -> picows.WSListener:
        calls.append(request.path)
        return EchoListener()

    async with serve_picows(factory) as (_, base):
        value: Any = None if name == "ssl" else socket.socket()
        try:
            with pytest.raises(TypeError):
                await connect(CollectingListener, f"{base}/", **{name: value})
        finally:
            if value is not None:
                value.close()
    assert calls == []


# ---------------------------------------------------------------------------
# Redirects


class Router:
    """A picows server factory: redirects per ``routes`` (path -> response), else echoes."""

    def __init__(self, routes: dict[bytes, picows.WSUpgradeResponse]) -> None:
        self.routes = routes
        self.paths: list[bytes] = []
        self.hosts: list[str] = []

    def __call__(self, request: picows.WSUpgradeRequest) -> Any:
        self.paths.append(request.path)
        self.hosts.extend(request.headers.getall("Host"))
        response = self.routes.get(request.path)
        if response is not None:
            return picows.WSUpgradeResponseWithListener(response, None)
        return EchoListener()


def redirect(location: str, status: int = 302) -> picows.WSUpgradeResponse:
    return picows.WSUpgradeResponse.create_redirect_response(status, location)


@pytest.mark.parametrize(
    ("start", "location", "final"),
    [
        (b"/start", "/other", b"/other"),
        (b"/a/start", "next?x=1", b"/a/next?x=1"),
    ],
    ids=["absolute-path", "relative-path"],
)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_relative_location(
    net_mode: NetMode, start: bytes, location: str, final: bytes, status: int
) -> None:
    router = Router({start: redirect(location, status)})
    async with serve_picows(router, net_mode) as (_, base):
        transport, client = await connect(
            CollectingListener, f"{base}{start.decode()}", **net_mode.client_kwargs
        )
        assert router.paths == [start, final]
        assert transport.request.path == final
        assert transport.response.status == 101
        assert isinstance(client, CollectingListener)
        transport.send(WSMsgType.TEXT, "redirected")
        assert await client.next() == (WSMsgType.TEXT, b"redirected", 1)
        await close_client(transport)


async def test_redirect_absolute_location_to_another_server(
    net_mode: NetMode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    target = Router({})
    async with serve_picows(target, net_mode) as (_, target_base):
        origin = Router({b"/": redirect(f"{target_base}/final?y=2")})
        async with serve_picows(origin, net_mode) as (_, origin_base):
            transport, _ = await connect(
                CollectingListener, f"{origin_base}/", **net_mode.client_kwargs
            )
            assert origin.paths == [b"/"]
            assert target.paths == [b"/final?y=2"]
            # Each hop sends the Host of its own URL.
            assert origin.hosts == [origin_base.split("://")[1]]
            assert target.hosts == [target_base.split("://")[1]]
            assert transport.request.path == b"/final?y=2"
            assert transport.underlying_transport.get_extra_info("peername")[1] == int(
                target_base.rsplit(":", 1)[1]
            )
            await close_client(transport)
    # Each hop is logged at INFO.
    assert any(r.levelno == logging.INFO and "/final?y=2" in r.getMessage() for r in caplog.records)


async def test_max_redirects_zero_disables_redirects() -> None:
    router = Router({b"/start": redirect("/other")})
    async with serve_picows(router) as (_, base):
        with pytest.raises(picows.WSInvalidStatusError) as info:
            await connect(CollectingListener, f"{base}/start", max_redirects=0)
    assert info.value.response is not None
    assert info.value.response.status == 302
    assert info.value.response.headers["Location"] == "/other"
    assert router.paths == [b"/start"]


def _hops(count: int) -> dict[bytes, picows.WSUpgradeResponse]:
    return {f"/hop{i}".encode(): redirect(f"/hop{i + 1}") for i in range(count)}


async def test_redirect_chain_within_limit() -> None:
    router = Router(_hops(3))
    async with serve_picows(router) as (_, base):
        transport, _ = await connect(CollectingListener, f"{base}/hop0", max_redirects=3)
        assert transport.request.path == b"/hop3"
        await close_client(transport)
    assert router.paths == [b"/hop0", b"/hop1", b"/hop2", b"/hop3"]


async def test_redirect_chain_longer_than_max_redirects() -> None:
    router = Router(_hops(3))
    async with serve_picows(router) as (_, base):
        with pytest.raises(picows.WSHandshakeError) as info:
            await connect(CollectingListener, f"{base}/hop0", max_redirects=2)
    assert info.value.response is not None
    assert info.value.response.status == 302
    assert router.paths == [b"/hop0", b"/hop1", b"/hop2"]


async def test_redirect_loop_stops_at_default_limit() -> None:
    router = Router({b"/loop": redirect("/loop")})
    async with serve_picows(router) as (_, base):
        with pytest.raises(picows.WSHandshakeError):
            await connect(CollectingListener, f"{base}/loop")
    assert router.paths == [b"/loop"] * 6  # the first try and 5 redirects


async def test_redirect_without_location() -> None:
    router = Router({b"/": picows.WSUpgradeResponse(b"HTTP/1.1", 301)})
    async with serve_picows(router) as (_, base):
        with pytest.raises(picows.WSHandshakeError, match="Location") as info:
            await connect(CollectingListener, f"{base}/")
    assert info.value.response is not None
    assert info.value.response.status == 301
    assert router.paths == [b"/"]


async def test_redirect_from_wss_to_ws_is_refused(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    plain = Router({})
    async with serve_picows(plain) as (_, plain_base):
        assert plain_base.startswith("ws://")
        secure = Router({b"/": redirect(f"{plain_base}/insecure")})
        async with serve_picows(secure, ssl=server_ssl_context) as (_, secure_base):
            with pytest.raises(picows.WSHandshakeError, match="non-secure"):
                await connect(CollectingListener, f"{secure_base}/", ssl_context=client_ssl_context)
    assert secure.paths == [b"/"]
    assert plain.paths == []


async def test_redirect_from_ws_to_wss_is_followed(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    secure = Router({})
    async with serve_picows(secure, ssl=server_ssl_context) as (_, secure_base):
        plain = Router({b"/": redirect(f"{secure_base}/tls")})
        async with serve_picows(plain) as (_, plain_base):
            transport, _ = await connect(
                CollectingListener, f"{plain_base}/", ssl_context=client_ssl_context
            )
            assert transport.is_secure
            assert transport.request.path == b"/tls"
            await close_client(transport)


# ---------------------------------------------------------------------------
# Failed handshakes


async def test_server_closes_before_answering_raises() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    async with RawServer(hang_up) as raw:
        with pytest.raises((ConnectionResetError, picows.WSHandshakeError)):
            await asyncio.wait_for(picows.ws_connect(CollectingListener, raw.url), TIMEOUT)


async def test_server_closes_without_reading_raises() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with RawServer(hang_up) as raw:
        with pytest.raises((ConnectionResetError, picows.WSHandshakeError)):
            await asyncio.wait_for(picows.ws_connect(CollectingListener, raw.url), TIMEOUT)


async def test_server_closes_mid_response_raises() -> None:
    async def partial(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, key = await read_request(reader)
        writer.write(response_101(key)[:40])
        await writer.drain()
        writer.close()

    async with RawServer(partial) as raw:
        with pytest.raises((ConnectionResetError, picows.WSHandshakeError)):
            await asyncio.wait_for(picows.ws_connect(CollectingListener, raw.url), TIMEOUT)


async def test_404_from_picows_server(net_mode: NetMode) -> None:
    async with serve_picows(lambda r: None, net_mode) as (_, base):
        with pytest.raises(picows.WSInvalidStatusError) as info:
            await connect(CollectingListener, f"{base}/missing", **net_mode.client_kwargs)
    exc = info.value
    assert "expected upgrade response with status 101" in str(exc)
    assert exc.raw_header is not None and exc.raw_header.startswith(b"HTTP/1.1 404 ")
    assert exc.response is not None
    assert exc.response.status == 404
    assert exc.response.body == b"404 Not Found"
    assert exc.raw_body == b"404 Not Found"


async def test_404_body_sent_after_the_header() -> None:
    body = b"no such endpoint here"

    async def not_found(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        await writer.drain()
        writer.write(body)

    async with RawServer(not_found) as raw:
        with pytest.raises(picows.WSInvalidStatusError) as info:
            await asyncio.wait_for(picows.ws_connect(CollectingListener, raw.url), TIMEOUT)
    assert info.value.response is not None
    assert info.value.response.status == 404
    assert info.value.response.body == body
    assert info.value.response.headers["Content-Type"] == "text/plain"


async def _expect_rejected_101(*extra: str, key_override: Optional[str] = None) -> BaseException:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, key = await read_request(reader)
        writer.write(response_101(key_override or key, *extra))

    async with RawServer(answer) as raw:
        with pytest.raises(picows.WSHandshakeError) as info:
            await asyncio.wait_for(picows.ws_connect(CollectingListener, raw.url), TIMEOUT)
        # The client drops the connection after the failed handshake.
        assert raw.closed is not None
        await asyncio.wait_for(raw.closed, TIMEOUT)
    return info.value


async def test_wrong_accept_header() -> None:
    exc = await _expect_rejected_101(key_override="dGhlIHNhbXBsZSBub25jZQ==")
    assert isinstance(exc, picows.WSInvalidHeaderError)
    assert exc.name.lower() == "sec-websocket-accept"
    assert exc.value == ws_accept("dGhlIHNhbXBsZSBub25jZQ==")


async def test_unrequested_extension_fails_handshake() -> None:
    exc = await _expect_rejected_101("Sec-WebSocket-Extensions: permessage-deflate")
    assert isinstance(exc, picows.WSInvalidHeaderError)
    assert exc.name.lower() == "sec-websocket-extensions"


async def test_unrequested_subprotocol_fails_handshake() -> None:
    exc = await _expect_rejected_101("Sec-WebSocket-Protocol: chat")
    assert isinstance(exc, picows.WSInvalidHeaderError)


async def test_requested_extension_is_accepted() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, key = await read_request(reader)
        writer.write(response_101(key, "Sec-WebSocket-Extensions: x-test"))

    async with RawServer(answer) as raw:
        transport, _ = await asyncio.wait_for(
            picows.ws_connect(
                CollectingListener,
                raw.url,
                extra_headers={"Sec-WebSocket-Extensions": "x-test"},
            ),
            TIMEOUT,
        )
        assert transport.response.headers["Sec-WebSocket-Extensions"] == "x-test"
        transport.disconnect()
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)


@pytest.mark.parametrize("connection", ["keep-alive, Upgrade", "upgrade", "Upgrade, keep-alive"])
async def test_connection_header_token_list_accepted(connection: str) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, key = await read_request(reader)
        # The first frame arrives in the same segment as the response.
        writer.write(response_101(key, connection=connection) + b"\x81\x05hello")
        await writer.drain()
        # The client's masked TEXT "reply": read its 2 + 4 + 5 bytes.
        frame = await asyncio.wait_for(reader.readexactly(11), TIMEOUT)
        assert frame[:2] == b"\x81\x85"
        payload = bytes(b ^ frame[2 + i % 4] for i, b in enumerate(frame[6:]))
        writer.write(b"\x82\x03" + payload[:3])

    async with RawServer(answer) as raw:
        transport, client = await asyncio.wait_for(
            picows.ws_connect(CollectingListener, raw.url), TIMEOUT
        )
        assert isinstance(client, CollectingListener)
        assert transport.response.headers["Connection"] == connection
        assert await client.next() == (WSMsgType.TEXT, b"hello", 1)
        transport.send(WSMsgType.TEXT, "reply")
        assert await client.next() == (WSMsgType.BINARY, b"rep", 1)
        transport.disconnect()
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)


async def test_response_split_into_single_bytes_then_big_frame_in_same_write() -> None:
    big = bytes(range(256)) * 400  # 102400 bytes: more than any first read
    frame = b"\x82\x7f" + len(big).to_bytes(8, "big") + big

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, key = await read_request(reader)
        response = response_101(key, *(f"X-Pad-{i}: {'p' * 90}" for i in range(60)))
        assert len(response) > 4096
        for i in range(0, 200):  # the first bytes one by one
            writer.write(response[i : i + 1])
            await writer.drain()
        writer.write(response[200:] + frame + b"\x81\x04tail")

    async with RawServer(answer) as raw:
        transport, client = await connect(CollectingListener, raw.url)
        assert isinstance(client, CollectingListener)
        assert transport.response.headers["X-Pad-59"] == "p" * 90
        assert await client.next() == (WSMsgType.BINARY, big, 1)
        assert await client.next() == (WSMsgType.TEXT, b"tail", 1)
        transport.disconnect()
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)


async def test_response_header_block_over_16k_is_refused() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, key = await read_request(reader)
        writer.write(response_101(key, f"X-Huge: {'h' * 17000}"))

    async with RawServer(answer) as raw:
        with pytest.raises(picows.WSInvalidMessageError):
            await connect(CollectingListener, raw.url)


async def test_malformed_status_line_is_refused() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")

    async with RawServer(answer) as raw:
        with pytest.raises(picows.WSInvalidMessageError):
            await connect(CollectingListener, raw.url)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/", "https://127.0.0.1/", "ws://", "ws://127.0.0.1/#fragment", "127.0.0.1"],
)
async def test_invalid_url(url: str) -> None:
    with pytest.raises(picows.WSInvalidURL) as info:
        await connect(CollectingListener, url)
    assert info.value.url == url
    assert "isn't a valid URL" in str(info.value)


async def test_connection_refused() -> None:
    port = _free_port()
    with pytest.raises(ConnectionRefusedError):
        await connect(CollectingListener, f"ws://127.0.0.1:{port}/")


# ---------------------------------------------------------------------------
# Interop: our client against the `websockets` library's server


@contextlib.asynccontextmanager
async def websockets_server(
    handler: Callable[[Any], Awaitable[None]], tls: Optional[ssl.SSLContext]
) -> AsyncIterator[str]:
    ws_server = pytest.importorskip("websockets.asyncio.server")
    async with ws_server.serve(handler, "127.0.0.1", 0, ssl=tls, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"{'wss' if tls else 'ws'}://127.0.0.1:{port}"


class WebsocketsPeer:
    """Handlers for a `websockets` server, keyed by path."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.pong_received: asyncio.Future[None] = loop.create_future()
        self.close_received: asyncio.Future[tuple[int, str]] = loop.create_future()

    async def __call__(self, ws: Any) -> None:
        exceptions = pytest.importorskip("websockets.exceptions")
        path = ws.request.path
        try:
            if path == "/echo":
                async for message in ws:
                    await ws.send(message)
            elif path == "/ping":
                pong_waiter = await ws.ping(b"probe")
                await asyncio.wait_for(pong_waiter, TIMEOUT)
                self.pong_received.set_result(None)
                await ws.send("got your pong")
                await ws.wait_closed()
            elif path == "/server-close":
                await ws.send("closing soon")
                await ws.close(4000, "server bye")
        except exceptions.ConnectionClosed:
            pass  # a close code other than 1000/1001 ends `async for` with an error
        close_rcvd = ws.protocol.close_rcvd
        if close_rcvd is not None:
            self.close_received.set_result((close_rcvd.code, close_rcvd.reason))


async def test_websockets_server_echo(net_mode: NetMode) -> None:
    peer = WebsocketsPeer()
    async with websockets_server(peer, net_mode.server_ssl) as base:
        transport, client = await connect(CloseEchoClient, f"{base}/echo", **net_mode.client_kwargs)
        assert isinstance(client, CloseEchoClient)
        assert transport.is_secure == net_mode.secure
        big = bytes(range(256)) * 4096  # 1 MiB
        transport.send(WSMsgType.TEXT, "héllo")
        transport.send(WSMsgType.BINARY, b"\x00\xff\x10")
        transport.send(WSMsgType.BINARY, big)
        assert await client.next() == (WSMsgType.TEXT, "héllo".encode(), 1)
        assert await client.next() == (WSMsgType.BINARY, b"\x00\xff\x10", 1)
        assert await client.next() == (WSMsgType.BINARY, big, 1)
        # websockets answers PINGs itself, ahead of the echoed messages.
        transport.send_ping(b"are you there")
        assert await client.next() == (WSMsgType.PONG, b"are you there", 1)
        transport.send_close(WSCloseCode.OK, b"done")
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
        assert await asyncio.wait_for(peer.close_received, TIMEOUT) == (1000, "done")
    handshake = transport.close_handshake
    assert handshake is not None
    assert handshake.sent == picows.WSCloseInfo(WSCloseCode.OK, "done")
    assert handshake.recv == picows.WSCloseInfo(WSCloseCode.OK, "done")
    assert not handshake.recv_then_sent


async def test_websockets_server_ping_is_auto_ponged(net_mode: NetMode) -> None:
    peer = WebsocketsPeer()
    async with websockets_server(peer, net_mode.server_ssl) as base:
        transport, client = await connect(CloseEchoClient, f"{base}/ping", **net_mode.client_kwargs)
        assert isinstance(client, CloseEchoClient)
        await asyncio.wait_for(peer.pong_received, TIMEOUT)
        # The PING was answered by picows and never reached on_ws_frame.
        assert await client.next() == (WSMsgType.TEXT, b"got your pong", 1)
        await close_client(transport)


async def test_websockets_server_custom_close_code_from_client(net_mode: NetMode) -> None:
    peer = WebsocketsPeer()
    async with websockets_server(peer, net_mode.server_ssl) as base:
        transport, _ = await connect(CloseEchoClient, f"{base}/echo", **net_mode.client_kwargs)
        transport.send_close(4000, "custom reason ✓")
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
        assert await asyncio.wait_for(peer.close_received, TIMEOUT) == (4000, "custom reason ✓")
    handshake = transport.close_handshake
    assert handshake is not None
    assert handshake.sent == picows.WSCloseInfo(WSCloseCode(4000), "custom reason ✓")
    assert handshake.recv == picows.WSCloseInfo(WSCloseCode(4000), "custom reason ✓")
    assert not handshake.recv_then_sent


async def test_websockets_server_initiated_close(net_mode: NetMode) -> None:
    peer = WebsocketsPeer()
    async with websockets_server(peer, net_mode.server_ssl) as base:
        transport, client = await connect(
            CloseEchoClient, f"{base}/server-close", **net_mode.client_kwargs
        )
        assert isinstance(client, CloseEchoClient)
        assert await client.next() == (WSMsgType.TEXT, b"closing soon", 1)
        msg_type, payload, _ = await client.next()
        assert msg_type == WSMsgType.CLOSE
        assert payload == (4000).to_bytes(2, "big") + b"server bye"
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
        assert await asyncio.wait_for(peer.close_received, TIMEOUT) == (4000, "server bye")
    handshake = transport.close_handshake
    assert handshake is not None
    assert handshake.recv == picows.WSCloseInfo(WSCloseCode(4000), "server bye")
    assert handshake.sent == picows.WSCloseInfo(WSCloseCode(4000), "server bye")
    assert handshake.recv_then_sent
