"""Graceful shutdown: tell every client "going away", then wait (bounded) for them.

    python examples/graceful_shutdown.py

On shutdown the server (1) stops accepting connections, (2) sends CLOSE 1001
GOING_AWAY to every client, (3) waits for the clients to answer and disconnect, and
(4) after a timeout drops whoever is still there.  Clients see a clean close with a
code that says "reconnect later", instead of a reset.
"""

from __future__ import annotations

import asyncio

import picows
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest

CLIENTS = 3


class Tracked(WSListener):
    def __init__(self, live: set[WSTransport]) -> None:
        self.live = live

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.live.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.live.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


async def shutdown(server: asyncio.AbstractServer, live: set[WSTransport], timeout: float) -> None:
    server.close()  # (1) no new connections
    for transport in list(live):  # (2) ask everyone to leave
        transport.send_close(WSCloseCode.GOING_AWAY, b"server shutting down")
    waiters = [asyncio.ensure_future(t.wait_disconnected()) for t in list(live)]
    if waiters:
        _, pending = await asyncio.wait(waiters, timeout=timeout)  # (3) bounded wait
        for transport in list(live):  # (4) whoever didn't answer in time
            transport.disconnect(graceful=False)
        for waiter in pending:
            waiter.cancel()
    await server.wait_closed()


class Client(WSListener):
    def __init__(self) -> None:
        self.close_code: WSCloseCode | None = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            self.close_code = frame.get_close_code()
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


async def main() -> None:
    live: set[WSTransport] = set()

    def route(request: WSUpgradeRequest) -> WSListener:
        return Tracked(live)

    server = await picows.ws_create_server(route, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    clients = [await picows.ws_connect(Client, url) for _ in range(CLIENTS)]
    for transport, _ in clients:  # a round trip each: the server has seen them all
        await transport.measure_roundtrip_time(1)
    print(f"server: {len(live)} clients connected, shutting down")

    await shutdown(server, live, timeout=2.0)
    print(f"server: stopped, {len(live)} clients left")
    for index, (transport, client) in enumerate(clients):
        assert isinstance(client, Client)
        await asyncio.wait_for(transport.wait_disconnected(), 5)
        assert client.close_code == WSCloseCode.GOING_AWAY
        print(f"client {index}: closed with {int(client.close_code)} ({client.close_code.name})")


if __name__ == "__main__":
    asyncio.run(main())
