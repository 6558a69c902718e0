"""ws_connect follows redirects (301, 302, 303, 307, 308), directly and through proxies.

The redirecting servers are picows servers whose listener factory answers some paths
with a 3xx response; the final hop is picows' echo server (``conftest.py``).  Each hop
is a new connection: through the proxy when one is set, which the tests check by
counting the calls of a ``socket_factory`` (it gets the proxy's URL and returns None).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any, Optional

import pytest

import picows
from helpers import EchoListener, NetMode, serve_picows
from picows import WSHandshakeError, WSInvalidStatusError, WSUpgradeResponse

pytest.register_assert_rewrite("proxies")  # before the import: its asserts are tests too

from proxies import (  # noqa: E402
    ProxyCase,
    assert_tls_in_tls_refused,
    echo_roundtrip,
    tls_in_tls_unavailable,
)

pytest_plugins = ["proxies"]

REDIRECTS = [301, 302, 303, 307, 308]


class Redirector:
    """A listener factory: ``routes[path] = (status, Location or None)``, else echo."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, Optional[str]]] = {}
        self.requests: list[str] = []

    def __call__(self, request: picows.WSUpgradeRequest) -> Any:
        path = request.path.decode()
        self.requests.append(path)
        if path not in self.routes:
            return EchoListener()
        status, location = self.routes[path]
        if location is None:
            response = WSUpgradeResponse(b"HTTP/1.1", status)
        else:
            response = WSUpgradeResponse.create_redirect_response(status, location)
        return picows.WSUpgradeResponseWithListener(response, None)


