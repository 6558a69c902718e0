"""picows in one file: an echo server and a client talking over loopback.

    python examples/echo_demo.py

The server echoes every frame back; the client sends a few messages, prints
what comes back, closes the connection cleanly and reports the active backend.
"""

from __future__ import annotations

import asyncio

import picows
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest


class EchoServer(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            # RFC 6455 5.5.1: answer a CLOSE with a CLOSE, then drop the connection.
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        else:
            transport.send(frame.msg_type, frame.get_payload_as_bytes(), frame.fin)


class EchoClient(WSListener):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[tuple[WSMsgType, bytes]] = asyncio.Queue()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self.replies.put_nowait((frame.msg_type, frame.get_payload_as_bytes()))


async def main() -> None:
    def route(request: WSUpgradeRequest) -> WSListener:
        return EchoServer()

    server = await picows.ws_create_server(route, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"ws://127.0.0.1:{port}/echo"
    print(f"picows {picows.__version__}, backend: {picows.BACKEND}; server at {url}")

    transport, client = await picows.ws_connect(EchoClient, url)
    assert isinstance(client, EchoClient)
    messages: list[tuple[WSMsgType, bytes]] = [
        (WSMsgType.TEXT, b"hello, websocket"),
        (WSMsgType.BINARY, bytes(range(10))),
        (WSMsgType.TEXT, b"x" * 100_000),
    ]
    for msg_type, payload in messages:
        transport.send(msg_type, payload)
        got_type, got = await client.replies.get()
        shown = got if len(got) <= 32 else got[:16] + b"..." + f"({len(got)} bytes)".encode()
        print(f"sent {msg_type.name:6} {len(payload):6} bytes, echoed {got_type.name}: {shown!r}")
        assert (got_type, got) == (msg_type, payload)

    rtt = await transport.measure_roundtrip_time(3)
    print("round-trip times:", ", ".join(f"{t * 1e6:.0f} us" for t in rtt))
    transport.send_close(WSCloseCode.OK, b"bye")
    await transport.wait_disconnected()
    assert transport.close_handshake is not None
    print("closed:", transport.close_handshake)
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
