"""Flow control: stop producing when the peer reads slower than you write.

    python examples/backpressure.py

``WSTransport.send`` never blocks: data the kernel can't take yet waits in the
transport's buffer.  When that buffer grows past its high-water mark picows calls
``WSListener.pause_writing``; when it drains below the low-water mark, it calls
``resume_writing``.  A producer that respects these two calls keeps memory bounded
no matter how slow the consumer is.

Here the client stops reading for a while (``pause_reading`` on its socket), so the
server's buffer fills and the server pauses; then the client reads again and the
server resumes until everything is sent.
"""

from __future__ import annotations

import asyncio

import picows
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest

CHUNK = bytes(64 * 1024)
TOTAL_CHUNKS = 200  # 12.5 MiB in all
HIGH_WATER = 256 * 1024


class Producer(WSListener):
    """Sends TOTAL_CHUNKS chunks, but only while the transport is not paused."""

    def __init__(self, paused_once: asyncio.Event) -> None:
        self.paused_once = paused_once
        self.transport: WSTransport | None = None
        self.sent = 0
        self.paused = False
        self.pauses = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        transport.underlying_transport.set_write_buffer_limits(high=HIGH_WATER)
        self.produce()

    def produce(self) -> None:
        assert self.transport is not None
        while not self.paused and self.sent < TOTAL_CHUNKS:
            self.transport.send(WSMsgType.BINARY, CHUNK)  # may call pause_writing inside
            self.sent += 1
        if self.sent == TOTAL_CHUNKS:
            print(f"producer: all {self.sent} chunks queued after {self.pauses} pause(s)")

    def pause_writing(self) -> None:
        self.paused = True
        self.pauses += 1
        if self.pauses == 1:
            assert self.transport is not None
            buffered = self.transport.underlying_transport.get_write_buffer_size()
            print(f"producer: paused after {self.sent + 1} chunks, {buffered} bytes buffered")
        self.paused_once.set()

    def resume_writing(self) -> None:
        self.paused = False
        self.produce()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


class SlowConsumer(WSListener):
    def __init__(self) -> None:
        self.received = 0
        self.done = asyncio.Event()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.BINARY:
            self.received += 1
            if self.received == TOTAL_CHUNKS:
                self.done.set()


async def main() -> None:
    paused_once = asyncio.Event()

    def route(request: WSUpgradeRequest) -> WSListener:
        return Producer(paused_once)

    server = await picows.ws_create_server(route, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    transport, consumer = await picows.ws_connect(SlowConsumer, url)
    assert isinstance(consumer, SlowConsumer)
    transport.underlying_transport.pause_reading()  # the consumer stalls...

    await asyncio.wait_for(paused_once.wait(), 10)  # ...until the producer has to pause
    print(f"consumer: resuming reads, {consumer.received} chunks received so far")
    transport.underlying_transport.resume_reading()

    await asyncio.wait_for(consumer.done.wait(), 10)
    print(f"consumer: got all {consumer.received} chunks")
    transport.send_close(WSCloseCode.OK)
    await asyncio.wait_for(transport.wait_disconnected(), 5)
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
