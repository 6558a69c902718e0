"""Hostile peers and edge cases of issue 15, each over real sockets on 127.0.0.1.

* the TLS handshake is bounded by ``websocket_handshake_timeout``, on both sides;
* a request without a Host header, or with two, gets 400 (RFC 9112 3.2);
* a redirect to another origin drops the credentials in ``extra_headers``;
* a router exception whose text UTF-8 cannot encode still gets a clean 500;
* per-connection loggers follow runtime level changes of ``picows``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Optional

import pytest

import picows
import tools
from helpers import EchoListener, RawHTTPResponse, close_server, read_to_eof, serve_picows

TIMEOUT = 5.0
BOUND = 0.3  # websocket_handshake_timeout in the timeout tests
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def request_bytes(*fields: str, path: str = "/") -> bytes:
    lines = [f"GET {path} HTTP/1.1", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


UPGRADE = (
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Version: 13",
    f"Sec-WebSocket-Key: {KEY}",
)


async def exchange(port: int, request: bytes) -> bytes:
    """Sends ``request`` on a new connection; what the server sent until it closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await read_to_eof(reader, TIMEOUT)
    finally:
        writer.transport.abort()


def transports(which: str) -> dict[str, Any]:
    """ws_create_server / ws_connect kwargs: the loop's transports or aiofastnet's."""
    if which == "aiofastnet":
        pytest.importorskip("aiofastnet")
    return {"use_aiofastnet": which == "aiofastnet"}


# ---------------------------------------------------------------------------
# Item 5: websocket_handshake_timeout covers the TLS handshake.


@pytest.mark.parametrize("which", ["loop", "aiofastnet"])
@pytest.mark.parametrize("own_bound", [False, True], ids=["derived", "ssl_handshake_timeout"])
async def test_server_drops_a_client_that_never_starts_tls(
    server_ssl_context: ssl.SSLContext, which: str, own_bound: bool
) -> None:
    # Either picows derives the TLS bound, or the user's ssl_handshake_timeout is kept.
    kwargs: dict[str, Any] = {"websocket_handshake_timeout": BOUND}
    if own_bound:
        kwargs = {"websocket_handshake_timeout": None, "ssl_handshake_timeout": BOUND}
    async with serve_picows(
        lambda request: EchoListener(), ssl=server_ssl_context, **kwargs, **transports(which)
    ) as (_, url):
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        try:
            # No ClientHello, ever: the server must hang up on its own.
            assert await read_to_eof(reader, 2 * BOUND + 2.0) == b""
        finally:
            writer.transport.abort()
        assert time.monotonic() - started < 2 * BOUND + 2.0


