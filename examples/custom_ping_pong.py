"""Auto-ping with an application-level ping/pong: TEXT "ping" answered by TEXT "pong".

    python examples/custom_ping_pong.py

Some services (exchanges, chat servers) expect their own keep-alive messages rather
than WebSocket PING frames.  Override ``send_user_specific_ping`` to send yours and
``is_user_specific_pong`` to recognise the answer; picows' auto-ping (and
``measure_roundtrip_time``) then use them.  A recognised pong is consumed by picows
and not passed to ``on_ws_frame``.
"""

from __future__ import annotations

import asyncio

import picows
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest


class PongingServer(WSListener):
    """Answers TEXT "ping" with TEXT "pong"; counts the pings it gets."""

    def __init__(self, pings: asyncio.Queue[int]) -> None:
        self.pings = pings
        self.count = 0

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type == WSMsgType.TEXT and frame.get_payload_as_bytes() == b"ping":
            self.count += 1
            self.pings.put_nowait(self.count)
            transport.send(WSMsgType.TEXT, b"pong")


class KeepAliveClient(WSListener):
    def send_user_specific_ping(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, b"ping")

    def is_user_specific_pong(self, frame: WSFrame) -> bool:
        return frame.msg_type == WSMsgType.TEXT and frame.get_payload_as_bytes() == b"pong"

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        # Never sees "pong": picows hands those to is_user_specific_pong only.
        if frame.msg_type == WSMsgType.CLOSE:
            return  # the server's answer to our CLOSE
        print("application frame:", frame.msg_type.name, frame.get_payload_as_bytes())


async def main() -> None:
    pings: asyncio.Queue[int] = asyncio.Queue()

    def route(request: WSUpgradeRequest) -> WSListener:
        return PongingServer(pings)

    server = await picows.ws_create_server(route, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    transport, _ = await picows.ws_connect(
        KeepAliveClient,
        url,
        enable_auto_ping=True,
        auto_ping_idle_timeout=0.2,  # ping after 0.2 s without incoming data
        auto_ping_reply_timeout=0.2,  # disconnect if no pong within 0.2 s (<= idle timeout)
    )
    for _ in range(3):
        count = await asyncio.wait_for(pings.get(), 5)
        print(f"server got keep-alive ping #{count}")

    # measure_roundtrip_time uses the same custom ping/pong.
    rtts = await transport.measure_roundtrip_time(3)
    print("round trips:", ", ".join(f"{rtt * 1e3:.2f} ms" for rtt in rtts))

    transport.send_close(WSCloseCode.OK)
    await asyncio.wait_for(transport.wait_disconnected(), 5)
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
