"""A conforming WebSocket echo client on picows, for fuzzing servers.

    python examples/conforming_echo_client.py ws://127.0.0.1:9001/some/path
    python examples/conforming_echo_client.py --autobahn --agent picows ws://127.0.0.1:9001

It connects, echoes every message the server sends until the server closes, and
reports how the connection ended.  With ``--autobahn`` it drives an Autobahn
``fuzzingserver`` the usual way: ``/getCaseCount``, then ``/runCase?case=N&agent=A``
for every case, then ``/updateReports?agent=A``.

The message layer (reassembly, UTF-8 checking, continuation rules, answering CLOSE) is
the one of ``conforming_echo_server.ConformingEchoListener``; the client differs only in
how it ends: after the CLOSE exchange it waits for the *server* to close the TCP
connection, and closes it itself only if the server does not within ``close_timeout``
(RFC 6455 7.1.1).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any, Optional
from urllib.parse import quote

# The message layer is the server example's, beside this file: importable whether this
# runs as a script or is imported by path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conforming_echo_server import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    ConformingEchoListener,
)

import picows
from picows import WSCloseHandshake, WSFrame, WSListener, WSMsgType, WSTransport

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "ConformingEchoClient",
    "echo_session",
    "main",
    "run_autobahn",
]

#: How long the client waits for the server to close TCP after the CLOSE exchange.
DEFAULT_CLOSE_TIMEOUT = 2.0


class ConformingEchoClient(ConformingEchoListener):
    """The conforming echo, client side: the server closes TCP first."""

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        super().__init__(max_message_size=max_message_size)
        self.close_timeout = close_timeout
        self._close_timer: Optional[asyncio.TimerHandle] = None

    def after_close_reply(self, transport: WSTransport) -> None:
        # 7.1.1: "the client SHOULD wait for the server to close the connection but MAY
        # close the connection at any time after sending and receiving a Close message,
        # e.g., if it has not received a TCP Close from the server in a reasonable time
        # period."
        loop = asyncio.get_running_loop()
        self._close_timer = loop.call_later(self.close_timeout, transport.disconnect)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None


async def echo_session(
    url: str,
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    **kwargs: Any,
) -> Optional[WSCloseHandshake]:
    """Echo everything the server at ``url`` sends until it closes.

    Returns the closing handshake (None if the connection ended without one).  A
    connection this client failed (1002, 1007, ...) is logged, not raised: for a
    fuzzing client that is an expected outcome.  ``kwargs`` go to ``ws_connect``.
    """
    transport, _ = await picows.ws_connect(
        lambda: ConformingEchoClient(
            max_message_size=max_message_size, close_timeout=close_timeout
        ),
        url,
        max_frame_size=max_frame_size,
        **kwargs,
    )
    try:
        await transport.wait_disconnected()
    except picows.WSProtocolError as exc:
        logging.getLogger("conforming_echo_client").info(
            "%s: failed the connection with %d: %s", url, exc.code, exc
        )
    return transport.close_handshake


class _TextReceiver(WSListener):
    """Keeps the first TEXT message (the case count of ``/getCaseCount``)."""

    def __init__(self) -> None:
        self.text: Optional[str] = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT and self.text is None:
            self.text = frame.get_payload_as_utf8_text()
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


async def _fetch_text(url: str) -> Optional[str]:
    transport, listener = await picows.ws_connect(_TextReceiver, url)
    await transport.wait_disconnected()
    assert isinstance(listener, _TextReceiver)
    return listener.text


async def run_autobahn(base_url: str, agent: str, **kwargs: Any) -> int:
    """Run every case of an Autobahn fuzzingserver at ``base_url``; returns the count."""
    base = base_url.rstrip("/")
    agent_query = quote(agent, safe="")
    count = int(await _fetch_text(f"{base}/getCaseCount") or 0)
    for case in range(1, count + 1):
        print(f"case {case}/{count}", flush=True)
        await echo_session(f"{base}/runCase?case={case}&agent={agent_query}", **kwargs)
    await _fetch_text(f"{base}/updateReports?agent={agent_query}")
    return count


async def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="ws:// or wss:// URL of the fuzzing server")
    parser.add_argument(
        "--autobahn", action="store_true", help="drive an Autobahn fuzzingserver's cases"
    )
    parser.add_argument("--agent", default="picows", help="agent name for --autobahn")
    parser.add_argument("--max-frame-size", type=int, default=DEFAULT_MAX_FRAME_SIZE)
    parser.add_argument("--max-message-size", type=int, default=DEFAULT_MAX_MESSAGE_SIZE)
    parser.add_argument("--close-timeout", type=float, default=DEFAULT_CLOSE_TIMEOUT)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every connection")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    options: dict[str, Any] = {
        "max_frame_size": args.max_frame_size,
        "max_message_size": args.max_message_size,
        "close_timeout": args.close_timeout,
    }
    if args.autobahn:
        count = await run_autobahn(args.url, args.agent, **options)
        print(f"ran {count} cases as agent {args.agent!r}")
        return
    handshake = await echo_session(args.url, **options)
    print(f"closed: {handshake}")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
