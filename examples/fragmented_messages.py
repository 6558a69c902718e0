"""Sending a message in fragments and reassembling it (RFC 6455 5.4).

    python examples/fragmented_messages.py

The client sends one TEXT message as three frames: TEXT (fin=False), CONTINUATION
(fin=False), CONTINUATION (fin=True).  picows delivers frames, not messages, so the
server joins the fragments itself and answers with the whole message in one frame.
"""

from __future__ import annotations

import asyncio

import picows
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest


class Reassembler(WSListener):
    """Collects fragments until ``fin``; replies ``<n> fragments: <message>``."""

    def __init__(self) -> None:
        self.fragments: list[bytes] = []
        self.msg_type = WSMsgType.TEXT

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
            return
        if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            self.msg_type = frame.msg_type  # the first fragment carries the type
            self.fragments = []
        elif frame.msg_type != WSMsgType.CONTINUATION:
            return  # control frames may arrive between fragments (5.4)
        self.fragments.append(frame.get_payload_as_bytes())
        if frame.fin:
            whole = b"".join(self.fragments)
            reply = f"{len(self.fragments)} fragments: ".encode() + whole
            transport.send(self.msg_type, reply)


class Client(WSListener):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.replies.put_nowait(frame.get_payload_as_bytes())


async def main() -> None:
    def route(request: WSUpgradeRequest) -> WSListener:
        return Reassembler()

    server = await picows.ws_create_server(route, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    transport, client = await picows.ws_connect(Client, url)
    assert isinstance(client, Client)

    transport.send(WSMsgType.TEXT, b"Hello, ", fin=False)
    transport.send_ping(b"between fragments")  # allowed: control frames interleave
    transport.send(WSMsgType.CONTINUATION, b"fragmented ", fin=False)
    transport.send(WSMsgType.CONTINUATION, b"world", fin=True)
    reply = await asyncio.wait_for(client.replies.get(), 5)
    print(reply.decode())
    assert reply == b"3 fragments: Hello, fragmented world"

    transport.send_close(WSCloseCode.OK)
    await asyncio.wait_for(transport.wait_disconnected(), 5)
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
