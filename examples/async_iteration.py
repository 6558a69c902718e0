"""``await ws.recv()`` and ``async for msg in ws`` on top of picows' callbacks.

    python examples/async_iteration.py

picows calls ``on_ws_frame`` for every frame; many programs prefer to pull messages.
``AsyncWebSocket`` adapts one to the other with an ``asyncio.Queue``.  The frame object
is only valid during the callback, so the queue holds copies of the payloads.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Optional, Union

import picows
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest


@dataclass(frozen=True)
class Message:
    msg_type: WSMsgType
    data: Union[str, bytes]  # str for TEXT, bytes for BINARY


class _QueueListener(WSListener):
    """Feeds complete messages into a queue; None marks the end of the connection."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Optional[Message]] = asyncio.Queue()
        self._fragments: list[bytes] = []
        self._fragment_type = WSMsgType.BINARY

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
            return
        if frame.msg_type in (WSMsgType.PING, WSMsgType.PONG):
            return  # auto-pong answers pings
        if frame.msg_type != WSMsgType.CONTINUATION:
            self._fragment_type = frame.msg_type
        self._fragments.append(frame.get_payload_as_bytes())
        if frame.fin:  # the last fragment: the message is complete
            payload = b"".join(self._fragments)
            self._fragments.clear()
            data = payload.decode() if self._fragment_type == WSMsgType.TEXT else payload
            self.queue.put_nowait(Message(self._fragment_type, data))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.queue.put_nowait(None)


class AsyncWebSocket:
    """A pull-style client connection: ``recv()``, ``send()``, ``close()``, ``async for``."""

    def __init__(self, transport: WSTransport, listener: _QueueListener) -> None:
        self.transport = transport
        self._listener = listener
        self._closed = False

    @classmethod
    async def connect(cls, url: str) -> AsyncWebSocket:
        transport, listener = await picows.ws_connect(_QueueListener, url)
        assert isinstance(listener, _QueueListener)
        return cls(transport, listener)

    async def recv(self) -> Message:
        """The next message; ConnectionError once the connection is closed."""
        if self._closed:
            raise ConnectionError("connection closed")
        message = await self._listener.queue.get()
        if message is None:
            self._closed = True
            raise ConnectionError("connection closed")
        return message

    def send(self, data: Union[str, bytes]) -> None:
        msg_type = WSMsgType.TEXT if isinstance(data, str) else WSMsgType.BINARY
        self.transport.send(msg_type, data.encode() if isinstance(data, str) else data)

    async def close(self, code: WSCloseCode = WSCloseCode.OK) -> None:
        self.transport.send_close(code)
        await self.transport.wait_disconnected()

    def __aiter__(self) -> AsyncWebSocket:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.recv()
        except ConnectionError:
            raise StopAsyncIteration from None


class EchoServer(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            transport.send(frame.msg_type, frame.get_payload_as_bytes())


async def main() -> None:
    def route(request: WSUpgradeRequest) -> WSListener:
        return EchoServer()

    server = await picows.ws_create_server(route, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    ws = await AsyncWebSocket.connect(url)
    ws.send("first")
    print("recv():", await asyncio.wait_for(ws.recv(), 5))

    outgoing: list[Union[str, bytes]] = ["second", b"\x00\x01", "third"]
    for item in outgoing:
        ws.send(item)

    async def consume() -> int:
        received = 0
        async for message in ws:
            print("async for:", message)
            received += 1
            if received == len(outgoing):
                ws.transport.send_close(WSCloseCode.OK)  # the loop ends at disconnect
        return received

    received = await asyncio.wait_for(consume(), 5)
    print("iteration ended after", received, "messages")
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
