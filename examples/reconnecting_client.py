"""A client that reconnects with exponential backoff, a bounded number of times.

    python examples/reconnecting_client.py

``connect_with_retry`` retries a failed ``ws_connect`` after 0.05 s, 0.1 s, 0.2 s...
(capped, with jitter) and gives up after ``max_attempts``.  The main loop calls it
again whenever a connection is lost, so the backoff starts afresh after each success.

The demo starts with no server (the first attempts are refused), brings one up after
two failures, lets it drop the connection once (CLOSE 1001 Going Away), and shows
the client coming back.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Awaitable
from typing import Callable, Optional

import picows
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest


class Client(WSListener):
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            print(f"client: CLOSE {int(frame.get_close_code())} received")
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type == WSMsgType.TEXT:
            self.inbox.put_nowait(frame.get_payload_as_bytes())


async def connect_with_retry(
    url: str,
    max_attempts: int = 8,
    first_delay: float = 0.05,
    max_delay: float = 2.0,
    on_failure: Optional[Callable[[int, BaseException], Awaitable[None]]] = None,
) -> tuple[WSTransport, Client]:
    """Connect, retrying with exponential backoff; re-raises the last error at the end."""
    delay = first_delay
    for attempt in range(1, max_attempts + 1):
        try:
            transport, listener = await picows.ws_connect(Client, url)
            assert isinstance(listener, Client)
            return transport, listener
        except (OSError, asyncio.TimeoutError, picows.WSError) as exc:
            print(f"client: attempt {attempt} failed: {type(exc).__name__}")
            if attempt == max_attempts:
                raise
            if on_failure is not None:
                await on_failure(attempt, exc)
            # Full jitter keeps a crowd of clients from reconnecting in lockstep.
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")


class Server(WSListener):
    """Says hello to each client; the first connection is dropped with 1001."""

    connections = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        Server.connections += 1
        transport.send(WSMsgType.TEXT, f"hello #{Server.connections}".encode())
        if Server.connections == 1:
            transport.send_close(WSCloseCode.GOING_AWAY, b"restarting")

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


async def main() -> None:
    with socket.socket() as sock:  # pick a free port for a server that isn't up yet
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/"
    servers: list[asyncio.AbstractServer] = []

    def route(request: WSUpgradeRequest) -> WSListener:
        return Server()

    async def start_server_after_two_failures(attempt: int, exc: BaseException) -> None:
        if attempt == 2:
            servers.append(await picows.ws_create_server(route, "127.0.0.1", port))
            print("server: up")

    for session in range(2):  # connection 1 is dropped by the server, 2 ends normally
        transport, client = await connect_with_retry(
            url, on_failure=start_server_after_two_failures
        )
        print("client: received", await asyncio.wait_for(client.inbox.get(), 5))
        if session == 1:
            transport.send_close(WSCloseCode.OK)
        await asyncio.wait_for(transport.wait_disconnected(), 5)
        print(f"client: disconnected after session {session + 1}")

    for server in servers:
        server.close()
        await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
