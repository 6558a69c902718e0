"""A WebSocket echo server: every TEXT/BINARY frame comes back unchanged.

    python examples/echo_server.py --port 9001

Prints ``listening on ws://HOST:PORT/`` once it accepts connections (``--port 0``
picks a free port), then serves until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

import picows
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest


class EchoListener(WSListener):
    def on_ws_connected(self, transport: WSTransport) -> None:
        peer = transport.underlying_transport.get_extra_info("peername")
        print(f"client connected from {peer}", flush=True)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            # RFC 6455 5.5.1: answer a CLOSE with a CLOSE (same code), then hang up.
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
            # The payload is only valid during this call: copy it (bytes) to keep it.
            transport.send(frame.msg_type, frame.get_payload_as_bytes(), bool(frame.fin))


async def main(host: str, port: int) -> None:
    def route(request: WSUpgradeRequest) -> WSListener:
        return EchoListener()

    server = await picows.ws_create_server(route, host, port)
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    bound_port = server.sockets[0].getsockname()[1]
    print(f"listening on ws://{host}:{bound_port}/", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001, help="0 picks a free port")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.host, args.port))