@asynccontextmanager
async def silent_tcp_server() -> AsyncIterator[int]:
    """Accepts TCP connections and never sends a byte (no ServerHello)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.transport.abort()
        await close_server(server)


@pytest.mark.parametrize("which", ["loop", "aiofastnet"])
async def test_client_gives_up_on_a_server_that_never_answers_tls(
    client_ssl_context: ssl.SSLContext, which: str
) -> None:
    async with silent_tcp_server() as port:
        connect = asyncio.ensure_future(
            picows.ws_connect(
                picows.WSListener,
                f"wss://127.0.0.1:{port}/",
                ssl_context=client_ssl_context,
                websocket_handshake_timeout=BOUND,
                **transports(which),
            )
        )
        done, _ = await asyncio.wait({connect}, timeout=2 * BOUND + 2.0)
        if not done:
            connect.cancel()
            await asyncio.gather(connect, return_exceptions=True)
            raise AssertionError("ws_connect still waits for the TLS handshake")
        # The same error as when the upgrade itself times out (upstream's contract).
        with pytest.raises(asyncio.TimeoutError, match="websocket handshake timeout"):
            connect.result()


# ---------------------------------------------------------------------------
# Item 7: exactly one Host header (RFC 9112 3.2).


@pytest.mark.parametrize(
    "hosts",
    [(), ("Host: 127.0.0.1", "Host: example.com"), ("Host: a", "host: a")],
    ids=["none", "two", "same-twice"],
)
async def test_request_without_exactly_one_host_gets_400(hosts: tuple[str, ...]) -> None:
    routed: list[picows.WSUpgradeRequest] = []

    def route(request: picows.WSUpgradeRequest) -> picows.WSListener:
        routed.append(request)
        return EchoListener()

    async with serve_picows(route) as (_, url):
        port = int(url.rsplit(":", 1)[1])
        data = await exchange(port, request_bytes(*hosts, *UPGRADE))
    response = RawHTTPResponse(data)
    assert response.status == 400
    expected = b"No Host header" if not hosts else b"Multiple Host headers"
    assert expected in response.body
    assert routed == []  # refused before routing: it is not an HTTP/1.1 request


async def test_request_with_one_host_is_served() -> None:
    async with serve_picows(lambda request: EchoListener()) as (_, url):
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request_bytes("Host: 127.0.0.1", *UPGRADE))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        finally:
            writer.transport.abort()
    assert RawHTTPResponse(head).status == 101


# ---------------------------------------------------------------------------
# Item 8: a redirect to another origin drops the credentials.

CREDENTIALS = {
    "Authorization": "Bearer secret",
    "Cookie": "session=secret",
    "Proxy-Authorization": "Basic c2VjcmV0",
}


class Recorder:
    """Routes ``redirects[path]`` to a 302, anything else to an echo; keeps the headers."""

    def __init__(self, redirects: Optional[dict[str, str]] = None) -> None:
        self.redirects = redirects or {}
        self.seen: dict[str, dict[str, str]] = {}

    def __call__(self, request: picows.WSUpgradeRequest) -> Any:
        path = request.path.decode()
        self.seen[path] = dict(request.headers)
        if path in self.redirects:
            response = picows.WSUpgradeResponse.create_redirect_response(302, self.redirects[path])
            return picows.WSUpgradeResponseWithListener(response, None)
        return EchoListener()


async def connect_through_redirect(url: str, **kwargs: Any) -> picows.WSTransport:
    headers = [*CREDENTIALS.items(), ("X-Trace", "kept")]
    transport, _ = await picows.ws_connect(picows.WSListener, url, extra_headers=headers, **kwargs)
    transport.disconnect()
    await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
    return transport


def assert_credentials(headers: dict[str, str], present: bool) -> None:
    for name, value in CREDENTIALS.items():
        assert (headers.get(name) == value) is present, (name, headers)
    assert headers["X-Trace"] == "kept"


async def test_redirect_to_another_port_drops_credentials() -> None:
    target = Recorder()
    async with serve_picows(target) as (_, target_url):
        origin = Recorder({"/start": f"{target_url}/final"})
        async with serve_picows(origin) as (_, url):
            await connect_through_redirect(f"{url}/start")
    assert_credentials(origin.seen["/start"], present=True)
    assert_credentials(target.seen["/final"], present=False)


async def test_redirect_to_another_host_drops_credentials() -> None:
    router = Recorder()
    async with serve_picows(router) as (_, url):
        port = url.rsplit(":", 1)[1]
        router.redirects["/start"] = f"ws://localhost:{port}/final"
        try:
            await connect_through_redirect(f"{url}/start", family=socket.AF_INET)
        except OSError as exc:  # pragma: no cover - a machine without "localhost"
            # CI machines resolve localhost: not being able to is a failure there.
            tools.cannot_run(
                f"localhost does not resolve to 127.0.0.1: {exc}", required=tools.in_ci()
            )
    assert router.seen["/final"]["Host"] == f"localhost:{port}"
    assert_credentials(router.seen["/start"], present=True)
    assert_credentials(router.seen["/final"], present=False)


async def test_redirect_to_another_scheme_drops_credentials(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    target = Recorder()
    async with serve_picows(target, ssl=server_ssl_context) as (_, target_url):
        assert target_url.startswith("wss://")
        origin = Recorder({"/start": f"{target_url}/final"})
        async with serve_picows(origin) as (_, url):
            await connect_through_redirect(f"{url}/start", ssl_context=client_ssl_context)
    assert_credentials(target.seen["/final"], present=False)


async def test_redirect_within_the_origin_keeps_credentials() -> None:
    router = Recorder({"/start": "/next", "/next": "final"})
    async with serve_picows(router) as (_, url):
        await connect_through_redirect(f"{url}/start")
    assert list(router.seen) == ["/start", "/next", "/final"]
    for headers in router.seen.values():
        assert_credentials(headers, present=True)


# ---------------------------------------------------------------------------
# Item 9: the 500 (and 400) body is str(exc), even when UTF-8 cannot encode it.


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("X-Name: plain", "router failed: plain ☃".encode()),
        # Header values are decoded with surrogateescape: 0xFF becomes '\udcff'.
        ("X-Name: \udcff", b"router failed: \\udcff \xe2\x98\x83"),
    ],
    ids=["utf-8", "surrogate"],
)
async def test_router_exception_with_non_ascii_text_gets_a_500(
    header: str, expected: bytes
) -> None:
    def route(request: picows.WSUpgradeRequest) -> picows.WSListener:
        raise RuntimeError(f"router failed: {request.headers['X-Name']} ☃")

    # The traceback picows logs holds the surrogate, which pytest-xdist cannot
    # send between processes: this logger keeps it to itself.
    quiet = logging.Logger("quiet")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    async with serve_picows(route, logger_name=quiet) as (_, url):
        port = int(url.rsplit(":", 1)[1])
        data = await exchange(port, request_bytes("Host: x", header, *UPGRADE))
    response = RawHTTPResponse(data)
    assert response.status == 500
    assert response.body == expected
    assert response.headers["Content-Length"] == str(len(expected))


async def test_bad_request_quoting_a_non_utf8_value_gets_a_400() -> None:
    async with serve_picows(lambda request: EchoListener()) as (_, url):
        port = int(url.rsplit(":", 1)[1])
        data = await exchange(
            port, request_bytes("Host: x", *UPGRADE, "Sec-WebSocket-Version: \udcff")
        )
    response = RawHTTPResponse(data)
    assert response.status == 400
    assert b"unsupported websocket version: 13, \\udcff" in response.body


# ---------------------------------------------------------------------------
# Item 10: per-connection loggers follow the level of "picows", and are not registered.


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def picows_logs() -> Any:
    """A handler on the "picows" logger; its level is restored afterwards."""
    logger = logging.getLogger("picows")
    handler = Records()
    level = logger.level
    logger.addHandler(handler)
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.mark.parametrize("direction", ["raise", "lower"])
async def test_connection_logger_follows_runtime_level_changes(
    picows_logs: Any, direction: str
) -> None:
    logger, handler = picows_logs
    before, after = (
        (logging.WARNING, logging.INFO) if direction == "raise" else (logging.INFO, logging.WARNING)
    )
    logger.setLevel(before)
    names_before = set(logging.Logger.manager.loggerDict)
    connected: asyncio.Queue[picows.WSTransport] = asyncio.Queue()

    class Server(picows.WSListener):
        def on_ws_connected(self, transport: picows.WSTransport) -> None:
            connected.put_nowait(transport)

    async with serve_picows(lambda request: Server()) as (_, url):
        client, _ = await picows.ws_connect(picows.WSListener, url)
        server = await asyncio.wait_for(connected.get(), TIMEOUT)
        # The connection has logged already (at "before"), so any level cache is filled.
        connection_logger = server._logger
        assert connection_logger.name.startswith("picows.server.")
        logger.setLevel(after)
        handler.records.clear()
        client.disconnect()
        await asyncio.wait_for(server.wait_disconnected(), TIMEOUT)
        await asyncio.wait_for(client.wait_disconnected(), TIMEOUT)
    disconnected = [r for r in handler.records if r.getMessage() == "Disconnected"]
    assert len(disconnected) == (2 if after == logging.INFO else 0)
    # Hand-made loggers: nothing per connection is left in logging's registry.
    added = set(logging.Logger.manager.loggerDict) - names_before
    assert not [name for name in added if name.rsplit(".", 1)[-1].isdigit()], added
