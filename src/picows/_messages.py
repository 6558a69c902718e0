"""The rules a stream of data frames must follow, for one direction (Sans-I/O).

picows' own API delivers frames as they come and leaves these checks to the
application (upstream does the same); the ``picows.websockets`` layer, and the
connection core when asked to, apply them here, in one place:

* RFC 6455 5.4, fragmentation: a message is a TEXT or BINARY frame, then
  CONTINUATION frames until one has FIN set.  A CONTINUATION outside a message,
  or a TEXT/BINARY inside one, fails the connection (1002).
* RFC 6455 5.2, RSV bits: "MUST be 0 unless an extension is negotiated that
  defines meanings for non-zero values".  The only extension we negotiate,
  permessage-deflate (RFC 7692 6), defines RSV1 on the *first* frame of a
  message; RSV2 and RSV3 are never valid (1002).
* RFC 6455 8.1, text: "When an endpoint is to interpret a byte stream as UTF-8 but
  finds that the byte stream is not, in fact, a valid UTF-8 stream, that endpoint
  MUST _Fail the WebSocket Connection_" (1007).  Checked incrementally: a fragment
  fails at its first invalid byte, before the message is complete.

Control frames (5.5) may come between the frames of a message; they are not the
business of this module and pass through untouched.  Nothing here imports asyncio.
"""

from __future__ import annotations

import codecs
from typing import Optional, Union

from ._exceptions import WSProtocolError
from ._types import WSCloseCode, WSMsgType, decode_utf8

__all__ = ["MessageRules"]

Buffer = Union[bytes, bytearray, memoryview]

_CONTINUATION = WSMsgType.CONTINUATION
_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_utf8_decoder = codecs.getincrementaldecoder("utf-8")


class MessageRules:
    """Checks the data frames received on one connection, in order.

    Call :meth:`frame` with each data frame's header bits; it returns whether the
    frame belongs to a compressed message (RSV1 on the message's first frame).
    Then hand the frame's *application data* (inflated if it was compressed) of a
    text message to :meth:`text`, which returns it decoded.  :meth:`feed` does both
    for frames whose payload is the application data.  Every violation raises
    :class:`~picows.WSProtocolError` with the close code the connection must fail
    with; after one, the object must not be used again.
    """

    __slots__ = ("_compressed", "_decoder", "_in_message", "_is_text", "_rsv1_allowed")

    def __init__(self, *, rsv1_allowed: bool = False) -> None:
        #: Whether RSV1 may mark a message's first frame (permessage-deflate).
        self._rsv1_allowed = rsv1_allowed
        self._in_message = False  # a message has begun and its FIN frame is awaited
        self._is_text = False  # ... and it is a TEXT message
        self._compressed = False  # ... and its first frame had RSV1
        self._decoder: Optional[codecs.IncrementalDecoder] = None

    @property
    def in_message(self) -> bool:
        """True between a non-final first frame and the frame with FIN."""
        return self._in_message

    @property
    def is_text(self) -> bool:
        """Whether the current (or last) message is a TEXT message."""
        return self._is_text

    def frame(self, opcode: int, fin: int, rsv1: int, rsv2: int, rsv3: int) -> bool:
        """Check one frame's header bits; True when its message is compressed."""
        if opcode >= 0x8:
            return False  # 5.5: control frames may interleave; not checked here
        if rsv2 or rsv3:
            raise WSProtocolError(
                WSCloseCode.PROTOCOL_ERROR,
                "Received frame with RSV2 or RSV3 set: no negotiated extension "
                "defines them (RFC 6455 5.2)",
            )
        if opcode == _CONTINUATION:
            if not self._in_message:
                raise WSProtocolError(
                    WSCloseCode.PROTOCOL_ERROR,
                    "Received CONTINUATION frame outside a fragmented message (RFC 6455 5.4)",
                )
            if rsv1:
                # RFC 7692 6.1: RSV1 is set "on the first frame" only.
                raise WSProtocolError(
                    WSCloseCode.PROTOCOL_ERROR,
                    "Received CONTINUATION frame with RSV1 set (RFC 7692 6.1)",
                )
            if fin:
                self._in_message = False
            return self._compressed
        if opcode != _TEXT and opcode != _BINARY:
            raise WSProtocolError(
                WSCloseCode.PROTOCOL_ERROR,
                f"Received frame with reserved opcode {opcode:#x} (RFC 6455 5.2)",
            )
        if self._in_message:
            raise WSProtocolError(
                WSCloseCode.PROTOCOL_ERROR,
                "Received a new data frame before the fragmented message ended (RFC 6455 5.4)",
            )
        if rsv1 and not self._rsv1_allowed:
            raise WSProtocolError(
                WSCloseCode.PROTOCOL_ERROR,
                "Received frame with RSV1 set but permessage-deflate was not "
                "negotiated (RFC 6455 5.2)",
            )
        self._in_message = not fin
        self._is_text = opcode == _TEXT
        self._compressed = bool(rsv1)
        self._decoder = None
        return self._compressed

    def text(self, data: Buffer, fin: int) -> str:
        """Decode the next piece of a TEXT message; raises 1007 at the first bad byte.

        ``fin`` says whether this is the message's last piece: an unfinished
        character is valid until then.
        """
        decoder = self._decoder
        try:
            if decoder is None:
                if fin:
                    return decode_utf8(data)  # the whole message at once: no state
                decoder = self._decoder = _utf8_decoder()
            return decoder.decode(data, bool(fin))
        except UnicodeDecodeError as exc:
            raise WSProtocolError(
                WSCloseCode.INVALID_TEXT, f"{exc.reason} at position {exc.start}"
            ) from None
        finally:
            if fin:
                self._decoder = None

    def feed(self, opcode: int, fin: int, rsv1: int, rsv2: int, rsv3: int, payload: Buffer) -> None:
        """:meth:`frame`, then :meth:`text` for a TEXT message's uncompressed data."""
        if self.frame(opcode, fin, rsv1, rsv2, rsv3):
            raise WSProtocolError(
                WSCloseCode.PROTOCOL_ERROR,
                "feed() takes uncompressed frames only: inflate, then call text()",
            )
        if opcode < 0x8 and self._is_text:
            self.text(payload, fin)
