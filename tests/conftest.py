"""Shared fixtures: event loops, TLS certificates, and a picows echo server.

The backend (pure Python or cffi) is chosen per process by the environment
(``PICOWS_NO_EXTENSIONS`` / ``PICOWS_REQUIRE_EXTENSIONS``); tox runs the whole suite
once per backend.  Within a run, asyncio tests run on the stock asyncio loop and on
uvloop where it exists.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any, Optional

import pytest
import pytest_asyncio.plugin

import picows

try:
    import uvloop
except ImportError:  # PyPy, Windows
    uvloop = None  # type: ignore[assignment]


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"picows backend: {picows.BACKEND}; interpreter: {sys.implementation.name}; "
        f"uvloop: {'yes' if uvloop is not None else 'no'}"
    )


def _loop_factories() -> dict[str, Any]:
    factories: dict[str, Any] = {"asyncio": asyncio.new_event_loop}
    if uvloop is not None:
        factories["uvloop"] = uvloop.new_event_loop
    return factories


if hasattr(pytest_asyncio.plugin, "PytestAsyncioSpecs") and hasattr(
    pytest_asyncio.plugin.PytestAsyncioSpecs, "pytest_asyncio_loop_factories"
):

    def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Any:
        """Every async test runs once per event loop implementation."""
        return _loop_factories()

else:  # pytest-asyncio < 1.3 (PyPy 3.9 gets an older one)

    @pytest.fixture(scope="session", params=list(_loop_factories()))
    def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
        """Every async test runs once per event loop implementation."""
        if request.param == "uvloop":
            return uvloop.EventLoopPolicy()
        return asyncio.DefaultEventLoopPolicy()


@pytest.fixture(scope="session")
def tls_certs() -> Any:
    """A test CA and a server certificate for 127.0.0.1, localhost and ::1."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    return ca, ca.issue_cert("127.0.0.1", "localhost", "::1")


@pytest.fixture(scope="session")
def server_ssl_context(tls_certs: Any) -> ssl.SSLContext:
    _, cert = tls_certs
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_ssl_context(tls_certs: Any) -> ssl.SSLContext:
    ca, _ = tls_certs
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return context


# ---------------------------------------------------------------------------
# The cffi accelerator, for the tests that compare it with the pure reference.

ACCEL: Optional[ModuleType]
try:
    import _picows_accel as ACCEL
except ImportError as exc:  # not built: pure wheel, no compiler, or cffi missing
    ACCEL = None
    ACCEL_IMPORT_ERROR: Optional[ImportError] = exc
else:
    ACCEL_IMPORT_ERROR = None


def env_flag(name: str) -> bool:
    # Same rule as picows._backend.
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def accel() -> ModuleType:
    """``_picows_accel``; its tests are skipped where it is not built (the pure legs),
    and test_accel.py fails when PICOWS_REQUIRE_EXTENSIONS says it must be."""
    if ACCEL is None:
        pytest.skip(f"_picows_accel is not built ({ACCEL_IMPORT_ERROR})")
    return ACCEL


class EchoListener(picows.WSListener):
    """Echoes every data frame; answers a CLOSE with the same code, then disconnects."""

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        if frame.msg_type == picows.WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        else:
            transport.send(frame.msg_type, frame.get_payload_as_bytes(), frame.fin)


