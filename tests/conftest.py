"""Shared fixtures: both backends, event loops, TLS certificates, echo servers.

Every test runs once per backend that exists here (``backend``: pure Python, and the
cffi accelerator where it is built), as multidict runs its tests over both of its
implementations; ``PICOWS_NO_EXTENSIONS=1`` leaves only the pure one.  Async tests also
run on the stock asyncio loop and on uvloop where it exists.  Helpers live in
``helpers.py``.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

import pytest
import pytest_asyncio.plugin

import picows

# tests/ is on sys.path (this file's folder): the helper modules import as top-level.
from helpers import ACCEL, ACCEL_IMPORT_ERROR, EchoListener, NetMode
from picows import _backend

try:
    import uvloop
except ImportError:  # PyPy, Windows
    uvloop = None  # type: ignore[assignment]


BACKENDS = ["python"] + (["cffi"] if _backend.CFFI is not None else [])


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"picows backends: {', '.join(BACKENDS)} (default {picows.BACKEND}); "
        f"interpreter: {sys.implementation.name}; "
        f"uvloop: {'yes' if uvloop is not None else 'no'}"
    )


@pytest.fixture(params=BACKENDS, autouse=True)
def backend(request: pytest.FixtureRequest) -> Iterator[_backend.Backend]:
    """Connections made during the test use this backend (picows._backend.select)."""
    with _backend.select(request.param) as chosen:
        yield chosen


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


@pytest.fixture(scope="session")
def accel() -> ModuleType:
    """``_picows_accel``; its tests are skipped where it is not built (the pure-only
    install), and test_accel.py fails when PICOWS_REQUIRE_EXTENSIONS says it must be."""
    if ACCEL is None:
        pytest.skip(f"_picows_accel is not built ({ACCEL_IMPORT_ERROR})")
    return ACCEL


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
