"""Shared fixtures: event loops, TLS certificates, and a picows echo server.

The backend (pure Python or cffi) is chosen per process by the environment
(``PICOWS_NO_EXTENSIONS`` / ``PICOWS_REQUIRE_EXTENSIONS``); tox runs the whole suite
once per backend.  Within a run, asyncio tests run on the stock asyncio loop and on
uvloop where it exists.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import AsyncIterator
from typing import Any

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
