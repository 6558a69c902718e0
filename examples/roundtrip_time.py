"""Measuring round-trip time with PING/PONG: ``WSTransport.measure_roundtrip_time``.

    python examples/roundtrip_time.py

The client sends a PING, the server's picows answers with a PONG automatically
(``enable_auto_pong=True`` is the default), and the time between the two is one round
trip.  Useful to monitor latency to a server or to pick the nearest of several.
"""

from __future__ import annotations

import asyncio
import statistics

import picows
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest


class QuietServer(WSListener):
    """Does nothing itself: PONGs are sent by picows' auto-pong."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


async def main() -> None:
    def route(request: WSUpgradeRequest) -> WSListener:
        return QuietServer()

    server = await picows.ws_create_server(route, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    transport, _ = await picows.ws_connect(WSListener, url)

    rtts = await asyncio.wait_for(transport.measure_roundtrip_time(10), 5)
    micro = [rtt * 1e6 for rtt in rtts]
    print(f"{len(micro)} round trips over loopback:")
    print(
        f"  min {min(micro):.0f} us, median {statistics.median(micro):.0f} us, "
        f"max {max(micro):.0f} us"
    )

    transport.send_close(WSCloseCode.OK)
    await asyncio.wait_for(transport.wait_disconnected(), 5)
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
