"""connect() follows redirects as websockets does, and goes through every kind of
proxy the core supports.

Redirects (websockets' rules, applied by the layer; the core follows none for it):
300-308 with Location, at most 10 hops, never from wss:// to ws://, and a redirect
to another origin drops the credentials (Authorization, Cookie).  The servers are
real websockets servers; the proxies are the daemons of tests/proxies.py.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any, Callable, Optional

import pytest
import websockets.asyncio.server as upstream_server

import picows.websockets as websockets

pytest.register_assert_rewrite("proxies")  # before the import: its asserts are tests too

from proxies import ProxyCase  # noqa: E402

pytest_plugins = ["proxies"]

TIMEOUT = 10


def port_of(server: Any) -> int:
    return int(server.sockets[0].getsockname()[1])


async def tell_headers(connection: Any) -> None:
    """Sends back the request's path and the headers a redirect may drop."""
    headers = connection.request.headers
    names = ("Authorization", "Cookie", "X-Keep")
    await connection.send(json.dumps([connection.request.path, *map(headers.get, names)]))


def redirecting(routes: dict[str, tuple[int, str]]) -> Callable[..., Optional[Any]]:
    """A websockets process_request answering ``routes[path]`` = (status, Location)."""

    def process_request(connection: Any, request: Any) -> Optional[Any]:
        if request.path not in routes:
            return None
        status, location = routes[request.path]
        response = connection.respond(status, "moved\n")
        response.headers["Location"] = location
        return response

    return process_request


@pytest.mark.parametrize("status", [300, 301, 302, 303, 307, 308])
async def test_same_origin_redirect_keeps_credentials(status: int) -> None:
    routes = {"/old": (status, "/new?q=1")}
    async with upstream_server.serve(
        tell_headers, "127.0.0.1", 0, process_request=redirecting(routes)
    ) as server:
        connector = websockets.connect(
            f"ws://alice:pw@127.0.0.1:{port_of(server)}/old",
            additional_headers={"Cookie": "c=1", "X-Keep": "yes"},
        )
        async with connector as ws:
            path, authorization, cookie, keep = json.loads(
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            )
        assert path == "/new?q=1"
        assert authorization is not None and authorization.startswith("Basic ")
        assert (cookie, keep) == ("c=1", "yes")
        # Reconnections (async for) go to where the redirect pointed.
        assert connector.uri.endswith("/new?q=1")


async def test_cross_origin_redirect_drops_credentials() -> None:
    async with upstream_server.serve(tell_headers, "127.0.0.1", 0) as target:
        routes = {"/": (302, f"ws://127.0.0.1:{port_of(target)}/there")}
        async with upstream_server.serve(
            tell_headers, "127.0.0.1", 0, process_request=redirecting(routes)
        ) as origin:
            async with websockets.connect(
                f"ws://127.0.0.1:{port_of(origin)}/",
                additional_headers={
                    "Authorization": "Bearer secret",
                    "Cookie": "c=1",
                    "X-Keep": "yes",
                },
            ) as ws:
                reply = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert reply == ["/there", None, None, "yes"]


async def test_redirect_loop_stops_after_ten() -> None:
    hops: list[str] = []

    def loop_forever(connection: Any, request: Any) -> Any:
        hops.append(request.path)
        response = connection.respond(302, "again\n")
        response.headers["Location"] = f"/hop{len(hops)}"
        return response

    async with upstream_server.serve(
        tell_headers, "127.0.0.1", 0, process_request=loop_forever
    ) as server:
        with pytest.raises(websockets.SecurityError, match="more than 10 redirects"):
            await websockets.connect(f"ws://127.0.0.1:{port_of(server)}/")
    assert len(hops) == 10


async def test_no_downgrade_from_wss_to_ws(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    routes = {"/": (302, "ws://127.0.0.1:1/")}
    async with upstream_server.serve(
        tell_headers, "127.0.0.1", 0, ssl=server_ssl_context, process_request=redirecting(routes)
    ) as server:
        with pytest.raises(websockets.SecurityError, match="non-secure"):
            await websockets.connect(f"wss://127.0.0.1:{port_of(server)}/", ssl=client_ssl_context)


async def test_a_3xx_without_location_is_invalid_status() -> None:
    def no_location(connection: Any, request: Any) -> Any:
        return connection.respond(302, "nowhere\n")

    async with upstream_server.serve(
        tell_headers, "127.0.0.1", 0, process_request=no_location
    ) as server:
        with pytest.raises(websockets.InvalidStatus) as info:
            await websockets.connect(f"ws://127.0.0.1:{port_of(server)}/")
    assert info.value.response.status_code == 302


async def test_every_kind_of_proxy(proxy_case: ProxyCase) -> None:
    """http, https (proxy_ssl), socks4 and socks5, with and without credentials."""

    async def echo(connection: Any) -> None:
        async for message in connection:
            await connection.send(message)

    options: dict[str, Any] = {}
    if "proxy_ssl_context" in proxy_case.kwargs:
        options["proxy_ssl"] = proxy_case.kwargs["proxy_ssl_context"]
    async with websockets.serve(echo, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{port_of(server)}/"
        async with websockets.connect(url, proxy=proxy_case.url, **options) as ws:
            await ws.send("through " + proxy_case.name)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "through " + proxy_case.name
            # The server saw the proxy's connection, not ours: the proxy was used.
            (connection,) = server.connections
            assert connection.remote_address != ws.local_address
