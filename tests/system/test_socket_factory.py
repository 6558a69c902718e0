"""How ws_connect opens its connection: ``socket_factory`` and ``use_aiofastnet``.

``socket_factory(url)`` may return a connected socket, an unconnected one (picows
connects it), or None (the default path); it may be a coroutine function; with a proxy
it gets the proxy's URL and its socket is the one to the proxy.  ``use_aiofastnet``
chooses aiofastnet's transports (None: when installed) for clients and servers.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
from typing import Any, Optional

import pytest

import picows
from helpers import EchoListener, serve_picows

pytest.register_assert_rewrite("proxies")  # before the import: its asserts are tests too

from proxies import (  # noqa: E402
    ProxyCase,
    assert_tls_in_tls_refused,
    echo_roundtrip,
    has_aiofastnet,
    tls_in_tls_unavailable,
)

pytest_plugins = ["proxies"]


def _socket_of(transport: picows.WSTransport) -> Any:
    return transport.underlying_transport.get_extra_info("socket")


@pytest.fixture(params=["ws", "wss"])
def target(request: pytest.FixtureRequest, client_ssl_context: ssl.SSLContext) -> Any:
    if request.param == "ws":
        return request.getfixturevalue("echo_server"), {}
    return request.getfixturevalue("wss_echo_server"), {"ssl_context": client_ssl_context}


# ---------------------------------------------------------------------------
# socket_factory without a proxy.


async def test_factory_returns_a_connected_socket(target: Any, use_aiofastnet: bool) -> None:
    url, kwargs = target
    seen: list[picows.WSParsedURL] = []
    made: list[socket.socket] = []

    def factory(endpoint: picows.WSParsedURL) -> socket.socket:
        seen.append(endpoint)
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        made.append(sock)
        return sock

    transport = await echo_roundtrip(
        url, socket_factory=factory, use_aiofastnet=use_aiofastnet, **kwargs
    )
    assert seen == [picows.parse_url(url)]
    assert transport.is_secure == url.startswith("wss")
    assert made[0].fileno() == -1  # closed with the connection


async def test_factory_returns_an_unconnected_socket(target: Any, use_aiofastnet: bool) -> None:
    url, kwargs = target
    keepalive: list[int] = []

    class Listener(EchoListener):
        def on_ws_connected(self, transport: picows.WSTransport) -> None:
            sock = _socket_of(transport)
            keepalive.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))

    def factory(endpoint: picows.WSParsedURL) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)  # proves it is ours
        return sock

    transport, _ = await picows.ws_connect(
        Listener, url, socket_factory=factory, use_aiofastnet=use_aiofastnet, **kwargs
    )
    assert keepalive == [1]
    transport.disconnect()
    await asyncio.wait_for(transport.wait_disconnected(), 5)


async def test_factory_returns_none(target: Any) -> None:
    url, kwargs = target
    calls: list[picows.WSParsedURL] = []
    await echo_roundtrip(url, socket_factory=lambda endpoint: calls.append(endpoint), **kwargs)
    assert calls == [picows.parse_url(url)]


async def test_coroutine_factory(target: Any) -> None:
    url, kwargs = target

    async def factory(endpoint: picows.WSParsedURL) -> Optional[socket.socket]:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        await loop.sock_connect(sock, (endpoint.host, endpoint.port))
        return sock

    await echo_roundtrip(url, socket_factory=factory, **kwargs)


async def test_coroutine_factory_returning_none(echo_server: str) -> None:
    async def factory(endpoint: picows.WSParsedURL) -> None:
        return None

    await echo_roundtrip(echo_server, socket_factory=factory)


async def test_factory_must_return_a_socket(echo_server: str) -> None:
    with pytest.raises(TypeError, match=r"socket_factory must return a socket\.socket or None"):
        await picows.ws_connect(picows.WSListener, echo_server, socket_factory=lambda url: 42)


async def test_unconnected_socket_to_a_closed_port(closed_port: int) -> None:
    made: list[socket.socket] = []

    def factory(endpoint: picows.WSParsedURL) -> socket.socket:
        made.append(socket.socket())
        return made[-1]

    with pytest.raises(ConnectionRefusedError):
        await picows.ws_connect(
            picows.WSListener, f"ws://127.0.0.1:{closed_port}/", socket_factory=factory
        )
    assert made[0].fileno() == -1  # picows owned it, picows closed it


async def test_factory_exception_propagates(echo_server: str) -> None:
    def factory(endpoint: picows.WSParsedURL) -> socket.socket:
        raise LookupError("no route for you")

    with pytest.raises(LookupError, match="no route for you"):
        await picows.ws_connect(picows.WSListener, echo_server, socket_factory=factory)


# ---------------------------------------------------------------------------
# socket_factory with a proxy: it gets the proxy's URL; its socket goes to the proxy.


@pytest.mark.parametrize("connected", [True, False], ids=["connected", "unconnected"])
async def test_factory_with_proxy_gets_the_proxy_url(
    proxy_case: ProxyCase, target: Any, connected: bool
) -> None:
    url, kwargs = target
    if tls_in_tls_unavailable(proxy_case, url):
        await assert_tls_in_tls_refused(url, proxy_case, **kwargs)
        return
    seen: list[picows.WSParsedURL] = []

    def factory(endpoint: picows.WSParsedURL) -> socket.socket:
        seen.append(endpoint)
        if connected:
            return socket.create_connection((endpoint.host, endpoint.port), timeout=5)
        return socket.socket()

    await echo_roundtrip(
        url, proxy=proxy_case.url, socket_factory=factory, **kwargs, **proxy_case.kwargs
    )
    assert seen == [picows.parse_url(proxy_case.url, check_scheme=False)]


@pytest.mark.parametrize("scheme", ["http", "https", "socks4", "socks5"])
async def test_factory_socket_to_a_dead_proxy(
    scheme: str, closed_port: int, echo_server: str, client_ssl_context: ssl.SSLContext
) -> None:
    kwargs = {"proxy_ssl_context": client_ssl_context} if scheme == "https" else {}
    with pytest.raises(picows.WSProxyError, match="connection to the proxy failed") as info:
        await picows.ws_connect(
            picows.WSListener,
            echo_server,
            proxy=f"{scheme}://127.0.0.1:{closed_port}",
            socket_factory=lambda endpoint: socket.socket(),
            **kwargs,
        )
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


async def test_factory_socket_with_socks_wrong_credentials(
    microsocks_auth: str, echo_server: str
) -> None:
    proxy = f"socks5://user:wrong@{microsocks_auth}"
    with pytest.raises(picows.WSProxyError, match="SOCKS5 handshake failed") as info:
        await picows.ws_connect(
            picows.WSListener, echo_server, proxy=proxy, socket_factory=lambda e: socket.socket()
        )
    assert info.value.proxy == f"socks5://user@{microsocks_auth}"


# ---------------------------------------------------------------------------
# use_aiofastnet: None means "when installed", True insists, False never.


def _is_aiofastnet(transport: Any) -> bool:
    import aiofastnet

    return isinstance(transport, aiofastnet.Transport)


@pytest.mark.skipif(not has_aiofastnet(), reason="aiofastnet is not installed (CPython only)")
@pytest.mark.aiofastnet  # runs with the cffi backend only (conftest.py)
@pytest.mark.parametrize(("use", "expected"), [(True, True), (None, True), (False, False)], ids=str)
async def test_use_aiofastnet_client_and_server(
    use: Optional[bool], expected: bool, target: Any
) -> None:
    url, kwargs = target
    transport = await echo_roundtrip(url, use_aiofastnet=use, **kwargs)
    assert _is_aiofastnet(transport.underlying_transport) == expected

    server_transports: list[Any] = []

    class Listener(EchoListener):
        def on_ws_connected(self, transport: picows.WSTransport) -> None:
            server_transports.append(transport.underlying_transport)

    async with serve_picows(lambda request: Listener(), use_aiofastnet=use) as (_, base):
        await echo_roundtrip(base + "/", use_aiofastnet=False)
    assert _is_aiofastnet(server_transports[0]) == expected


async def test_use_aiofastnet_none_without_aiofastnet(
    echo_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "aiofastnet", None)
    transport = await echo_roundtrip(echo_server)
    assert type(transport.underlying_transport).__module__.split(".")[0] in ("asyncio", "uvloop")
    async with serve_picows(lambda request: EchoListener()) as (_, base):
        await echo_roundtrip(base + "/")


async def test_use_aiofastnet_true_without_aiofastnet(
    echo_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "aiofastnet", None)
    with pytest.raises(ImportError, match="pip install aiofastnet"):
        await picows.ws_connect(picows.WSListener, echo_server, use_aiofastnet=True)
    with pytest.raises(ImportError, match="pip install aiofastnet"):
        await picows.ws_create_server(
            lambda request: EchoListener(), "127.0.0.1", 0, use_aiofastnet=True
        )
