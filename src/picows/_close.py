"""The closing handshake, RFC 6455 sections 5.5.1 and 7: payloads and bookkeeping.

A CLOSE frame's payload is empty, or a 2-byte status code followed by a UTF-8
reason.  This module builds and checks such payloads and records who closed with
what (:class:`WSCloseHandshake`), knowing nothing of sockets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from ._exceptions import WSProtocolError
from ._types import WSCloseCode, decode_utf8

# 5.5: a control payload is at most 125 bytes, 2 of which hold the code.
MAX_CLOSE_REASON = 123

__all__ = [
    "WSCloseHandshake",
    "WSCloseInfo",
    "build_close_payload",
    "close_frame_for",
    "is_valid_received_close_code",
    "is_valid_sent_close_code",
    "parse_close_payload",
    "truncate_reason",
]

# 7.4.1/7.4.2 and the IANA registry: codes an endpoint may put on the wire below 3000.
# 1004 is reserved, and 1005, 1006 and 1015 "MUST NOT be set as a status code in a
# Close control frame by an endpoint".
_REGISTERED_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)})


def is_valid_received_close_code(code: int) -> bool:
    """7.4.2: 3000-3999 are registered for libraries, 4000-4999 private use."""
    return code in _REGISTERED_CLOSE_CODES or 3000 <= code <= 4999


@dataclass(frozen=True)
class WSCloseInfo:
    """One side of a closing handshake: the code and reason of a CLOSE frame."""

    code: WSCloseCode
    reason: str


@dataclass
class WSCloseHandshake:
    """What was sent and received in the closing handshake of one connection."""

    #: The CLOSE received from the peer, if any.
    recv: Optional[WSCloseInfo] = None
    #: The CLOSE we sent, if any.
    sent: Optional[WSCloseInfo] = None
    #: True when the peer's CLOSE arrived before ours was sent.
    recv_then_sent: bool = False


def parse_close_payload(payload: Union[bytes, bytearray, memoryview]) -> WSCloseInfo:
    """Decode and check a received CLOSE payload (5.5.1, 7.1.5, 7.1.6).

    An empty payload means "no status code" and gives ``NO_INFO``.  Raises
    :class:`WSProtocolError` with the close code the connection must fail with.
    """
    size = len(payload)
    if size == 0:
        return WSCloseInfo(WSCloseCode.NO_INFO, "")
    if size == 1:
        # 5.5.1: the body, if any, "MUST" start with a 2-byte status code.
        raise WSProtocolError(
            WSCloseCode.PROTOCOL_ERROR, "Received CLOSE with invalid close code size: 1"
        )
    code = (payload[0] << 8) | payload[1]
    if not is_valid_received_close_code(code):
        raise WSProtocolError(
            WSCloseCode.PROTOCOL_ERROR, f"Received CLOSE with invalid close code: {code}"
        )
    try:
        reason = decode_utf8(payload[2:])
    except UnicodeDecodeError:
        # 5.5.1: the reason is UTF-8; 7.4.1: 1007 is for data inconsistent with its type.
        raise WSProtocolError(
            WSCloseCode.INVALID_TEXT, "Received CLOSE with invalid UTF-8 reason"
        ) from None
    return WSCloseInfo(WSCloseCode(code), reason)


def is_valid_sent_close_code(code: int) -> bool:
    """Whether we may put ``code`` on the wire (7.4): the same codes as we accept."""
    return is_valid_received_close_code(code)


def build_close_payload(
    code: int, message: Union[str, bytes, bytearray, memoryview, None]
) -> bytes:
    """The payload of a CLOSE frame we send; ValueError for one that must not be sent.

    ``NO_INFO`` (0) is not a real status code: it means "send no code", which per
    5.5.1 also means no reason can follow, so the payload is empty.  Other codes must
    be ones an endpoint may send (7.4: 1005, 1006 and 1015 "MUST NOT be set", 1004 and
    1016-2999 are reserved, codes below 1000 and from 5000 on do not exist), and the
    reason must fit the 125 bytes of a control frame (5.5).
    """
    if code == WSCloseCode.NO_INFO:
        return b""
    if not isinstance(code, int) or not is_valid_sent_close_code(code):
        raise ValueError(
            f"close code {code!r} must not be sent (RFC 6455 7.4): use 1000-1003, "
            "1007-1014 or 3000-4999"
        )
    if message is None:
        reason = b""
    elif isinstance(message, str):
        reason = message.encode("utf-8")
    else:
        reason = bytes(message)
    if len(reason) > MAX_CLOSE_REASON:
        raise ValueError(
            f"a close reason is at most {MAX_CLOSE_REASON} bytes (RFC 6455 5.5), got {len(reason)}"
        )
    return code.to_bytes(2, "big") + reason


def close_frame_for(exc: BaseException) -> tuple[WSCloseCode, bytes]:
    """The CLOSE (code, reason) that reports ``exc`` to the peer: the one place
    where failures become close codes.

    A :class:`WSProtocolError` (from the parser, or raised by a listener to choose
    the code) carries its own, when it is one that may be sent; anything else is an
    INTERNAL_ERROR whose text stays private.  The reason is cut to fit (5.5).
    """
    if isinstance(exc, WSProtocolError):
        code = exc.code
        if isinstance(code, int) and is_valid_sent_close_code(code):
            return WSCloseCode(code), truncate_reason(str(exc))
    return WSCloseCode.INTERNAL_ERROR, b""


def truncate_reason(reason: str) -> bytes:
    """``reason`` as UTF-8, cut to fit a CLOSE frame without splitting a character."""
    # "replace": an exception message may hold lone surrogates, which have no UTF-8.
    encoded = reason.encode("utf-8", "replace")
    if len(encoded) <= MAX_CLOSE_REASON:
        return encoded
    return encoded[:MAX_CLOSE_REASON].decode("utf-8", "ignore").encode("utf-8")
