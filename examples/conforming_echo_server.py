"""A conforming WebSocket echo server on picows: the message layer a careful user adds.

    python examples/conforming_echo_server.py --host 127.0.0.1 --port 9001

picows owns everything about *frames*: it answers PINGs (auto-pong), rejects reserved
opcodes, control frames with RSV bits, fragmented or oversized control frames,
unmasked client frames, invalid close codes and close reasons that are not UTF-8, and
frames over ``max_frame_size``.  On such a violation it sends a CLOSE with the right
code and drops the connection; it ignores whatever the peer sends after its CLOSE.

Like upstream picows, it leaves *messages* and *extensions* to the application.  This
listener does that part of RFC 6455, and nothing more:

* it negotiates no extension, so a data frame with an RSV bit set fails the
  connection with 1002 (5.2);
* it reassembles fragmented messages (5.4) and echoes each message once, whole;
* it fails the connection with 1002 on a CONTINUATION frame that continues nothing,
  or on a new TEXT/BINARY frame while a fragmented message is open (5.4);
* it checks that TEXT messages are UTF-8 (8.1) *as they arrive*, with an incremental
  decoder: the first invalid byte fails the connection with 1007, even in the
  first fragment of a message whose end has not been sent yet;
* it answers a CLOSE with a CLOSE carrying the same code and reason (5.5.1), and the
  server then closes the TCP connection first (7.1.1).

Failing the connection is picows' job too: raising ``WSProtocolError(code, reason)``
from ``on_ws_frame`` makes it send ``CLOSE(code, reason)`` and disconnect.

The listener is importable (``ConformingEchoListener``, ``start_server``); the
conformance tests in ``tests/`` run it against a raw-socket peer.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import logging
from typing import Any, Optional

import picows
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSProtocolError, WSTransport

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "ConformingEchoListener",
    "main",
    "start_server",
]

# The largest single frame and the largest reassembled message this echo accepts.  The
# Autobahn test suite's biggest case is one 16 MiB frame (picows' default is 10 MiB).
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024

_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


def _truncated_surrogate(pending: bytes) -> bool:
    """Whether the bytes a UTF-8 decoder holds back can only start a surrogate.

    CPython's incremental decoder waits for the third byte of ``ED A0..BF`` before it
    reports the surrogate (U+D800-U+DFFF, which UTF-8 excludes, RFC 3629 3); PyPy's
    reports it at once.  Checking the held-back bytes makes both fail fast.
    """
    return len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0


class ConformingEchoListener(WSListener):
    """Echoes every message back whole; fails the connection on a message-level error."""

    # Keyword-only options: the class itself is then a valid zero-argument listener
    # factory (picows passes (request, response) to factories with 2 positional ones).
    def __init__(self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.max_message_size = max_message_size
        # The message being received: its type (None between messages), the
        # fragments so far, their total size and, for TEXT, the UTF-8 decoder.
        self._msg_type: Optional[WSMsgType] = None
        self._fragments: list[bytes] = []
        self._size = 0
        self._utf8: Optional[codecs.IncrementalDecoder] = None

    # -- frames -------------------------------------------------------------------

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type == WSMsgType.CLOSE:
            self._reply_to_close(transport, frame)
            return
        if msg_type == WSMsgType.PING:
            # Only seen with enable_auto_pong=False. 5.5.2: "Upon receipt of a Ping
            # frame, an endpoint MUST send a Pong frame in response".
            transport.send_pong(frame.get_payload_as_bytes())
            return
        if msg_type == WSMsgType.PONG:
            # 5.5.3: "A response to an unsolicited Pong frame is not expected."
            return
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            # 5.2: "MUST be 0 unless an extension is negotiated that defines meanings
            # for non-zero values"; this application negotiates none.
            raise WSProtocolError(
                WSCloseCode.PROTOCOL_ERROR, "RSV bits set, but no extension was negotiated"
            )
        if msg_type == WSMsgType.CONTINUATION:
            if self._msg_type is None:
                raise WSProtocolError(
                    WSCloseCode.PROTOCOL_ERROR,
                    "CONTINUATION frame without a message to continue (RFC 6455 5.4)",
                )
        else:
            if self._msg_type is not None:
                # 5.4: the fragments of one message are not interleaved with another's.
                raise WSProtocolError(
                    WSCloseCode.PROTOCOL_ERROR,
                    f"{msg_type.name} frame while a fragmented message is open (RFC 6455 5.4)",
                )
            self._msg_type = msg_type
            self._utf8 = _Utf8Decoder() if msg_type == WSMsgType.TEXT else None
        self._add_fragment(transport, frame)

    def _add_fragment(self, transport: WSTransport, frame: WSFrame) -> None:
        payload = frame.get_payload_as_bytes()
        self._size += len(payload)
        if self._size > self.max_message_size:
            raise WSProtocolError(
                WSCloseCode.MESSAGE_TOO_BIG,
                f"message over {self.max_message_size} bytes (RFC 6455 7.4.1: 1009)",
            )
        if self._utf8 is not None:
            self._check_utf8(self._utf8, payload, bool(frame.fin))
        if not frame.fin:
            self._fragments.append(payload)
            return
        msg_type = self._msg_type
        assert msg_type is not None
        if self._fragments:
            self._fragments.append(payload)
            payload = b"".join(self._fragments)
        self._msg_type, self._fragments, self._size, self._utf8 = None, [], 0, None
        transport.send(msg_type, payload)

    @staticmethod
    def _check_utf8(decoder: codecs.IncrementalDecoder, payload: bytes, final: bool) -> None:
        # 8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds that
        # the byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST
        # _Fail the WebSocket Connection_."  The decoder keeps an incomplete character
        # at the end of a fragment for the next one, and raises at the first byte that
        # no continuation could make valid.
        try:
            decoder.decode(payload, final)
        except UnicodeDecodeError as exc:
            raise WSProtocolError(
                WSCloseCode.INVALID_TEXT,
                f"TEXT message is not valid UTF-8: {exc.reason} (RFC 6455 8.1)",
            ) from None
        if _truncated_surrogate(decoder.getstate()[0]):
            raise WSProtocolError(
                WSCloseCode.INVALID_TEXT,
                "TEXT message is not valid UTF-8: surrogate (RFC 6455 8.1)",
            )

    # -- closing ------------------------------------------------------------------

    def _reply_to_close(self, transport: WSTransport, frame: WSFrame) -> None:
        # 5.5.1: "If an endpoint receives a Close frame and did not previously send a
        # Close frame, the endpoint MUST send a Close frame in response. ... it
        # typically echos the status code it received."  picows checked the code and
        # the reason already; a CLOSE without a code is answered without one.
        transport.send_close(frame.get_close_code(), frame.get_close_message())
        self._fragments, self._utf8 = [], None  # an unfinished message is dropped
        self.after_close_reply(transport)

    def after_close_reply(self, transport: WSTransport) -> None:
        """Both CLOSE frames are exchanged: end the TCP connection.

        7.1.1: "the underlying TCP connection, in most normal cases, SHOULD be closed
        first by the server" -- which this is.
        """
        transport.disconnect()


def _listener_factory(max_message_size: int) -> Any:
    def route(request: picows.WSUpgradeRequest) -> WSListener:
        return ConformingEchoListener(max_message_size=max_message_size)

    return route


async def start_server(
    host: str = "127.0.0.1",
    port: int = 9001,
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    **kwargs: Any,
) -> asyncio.Server:
    """Listen on ``host:port``; ``kwargs`` go to ``picows.ws_create_server``."""
    return await picows.ws_create_server(
        _listener_factory(max_message_size),
        host,
        port,
        max_frame_size=max_frame_size,
        **kwargs,
    )


async def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=9001, help="port to listen on")
    parser.add_argument("--max-frame-size", type=int, default=DEFAULT_MAX_FRAME_SIZE)
    parser.add_argument("--max-message-size", type=int, default=DEFAULT_MAX_MESSAGE_SIZE)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every connection")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    server = await start_server(
        args.host,
        args.port,
        max_frame_size=args.max_frame_size,
        max_message_size=args.max_message_size,
    )
    addresses = ", ".join(str(sock.getsockname()) for sock in server.sockets)
    print(f"conforming echo server (picows backend {picows.BACKEND}) on {addresses}")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
