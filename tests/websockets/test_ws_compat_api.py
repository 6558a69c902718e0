"""The items of issue 18's list that other test files leave out: Server's methods,
open_timeout, headers (User-Agent, Server, additional headers), origins, State,
reconnection, write_limit backpressure, and the exception hierarchy.  The peer is
the real ``websockets`` library wherever it can tell a difference."""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import random
import re
from collections.abc import Generator
from typing import Any, Optional

import pytest
import websockets.asyncio.client as upstream_client
import websockets.asyncio.server as upstream_server
import websockets.exceptions as upstream_exceptions

import picows
import picows.websockets as websockets
from picows.websockets.asyncio.utils import default_user_agent

TIMEOUT = 10


def port_of(server: Any) -> int:
    return int(server.sockets[0].getsockname()[1])


def url_of(server: Any) -> str:
    return f"ws://127.0.0.1:{port_of(server)}/"


async def echo(connection: Any) -> None:
    async for message in connection:
        await connection.send(message)


async def raw_status(port: int, headers: str) -> int:
    """The status a server answers to an upgrade request with ``headers`` added."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{headers}\r\n".encode()
        )
        status_line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        return int(status_line.split()[1])
    finally:
        writer.close()


# -- Server -----------------------------------------------------------------------


async def test_server_start_serving_serve_forever_and_close() -> None:
    server = await websockets.serve(echo, "127.0.0.1", 0, start_serving=False)
    assert server.get_loop() is asyncio.get_running_loop()
    assert not server.is_serving()
    await server.start_serving()
    assert server.is_serving()
    forever = asyncio.create_task(server.serve_forever())
    async with upstream_client.connect(url_of(server)) as client:
        await client.send("hi")
        assert await asyncio.wait_for(client.recv(), TIMEOUT) == "hi"
        server.close(code=1012, reason="restart")
        with pytest.raises(upstream_exceptions.ConnectionClosed) as info:
            await asyncio.wait_for(client.recv(), TIMEOUT)
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (1012, "restart")
    await asyncio.wait_for(forever, TIMEOUT)  # returns once the server is closed
    assert not server.is_serving()


async def test_cancelling_serve_forever_closes_the_server_with_1001() -> None:
    connected = asyncio.Event()

    async def hold(connection: Any) -> None:
        connected.set()
        await connection.wait_closed()

    server = await websockets.serve(hold, "127.0.0.1", 0)
    forever = asyncio.create_task(server.serve_forever())
    async with upstream_client.connect(url_of(server)) as client:
        await asyncio.wait_for(connected.wait(), TIMEOUT)
        forever.cancel()
        with pytest.raises(upstream_exceptions.ConnectionClosedOK) as info:
            await asyncio.wait_for(client.recv(), TIMEOUT)
        assert info.value.rcvd.code == 1001
    with pytest.raises(asyncio.CancelledError):
        await forever
    await asyncio.wait_for(server.wait_closed(), TIMEOUT)


# -- connect: open_timeout, reconnection ------------------------------------------------


async def test_open_timeout_when_the_server_never_answers() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads the request, answers nothing, until the client leaves
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        with pytest.raises(asyncio.TimeoutError, match="opening handshake"):
            await asyncio.wait_for(websockets.connect(url_of(server), open_timeout=0.2), TIMEOUT)
    finally:
        server.close()


async def test_async_for_retries_503_then_gives_up_on_403() -> None:
    statuses = [503, 503, 101, 403]

    def process_request(connection: Any, request: Any) -> Optional[Any]:
        status = statuses.pop(0)
        return None if status == 101 else connection.respond(status, "no\n")

    def no_delays() -> Generator[float, None, None]:
        while True:
            yield 0.0

    async with upstream_server.serve(
        echo, "127.0.0.1", 0, process_request=process_request
    ) as server:
        connections = 0
        with pytest.raises(websockets.InvalidStatus) as info:
            async for ws in websockets.connect(url_of(server), reconnect_delays=no_delays):
                connections += 1
                await ws.close(1001)  # the next iteration connects again
        assert info.value.response.status_code == 403
        assert (connections, statuses) == (1, [])


def test_backoff_delays_are_websockets_delays() -> None:
    """The first delay is random (RFC 6455 7.2.3), then they grow to a cap."""
    from websockets.client import backoff as upstream_backoff

    from picows.websockets.asyncio.client import backoff

    random.seed(7)
    ours = list(itertools.islice(backoff(), 15))
    random.seed(7)
    theirs = list(itertools.islice(upstream_backoff(), 15))
    assert ours == pytest.approx(theirs)
    assert ours[-1] == 90.0


# -- headers ------------------------------------------------------------------------


async def test_client_headers_seen_by_a_websockets_server() -> None:
    seen: list[Any] = []

    def record(connection: Any, request: Any) -> None:
        seen.append(request.headers)

    async with upstream_server.serve(
        echo, "127.0.0.1", 0, process_request=record, subprotocols=["v2", "v1"]
    ) as server:
        async with websockets.connect(
            url_of(server),
            additional_headers={"X-Token": "t0k"},
            origin="https://app.example",
            subprotocols=["v1", "v2"],
        ) as ws:
            assert ws.subprotocol == "v2"  # the server's preference among those offered
            assert ws.response.headers["Server"].startswith("Python/")
            assert ws.request.headers["X-Token"] == "t0k"
        for user_agent in (None, "bot/1"):
            async with websockets.connect(
                url_of(server), user_agent_header=user_agent, subprotocols=["v1"]
            ):
                pass
    assert seen[0]["User-Agent"] == default_user_agent()
    assert (seen[0]["X-Token"], seen[0]["Origin"]) == ("t0k", "https://app.example")
    assert "User-Agent" not in seen[1]
    assert seen[2]["User-Agent"] == "bot/1"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, default_user_agent()),
        ({"server_header": None}, None),
        ({"server_header": "s/2"}, "s/2"),
    ],
)
async def test_server_header_seen_by_a_websockets_client(
    options: dict[str, Any], expected: Optional[str]
) -> None:
    async with websockets.serve(echo, "127.0.0.1", 0, **options) as server:
        async with upstream_client.connect(url_of(server)) as client:
            assert client.response.headers.get("Server") == expected


async def test_origins_strings_patterns_and_none() -> None:
    origins = [None, "https://a.example", re.compile(r"https://[a-z]+\.b\.example")]
    async with websockets.serve(echo, "127.0.0.1", 0, origins=origins) as server:
        for origin in (None, "https://a.example", "https://x.b.example"):
            async with upstream_client.connect(url_of(server), origin=origin) as client:
                assert client.response.status_code == 101
        with pytest.raises(upstream_exceptions.InvalidStatus) as info:
            await upstream_client.connect(url_of(server), origin="https://a.example.evil")
        assert info.value.response.status_code == 403
        # RFC 6454 7.3: at most one Origin header.
        twice = "Origin: https://a.example\r\nOrigin: https://a.example\r\n"
        assert await raw_status(port_of(server), twice) == 400
    async with websockets.serve(echo, "127.0.0.1", 0, origins=["https://a.example"]) as server:
        with pytest.raises(upstream_exceptions.InvalidStatus) as info:
            await upstream_client.connect(url_of(server))  # no Origin, None not allowed
        assert info.value.response.status_code == 403


# -- State and the closing handshake ------------------------------------------------


class IgnoresClose(picows.WSListener):
    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        pass  # neither echoes CLOSE nor closes TCP


async def test_state_goes_open_closing_closed() -> None:
    server = await picows.ws_create_server(lambda _: IgnoresClose(), "127.0.0.1", 0)
    try:
        ws = await websockets.connect(url_of(server), close_timeout=0.2)
        assert ws.state is websockets.State.OPEN
        closing = asyncio.create_task(ws.close(4000, "bye"))
        await asyncio.sleep(0)  # one turn: close() has sent its CLOSE and now waits
        assert ws.state is websockets.State.CLOSING
        await asyncio.wait_for(closing, TIMEOUT)  # close_timeout aborts TCP
        assert ws.state is websockets.State.CLOSED
        with pytest.raises(websockets.ConnectionClosedError) as info:
            await ws.recv()
        assert (info.value.rcvd, info.value.sent.code, info.value.sent.reason) == (
            None,
            4000,
            "bye",
        )
    finally:
        server.close()


# -- write_limit --------------------------------------------------------------------


async def test_send_waits_while_the_write_buffer_is_over_write_limit() -> None:
    """The peer (websockets, max_queue=1) stops reading; our writes fill the socket
    buffers, then the transport's buffer passes write_limit and send() waits until
    the peer reads again."""
    reading = asyncio.Event()
    chunk, count = b"x" * 65536, 512  # 32 MiB: more than loopback's socket buffers

    async def slow_reader(connection: Any) -> None:
        await reading.wait()
        async for message in connection:
            if message == b"end":
                await connection.send("done")

    async with upstream_server.serve(
        slow_reader, "127.0.0.1", 0, max_queue=1, compression=None, max_size=None
    ) as server:
        async with websockets.connect(
            url_of(server), write_limit=(65536, 16384), compression=None
        ) as ws:
            low, high = ws.transport.underlying_transport.get_write_buffer_limits()
            assert (low, high) == (16384, 65536)

            async def send_all() -> None:
                for _ in range(count):
                    await ws.send(chunk)  # suspends only to wait for drain
                await ws.send(b"end")

            sender = asyncio.create_task(send_all())
            await asyncio.sleep(0)  # one step of the sender: it writes until it must wait
            assert ws._write_paused and not sender.done()
            assert ws.transport.underlying_transport.get_write_buffer_size() > high
            reading.set()
            await asyncio.wait_for(sender, TIMEOUT)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "done"


# -- exceptions ---------------------------------------------------------------------


def test_exception_hierarchy_matches_websockets() -> None:
    # websockets 16+ added a few exceptions for HTTP parsing limits that the core
    # doesn't raise; every other class has the same bases in the same order.
    newer = {
        "RequestLineTooLong",
        "StatusLineTooLong",
        "HeaderLineTooLong",
        "TooManyHeaders",
        "InvalidMethod",
        "InvalidProtocol",
    }
    compared = 0
    for name in upstream_exceptions.__all__:
        ours = getattr(websockets.exceptions, name, None)
        if ours is None:
            assert name in newer, f"{name} is missing from picows.websockets.exceptions"
            continue
        theirs = getattr(upstream_exceptions, name)
        assert [c.__name__ for c in ours.__mro__] == [c.__name__ for c in theirs.__mro__], name
        compared += 1
    assert compared >= 25


class SendsFragments(picows.WSListener):
    """Sends one TEXT message in ``count`` frames, all empty but the first."""

    def __init__(self, count: int) -> None:
        self.count = count

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        transport.send(picows.WSMsgType.TEXT, b"start", fin=False)
        for _ in range(self.count - 2):
            transport.send(picows.WSMsgType.CONTINUATION, b"", fin=False)
        transport.send(picows.WSMsgType.CONTINUATION, b"", fin=True)

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        if frame.msg_type == picows.WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


@pytest.mark.parametrize("count", [4096, 4097])
async def test_recv_bounds_the_number_of_fragments(count: int) -> None:
    """Empty fragments take no max_size but memory each: recv() stops at 4096
    frames, as websockets (1009, TooManyFragments)."""
    server = await picows.ws_create_server(lambda _: SendsFragments(count), "127.0.0.1", 0)
    try:
        async with websockets.connect(url_of(server), compression=None) as ws:
            if count <= 4096:
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "start"
                return
            with pytest.raises(websockets.ConnectionClosedError) as info:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert (info.value.sent.code, info.value.sent.reason) == (1009, "too many fragments")
            assert isinstance(info.value.__cause__, websockets.TooManyFragments)
    finally:
        server.close()


@pytest.mark.parametrize("uri", ["http://example.com/", "ws://", "ws://[::1/", "example.com"])
async def test_invalid_uri(uri: str) -> None:
    with pytest.raises(websockets.InvalidURI):
        await websockets.connect(uri)


async def test_concurrent_recv_is_a_concurrency_error() -> None:
    async with websockets.serve(echo, "127.0.0.1", 0) as server:
        async with websockets.connect(url_of(server)) as ws:
            first = asyncio.create_task(ws.recv())
            await asyncio.sleep(0)  # one turn: the first recv() is waiting
            with pytest.raises(websockets.ConcurrencyError):
                await ws.recv()
            assert isinstance(websockets.ConcurrencyError("x"), RuntimeError)
            await ws.send("unblock")
            assert await asyncio.wait_for(first, TIMEOUT) == "unblock"


async def test_rcvd_and_sent_on_both_sides() -> None:
    closed: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(connection: Any) -> None:
        try:
            await connection.recv()
        except websockets.ConnectionClosed as exc:
            closed.put_nowait(exc)

    async with websockets.serve(handler, "127.0.0.1", 0) as server:
        async with upstream_client.connect(url_of(server)) as client:
            await client.close(4001, "client done")
        exc = await asyncio.wait_for(closed.get(), TIMEOUT)
    assert isinstance(exc, websockets.ConnectionClosedError)  # 4001 isn't an OK code
    assert (exc.rcvd.code, exc.rcvd.reason, exc.sent.code) == (4001, "client done", 4001)
    assert exc.rcvd_then_sent is True
