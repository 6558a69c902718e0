"""Subprotocol negotiation (RFC 6455 1.9, 4.2.2) with plain headers.

    python examples/subprotocol.py

The client lists the subprotocols it speaks, best first, in ``Sec-WebSocket-Protocol``
(``extra_headers``).  The server's listener factory reads the request, picks the first
one it supports, and answers with a 101 that names it
(``WSUpgradeResponse.create_101_response(extra_headers=...)`` inside a
``WSUpgradeResponseWithListener``).  No common subprotocol: 400, no WebSocket.
"""

from __future__ import annotations

import asyncio
from typing import Optional

import picows
from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)

SERVER_SUPPORTS = ("chat.v2", "chat.v1")


def offered(request: WSUpgradeRequest) -> list[str]:
    """The client's subprotocols, in its order; the header may be repeated (RFC 6455 11.3.4)."""
    values = request.headers.getall("Sec-WebSocket-Protocol", [])
    return [token.strip() for value in values for token in value.split(",") if token.strip()]


class ChatListener(WSListener):
    def __init__(self, subprotocol: str) -> None:
        self.subprotocol = subprotocol

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type == WSMsgType.TEXT:
            reply = f"[{self.subprotocol}] {frame.get_payload_as_utf8_text()}"
            transport.send(WSMsgType.TEXT, reply.encode())


def route(request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
    chosen: Optional[str] = next((p for p in offered(request) if p in SERVER_SUPPORTS), None)
    if chosen is None:
        response = WSUpgradeResponse.create_error_response(400, b"no common subprotocol\n")
        return WSUpgradeResponseWithListener(response, None)
    response = WSUpgradeResponse.create_101_response(
        extra_headers={"Sec-WebSocket-Protocol": chosen}
    )
    return WSUpgradeResponseWithListener(response, ChatListener(chosen))


class Client(WSListener):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[str] = asyncio.Queue()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.replies.put_nowait(frame.get_payload_as_utf8_text())


async def main() -> None:
    server = await picows.ws_create_server(route, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"

    transport, client = await picows.ws_connect(
        Client, url, extra_headers={"Sec-WebSocket-Protocol": "chat.v3, chat.v1, chat.v2"}
    )
    assert isinstance(client, Client)
    # 4.1: the client must check that the server picked one of the offered values.
    agreed = transport.response.headers.get("Sec-WebSocket-Protocol")
    print("agreed subprotocol:", agreed)
    assert agreed == "chat.v1"
    transport.send(WSMsgType.TEXT, b"hi")
    print("reply:", await asyncio.wait_for(client.replies.get(), 5))
    transport.send_close(WSCloseCode.OK)
    await asyncio.wait_for(transport.wait_disconnected(), 5)

    try:
        await picows.ws_connect(Client, url, extra_headers={"Sec-WebSocket-Protocol": "mqtt"})
    except picows.WSHandshakeError as exc:
        status = exc.response.status if exc.response is not None else None
        print(f"offering only 'mqtt': refused with {int(status or 0)}")
    else:
        raise AssertionError("the server should refuse an unknown subprotocol")

    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
