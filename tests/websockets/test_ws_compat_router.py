"""``route``: picows.websockets serving a werkzeug URL map, driven by the real
``websockets`` client over real sockets (and by a raw HTTP request where the
client would hide the answer, e.g. a redirect it follows)."""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import sys
import uuid
from typing import Any, Optional

import pytest
from websockets.asyncio.client import connect as upstream_connect
from websockets.exceptions import InvalidStatus
from werkzeug.routing import Map, Rule

import picows.websockets as websockets
from picows.websockets.asyncio.router import Router

TIMEOUT = 10


def port_of(server: Any) -> int:
    return int(server.sockets[0].getsockname()[1])


def base(server: Any, scheme: str = "ws") -> str:
    return f"{scheme}://127.0.0.1:{port_of(server)}"


async def raw_handshake(port: int, path: str, host: str) -> tuple[int, dict[str, str], bytes]:
    """The server's answer to an upgrade request, as sent on the wire."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        status_line, *lines = head.decode().split("\r\n")[:-2]
        headers = dict(line.split(": ", 1) for line in lines)
        length = int(headers.get("Content-Length", "0"))
        body = await asyncio.wait_for(reader.readexactly(length), TIMEOUT)
        return int(status_line.split()[1]), headers, body
    finally:
        writer.close()


async def echo_count(connection: Any, count: int) -> None:
    message = await connection.recv()
    for _ in range(count):
        await connection.send(message)


async def report(connection: Any, **values: Any) -> None:
    """Sends back what the handler sees: its URL values (with their types) and
    the connection's request path."""
    await connection.recv()
    described = {name: f"{type(value).__name__}:{value}" for name, value in values.items()}
    await connection.send(repr((sorted(described.items()), connection.request.path)))


async def received(url: str, **kwargs: Any) -> list[Any]:
    """What the server sends after "hello", until it closes (every handler here
    reads one message first, so that it never closes while "hello" is sent)."""
    async with upstream_connect(url, open_timeout=TIMEOUT, **kwargs) as client:
        await client.send("hello")
        return [message async for message in client]


def echo_map() -> Map:
    return Map(
        [
            Rule("/echo", defaults={"count": 1}, endpoint=echo_count),
            Rule("/echo/<int:count>", endpoint=echo_count),
            Rule("/channel/<uuid:channel>/<path:rest>", endpoint=report),
            Rule("/", endpoint=report),
            Rule("/r", redirect_to="/"),
            Rule("/room/", endpoint=report),
        ]
    )


async def test_paths_match_and_converted_values_reach_the_handler() -> None:
    async with websockets.route(echo_map(), "127.0.0.1", 0) as server:
        assert await received(base(server) + "/echo") == ["hello"]
        assert await received(base(server) + "/echo/3") == ["hello"] * 3
        channel = uuid.uuid4()
        messages = await received(f"{base(server)}/channel/{channel}/a/b?x=1")
        assert messages == [
            repr(
                (
                    [("channel", f"UUID:{channel}"), ("rest", "str:a/b")],
                    f"/channel/{channel}/a/b?x=1",  # the query is kept, not matched
                )
            )
        ]


async def test_unknown_path_is_404() -> None:
    async with websockets.route(echo_map(), "127.0.0.1", 0) as server:
        with pytest.raises(InvalidStatus) as info:
            await received(base(server) + "/nowhere")
        assert info.value.response.status_code == 404
        assert info.value.response.body == b"Not Found"
        # A converter that doesn't accept the segment is a miss too.
        with pytest.raises(InvalidStatus) as info:
            await received(base(server) + "/echo/three")
        assert info.value.response.status_code == 404


async def test_redirects_are_302_with_location_and_the_client_follows() -> None:
    async with websockets.route(echo_map(), "127.0.0.1", 0) as server:
        host = f"127.0.0.1:{port_of(server)}"
        status, headers, body = await raw_handshake(port_of(server), "/r", host)
        assert (status, headers["Location"]) == (302, f"ws://{host}/")
        assert body == f"Found at ws://{host}/".encode()
        # Strict slashes: werkzeug redirects a branch without its final slash.
        status, headers, _ = await raw_handshake(port_of(server), "/room?a=b", host)
        assert (status, headers["Location"]) == (302, f"ws://{host}/room/?a=b")
        # websockets' client follows both.
        assert await received(base(server) + "/r") == [repr(([], "/"))]
        assert await received(base(server) + "/room") == [repr(([], "/room/"))]


async def test_server_name_and_ssl_true_shape_the_redirect() -> None:
    """Behind a proxy: the host clients see, and wss:// when the proxy terminates TLS."""
    async with websockets.route(echo_map(), "127.0.0.1", 0, server_name="example.com") as server:
        status, headers, _ = await raw_handshake(port_of(server), "/r", "127.0.0.1")
        assert (status, headers["Location"]) == (302, "ws://example.com/")
    async with websockets.route(echo_map(), "127.0.0.1", 0, ssl=True) as server:
        host = f"127.0.0.1:{port_of(server)}"
        status, headers, _ = await raw_handshake(port_of(server), "/r", host)
        assert (status, headers["Location"]) == (302, f"wss://{host}/")
        # ssl=True serves no TLS itself: plain ws:// still works.
        assert await received(base(server) + "/echo") == ["hello"]