class CollectingListener(picows.WSListener):
    """Keeps a copy of every frame it receives, for assertions."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[tuple[picows.WSMsgType, bytes, int]] = asyncio.Queue()
        self.connected = False
        self.disconnected = False

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self.connected = True

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        self.frames.put_nowait((frame.msg_type, frame.get_payload_as_bytes(), frame.fin))

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        self.disconnected = True

    async def next(self, timeout: float = 5) -> tuple[picows.WSMsgType, bytes, int]:
        return await asyncio.wait_for(self.frames.get(), timeout)


@pytest.fixture
async def echo_server() -> AsyncIterator[str]:
    """A plain-TCP picows echo server; yields its ws:// URL."""
    server = await picows.ws_create_server(lambda request: EchoListener(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/"
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def wss_echo_server(server_ssl_context: ssl.SSLContext) -> AsyncIterator[str]:
    """A TLS picows echo server; yields its wss:// URL."""
    server = await picows.ws_create_server(
        lambda request: EchoListener(), "127.0.0.1", 0, ssl=server_ssl_context
    )
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"wss://127.0.0.1:{port}/"
    finally:
        server.close()
        await server.wait_closed()


# ---------------------------------------------------------------------------
# Helpers for client/server tests over real sockets (test_client.py, test_server.py).

import contextlib as _contextlib  # noqa: E402


class NetMode:
    """Plain TCP or TLS: the ws_create_server kwargs, ws_connect kwargs and URL scheme."""

    def __init__(
        self,
        secure: bool,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.secure = secure
        self.scheme = "wss" if secure else "ws"
        self.server_kwargs: dict[str, Any] = {"ssl": server_ssl} if secure else {}
        self.client_kwargs: dict[str, Any] = {"ssl_context": client_ssl} if secure else {}
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl

    def __repr__(self) -> str:
        return f"NetMode({self.scheme})"


@pytest.fixture(params=["tcp", "tls"])
def net_mode(
    request: pytest.FixtureRequest,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> NetMode:
    """Parametrises a test over plain TCP (ws://) and TLS (wss://)."""
    if request.param == "tcp":
        return NetMode(False)
    return NetMode(True, server_ssl_context, client_ssl_context)


async def close_server(server: asyncio.AbstractServer) -> None:
    """Stop listening and wait (bounded) for the server to finish closing."""
    server.close()
    close_clients = getattr(server, "close_clients", None)
    if close_clients is not None:  # Python 3.13+: wait_closed waits for clients
        close_clients()
    with _contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(server.wait_closed(), 2)


def server_port(server: asyncio.AbstractServer) -> int:
    """The port of the server's IPv4 socket (a wildcard bind may add an IPv6 one)."""
    import socket

    sockets = list(server.sockets)  # type: ignore[attr-defined]
    for sock in sockets:
        if sock.family == socket.AF_INET:
            return int(sock.getsockname()[1])
    return int(sockets[0].getsockname()[1])


@_contextlib.asynccontextmanager
async def serve_picows(
    factory: Any, mode: NetMode | None = None, host: Any = "127.0.0.1", **kwargs: Any
) -> AsyncIterator[tuple[asyncio.AbstractServer, str]]:
    """A picows server on a free port; yields ``(server, "ws[s]://127.0.0.1:<port>")``."""
    if mode is not None:
        kwargs = {**mode.server_kwargs, **kwargs}
    scheme = "wss" if kwargs.get("ssl") is not None else "ws"
    server = await picows.ws_create_server(factory, host, 0, **kwargs)
    try:
        yield server, f"{scheme}://127.0.0.1:{server_port(server)}"
    finally:
        await close_server(server)


async def read_to_eof(reader: asyncio.StreamReader, timeout: float = 3) -> bytes:
    """Everything the peer sends until it closes (a reset counts as the end)."""

    async def read_all() -> bytes:
        data = bytearray()
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                return bytes(data)
            if not chunk:
                return bytes(data)
            data += chunk

    return await asyncio.wait_for(read_all(), timeout)


class RawHTTPResponse:
    """A parsed HTTP/1.1 response: ``status``, ``headers`` (CIMultiDict), ``body``."""

    def __init__(self, data: bytes) -> None:
        from multidict import CIMultiDict

        head, sep, self.body = data.partition(b"\r\n\r\n")
        assert sep, f"no complete header block in {data[:200]!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        self.status_line = status_line
        self.status = int(status_line.split(" ")[1])
        self.headers: CIMultiDict[str] = CIMultiDict()
        for line in lines:
            name, _, value = line.partition(":")
            self.headers.add(name, value.strip())


def ws_accept(key: str) -> str:
    """The Sec-WebSocket-Accept value for ``key`` (RFC 6455 4.2.2), computed independently."""
    import base64
    import hashlib

    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()
