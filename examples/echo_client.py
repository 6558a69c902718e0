"""A WebSocket client that sends a few messages and checks that they come back.

    python examples/echo_client.py                       # starts its own echo server
    python examples/echo_client.py --url ws://127.0.0.1:9001/

Without ``--url`` it starts an echo server in the same process, so it runs alone.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Optional

import picows
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest


class EchoClient(WSListener):
    """Queues every data message it receives; replies to the server's CLOSE."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[WSMsgType, bytes]] = asyncio.Queue()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            self.messages.put_nowait((frame.msg_type, frame.get_payload_as_bytes()))


class EchoServer(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            transport.send(frame.msg_type, frame.get_payload_as_bytes())


async def run_client(url: str) -> None:
    transport, client = await picows.ws_connect(EchoClient, url)
    assert isinstance(client, EchoClient)
    for msg_type, payload in [
        (WSMsgType.TEXT, b"hello"),
        (WSMsgType.BINARY, bytes([1, 2, 3, 4, 5])),
        (WSMsgType.TEXT, b"z" * 70_000),
    ]:
        transport.send(msg_type, payload)
        echoed = await asyncio.wait_for(client.messages.get(), 5)
        assert echoed == (msg_type, payload), "the echo differs from what was sent"
        print(f"echoed {msg_type.name} of {len(payload)} bytes")
    transport.send_close(WSCloseCode.OK, b"done")
    await asyncio.wait_for(transport.wait_disconnected(), 5)
    print("closed:", transport.close_handshake)


async def main(url: Optional[str]) -> None:
    if url is not None:
        await run_client(url)
        return

    def route(request: WSUpgradeRequest) -> WSListener:
        return EchoServer()

    server = await picows.ws_create_server(route, "127.0.0.1", 0)
    try:
        await run_client(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/")
    finally:
        server.close()
        await server.wait_closed()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an echo server; default: start one in this process")
    asyncio.run(main(parser.parse_args().url))
