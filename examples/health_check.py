"""A health-check endpoint and a WebSocket endpoint on one port.

    python examples/health_check.py

Load balancers and orchestrators probe a plain HTTP URL.  The listener factory of
``ws_create_server`` sees every request, upgrade or not, and routes by path:

* ``GET /health`` -- 200 "OK" (``WSUpgradeResponse.create_ok_response``), no WebSocket;
* ``/ws``         -- the WebSocket (an echo);
* anything else   -- None, which picows answers with 404.
"""

from __future__ import annotations

import asyncio
from typing import Optional, Union

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


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            transport.send(frame.msg_type, frame.get_payload_as_bytes())


def route(request: WSUpgradeRequest) -> Union[WSListener, WSUpgradeResponseWithListener, None]:
    path = request.path.split(b"?", 1)[0]
    if path == b"/health":
        return WSUpgradeResponseWithListener(WSUpgradeResponse.create_ok_response(b"OK\n"), None)
    if path == b"/ws":
        return Echo()
    return None  # 404 Not Found


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    """A minimal HTTP/1.1 GET, as a probe would send it: (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length: Optional[int] = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    writer.close()
    await writer.wait_closed()
    return status, body


class Client(WSListener):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.replies.put_nowait(frame.get_payload_as_bytes())


async def main() -> None:
    server = await picows.ws_create_server(route, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    status, body = await asyncio.wait_for(http_get(port, "/health"), 5)
    print(f"GET /health -> {status} {body!r}")
    assert (status, body) == (200, b"OK\n")
    status, _ = await asyncio.wait_for(http_get(port, "/elsewhere"), 5)
    print(f"GET /elsewhere -> {status}")
    assert status == 404

    transport, client = await picows.ws_connect(Client, f"ws://127.0.0.1:{port}/ws")
    assert isinstance(client, Client)
    transport.send(WSMsgType.TEXT, b"still alive?")
    print("ws /ws echo ->", await asyncio.wait_for(client.replies.get(), 5))
    transport.send_close(WSCloseCode.OK)
    await asyncio.wait_for(transport.wait_disconnected(), 5)

    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