@pytest.fixture(params=["ws", "wss"])
def mode(
    request: pytest.FixtureRequest,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> NetMode:
    if request.param == "ws":
        return NetMode(False)
    return NetMode(True, server_ssl_context, client_ssl_context)


@pytest.fixture
async def redirector(mode: NetMode) -> AsyncIterator[tuple[Redirector, str]]:
    """A redirecting server (ws or wss, as ``mode``) and its base URL."""
    router = Redirector()
    async with serve_picows(router, mode) as (_, base):
        yield router, base


@pytest.fixture
async def echo_url(mode: NetMode) -> AsyncIterator[str]:
    """An echo server on a different port, with the same scheme as the redirector."""
    async with serve_picows(lambda request: EchoListener(), mode) as (_, base):
        yield base + "/echo"


def two_hops(router: Redirector, base: str, echo_url: str) -> str:
    """/hops/first --301, relative--> /hops/second?hop=2 --308, absolute--> echo_url.

    Returns the first URL.  The relative reference resolves against the current URL
    (RFC 3986 5.2): "second?hop=2" from /hops/first is /hops/second?hop=2.
    """
    router.routes["/hops/first"] = (301, "second?hop=2")
    router.routes["/hops/second?hop=2"] = (308, echo_url)
    return base + "/hops/first"


async def test_two_hops(
    redirector: tuple[Redirector, str],
    echo_url: str,
    mode: NetMode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    router, base = redirector
    url = two_hops(router, base, echo_url)
    with caplog.at_level(logging.INFO, logger="picows"):
        transport = await echo_roundtrip(url, **mode.client_kwargs)
    assert router.requests == ["/hops/first", "/hops/second?hop=2"]
    assert transport.request.path == b"/echo"
    hops = [r.getMessage() for r in caplog.records if "redirect" in r.getMessage()]
    assert len(hops) == 2
    assert f"{base}/hops/second?hop=2" in hops[0] and echo_url in hops[1]


async def test_two_hops_through_proxy(
    proxy_case: ProxyCase,
    redirector: tuple[Redirector, str],
    echo_url: str,
    mode: NetMode,
) -> None:
    router, base = redirector
    url = two_hops(router, base, echo_url)
    if tls_in_tls_unavailable(proxy_case, url):
        await assert_tls_in_tls_refused(url, proxy_case, **mode.client_kwargs)
        return
    seen: list[picows.WSParsedURL] = []

    def count_connections(endpoint: picows.WSParsedURL) -> None:
        seen.append(endpoint)  # and let picows connect as usual

    await echo_roundtrip(
        url,
        proxy=proxy_case.url,
        socket_factory=count_connections,
        **mode.client_kwargs,
        **proxy_case.kwargs,
    )
    assert router.requests == ["/hops/first", "/hops/second?hop=2"]
    proxy = picows.parse_url(proxy_case.url, check_scheme=False)
    assert [(e.scheme, e.host, e.port) for e in seen] == [
        (proxy.scheme, proxy.host, proxy.port)
    ] * 3


@pytest.mark.parametrize("status", REDIRECTS)
async def test_each_redirect_status(
    status: int, redirector: tuple[Redirector, str], echo_url: str, mode: NetMode
) -> None:
    router, base = redirector
    router.routes["/"] = (status, echo_url)
    await echo_roundtrip(base + "/", **mode.client_kwargs)


async def test_redirects_disabled(
    redirector: tuple[Redirector, str], echo_url: str, mode: NetMode
) -> None:
    router, base = redirector
    router.routes["/"] = (302, echo_url)
    with pytest.raises(WSInvalidStatusError) as info:
        await picows.ws_connect(
            picows.WSListener, base + "/", max_redirects=0, **mode.client_kwargs
        )
    assert info.value.response is not None and info.value.response.status == 302
    assert router.requests == ["/"]


async def test_exhausted_limit_raises_the_last_response(
    redirector: tuple[Redirector, str], echo_url: str, mode: NetMode
) -> None:
    router, base = redirector
    url = two_hops(router, base, echo_url)
    with pytest.raises(WSHandshakeError) as info:
        await picows.ws_connect(picows.WSListener, url, max_redirects=1, **mode.client_kwargs)
    response = info.value.response
    assert response is not None and response.status == 308
    assert response.headers["Location"] == echo_url


async def test_redirect_loop_stops_after_max_redirects(
    redirector: tuple[Redirector, str], mode: NetMode
) -> None:
    router, base = redirector
    router.routes["/loop"] = (302, "/loop")
    with pytest.raises(WSInvalidStatusError):
        await picows.ws_connect(picows.WSListener, base + "/loop", **mode.client_kwargs)
    assert router.requests == ["/loop"] * 6  # the first request and 5 redirects


async def test_missing_location(redirector: tuple[Redirector, str], mode: NetMode) -> None:
    router, base = redirector
    router.routes["/"] = (307, None)
    with pytest.raises(WSHandshakeError, match="without Location header") as info:
        await picows.ws_connect(picows.WSListener, base + "/", **mode.client_kwargs)
    assert info.value.response is not None and info.value.response.status == 307


async def test_no_downgrade_from_wss_to_ws(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext, echo_server: str
) -> None:
    router = Redirector()
    router.routes["/"] = (302, echo_server)
    async with serve_picows(router, NetMode(True, server_ssl_context, client_ssl_context)) as (
        _,
        base,
    ):
        with pytest.raises(WSHandshakeError, match="non-secure URL") as info:
            await picows.ws_connect(picows.WSListener, base + "/", ssl_context=client_ssl_context)
    assert info.value.response is not None and info.value.response.status == 302


async def test_upgrade_from_ws_to_wss(
    wss_echo_server: str, client_ssl_context: ssl.SSLContext
) -> None:
    router = Redirector()
    router.routes["/"] = (301, wss_echo_server)
    async with serve_picows(router) as (_, base):
        transport = await echo_roundtrip(base + "/", ssl_context=client_ssl_context)
    assert transport.is_secure


async def test_redirect_to_a_non_websocket_url() -> None:
    router = Redirector()
    router.routes["/"] = (302, "https://example.com/")
    async with serve_picows(router) as (_, base):
        with pytest.raises(picows.WSInvalidURL, match="scheme isn't ws or wss"):
            await picows.ws_connect(picows.WSListener, base + "/")