async def test_tls_context_serves_wss_and_redirects_to_wss(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    async with websockets.route(echo_map(), "127.0.0.1", 0, ssl=server_ssl_context) as server:
        url = base(server, "wss") + "/r"
        assert await received(url, ssl=client_ssl_context) == [repr(([], "/"))]


async def test_host_matching() -> None:
    async def local(connection: Any, port: int) -> None:
        await connection.recv()
        await connection.send(f"localhost {port}")

    async def loopback(connection: Any, port: int) -> None:
        await connection.recv()
        await connection.send(f"loopback {port}")

    url_map = Map(
        [
            Rule("/", host="localhost:<int:port>", endpoint=local),
            Rule("/", host="127.0.0.1:<int:port>", endpoint=loopback),
        ],
        host_matching=True,
    )
    async with websockets.route(url_map, "127.0.0.1", 0) as server:
        port = port_of(server)
        assert await received(f"ws://127.0.0.1:{port}/") == [f"loopback {port}"]
        # Same socket, another Host header.
        local_url = f"ws://localhost:{port}/"
        assert await received(local_url, host="127.0.0.1", port=port) == [f"localhost {port}"]
        status, _, _ = await raw_handshake(port, "/", f"example.com:{port}")
        assert status == 404


async def test_process_request_runs_first_and_its_response_wins() -> None:
    seen: list[str] = []

    def process_request(connection: Any, request: Any) -> Optional[Any]:
        seen.append(request.path)
        if request.path.startswith("/private"):
            return connection.respond(403, "Forbidden")
        connection.tag = "set by process_request"
        return None

    async def show_tag(connection: Any) -> None:
        await connection.recv()
        await connection.send(connection.tag)

    url_map = Map([Rule("/tagged", endpoint=show_tag)])
    async with websockets.route(url_map, "127.0.0.1", 0, process_request=process_request) as server:
        assert await received(base(server) + "/tagged") == ["set by process_request"]
        with pytest.raises(InvalidStatus) as info:
            await received(base(server) + "/private")  # no rule: the hook answered first
        assert info.value.response.status_code == 403
        with pytest.raises(InvalidStatus) as info:
            await received(base(server) + "/other")
        assert info.value.response.status_code == 404
    assert seen == ["/tagged", "/private", "/other"]


async def test_async_process_request_is_refused_with_500() -> None:
    """As upstream picows (its tests assert it): hooks must be synchronous."""

    async def process_request(connection: Any, request: Any) -> None:
        return None

    async with websockets.route(
        echo_map(), "127.0.0.1", 0, process_request=process_request
    ) as server:
        with pytest.raises(InvalidStatus) as info:
            await received(base(server) + "/echo")
        assert info.value.response.status_code == 500


async def test_process_response_sees_the_routing_answer() -> None:
    statuses: list[int] = []

    def process_response(connection: Any, request: Any, response: Any) -> None:
        statuses.append(response.status_code)
        response.headers["X-Routed"] = str(connection.handler is not None)

    async with websockets.route(
        echo_map(), "127.0.0.1", 0, process_response=process_response
    ) as server:
        async with upstream_connect(base(server) + "/echo") as client:
            assert client.response.headers["X-Routed"] == "True"
        with pytest.raises(InvalidStatus) as info:
            await received(base(server) + "/missing")
        assert info.value.response.headers["X-Routed"] == "False"
    assert statuses == [101, 404]


async def test_server_connection_exposes_handler_and_kwargs() -> None:
    seen: asyncio.Queue[Any] = asyncio.Queue()

    async def channel(connection: Any, name: str, page: int) -> None:
        seen.put_nowait((connection.handler, dict(connection.handler_kwargs), connection.server))
        await connection.recv()
        await connection.send("ok")

    url_map = Map([Rule("/<name>", defaults={"page": 1}, endpoint=channel)])
    async with websockets.route(url_map, "127.0.0.1", 0) as server:
        assert await received(base(server) + "/news") == ["ok"]
        handler, kwargs, owner = await asyncio.wait_for(seen.get(), TIMEOUT)
    assert (handler, kwargs, owner) == (channel, {"name": "news", "page": 1}, server)


async def test_create_router_customises_routing() -> None:
    class CountingRouter(Router):
        routed = 0

        def not_found(self, connection: Any) -> Any:
            return connection.respond(410, "Gone")

        async def handler(self, connection: Any) -> None:
            CountingRouter.routed += 1
            await super().handler(connection)

    async with websockets.route(echo_map(), "127.0.0.1", 0, create_router=CountingRouter) as server:
        assert await received(base(server) + "/echo") == ["hello"]
        with pytest.raises(InvalidStatus) as info:
            await received(base(server) + "/missing")
        assert info.value.response.status_code == 410
    assert CountingRouter.routed == 1


async def test_a_rule_that_refuses_get_is_a_500_not_a_crash() -> None:
    """werkzeug's 405 is an exception websockets doesn't catch: the handshake fails
    with 500 and the server goes on."""
    url_map = Map([Rule("/post", methods=["POST"], endpoint=report), Rule("/", endpoint=report)])
    async with websockets.route(url_map, "127.0.0.1", 0) as server:
        with pytest.raises(InvalidStatus) as info:
            await received(base(server) + "/post")
        assert info.value.response.status_code == 500
        assert await received(base(server) + "/") == [repr(([], "/"))]


def test_route_without_werkzeug_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail, as when werkzeug isn't installed.
    monkeypatch.setitem(sys.modules, "werkzeug.routing", None)
    with pytest.raises(ImportError, match=r"picows\[router\]"):
        websockets.route(echo_map())


def test_route_needs_a_werkzeug_map() -> None:
    # NotImplementedError rather than websockets' AttributeError: upstream picows'
    # tests call route(None) and expect it.
    with pytest.raises(NotImplementedError, match=r"werkzeug\.routing\.Map"):
        websockets.route(None)  # type: ignore[arg-type]
