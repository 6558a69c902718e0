"""Broadcasting: one server, many clients, every message to everyone.

    python examples/broadcast_server.py

The server keeps the set of connected transports (added in ``on_ws_connected``,
removed in ``on_ws_disconnected``).  A TEXT message from any client is sent to all
of them.  ``send`` never blocks, so a broadcast is a plain loop; a client that
can't keep up only grows its own transport's buffer (see backpressure.py).
"""

from __future__ import annotations

import asyncio

import picows
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest

CLIENTS = 5


class Hub:
    """The connected clients of one server."""

    def __init__(self) -> None:
        self.clients: set[WSTransport] = set()
        self.changed = asyncio.Event()

    def broadcast(self, payload: bytes) -> None:
        for transport in self.clients:
            transport.send(WSMsgType.TEXT, payload)


class HubListener(WSListener):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.hub.clients.add(transport)
        self.hub.changed.set()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.hub.clients.discard(transport)
        self.hub.changed.set()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type == WSMsgType.TEXT:
            self.hub.broadcast(frame.get_payload_as_bytes())


class Member(WSListener):
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.inbox.put_nowait(frame.get_payload_as_bytes())


async def wait_for_clients(hub: Hub, count: int) -> None:
    while len(hub.clients) != count:
        hub.changed.clear()
        await hub.changed.wait()


async def main() -> None:
    hub = Hub()

    def route(request: WSUpgradeRequest) -> WSListener:
        return HubListener(hub)

    server = await picows.ws_create_server(route, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    connections = [await picows.ws_connect(Member, url) for _ in range(CLIENTS)]
    await asyncio.wait_for(wait_for_clients(hub, CLIENTS), 5)
    print(f"{len(hub.clients)} clients connected")

    first_transport, _ = connections[0]
    first_transport.send(WSMsgType.TEXT, b"hello, everyone")
    for index, (_, member) in enumerate(connections):
        assert isinstance(member, Member)
        message = await asyncio.wait_for(member.inbox.get(), 5)
        print(f"client {index} got {message!r}")

    for transport, _ in connections:
        transport.send_close(WSCloseCode.OK)
    await asyncio.wait_for(wait_for_clients(hub, 0), 5)
    print("all clients left")
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
