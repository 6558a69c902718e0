"""``picows.picows``: upstream picows' module path for the core objects.

Upstream compiles its engine into this one module; here the classes live in small
private modules and this module gives them upstream's path (identity, not copies).
It also keeps upstream's four module-level helpers, which its tests and some
applications import:

* ``_parse_http_request(raw_headers)`` -- a server's request parser;
* ``_validate_upgrade_request(request)`` -- the server's upgrade checks, returning the
  ``Sec-WebSocket-Accept`` value;
* ``_parse_upgrade_response(data, websocket_key_b64)`` -- a client's response checks;
* ``_make_test_ws_frame(msg_type, payload, fin, rsv1)`` -- a frame for unit tests.

The first two raise ``RuntimeError`` as upstream's do, with our
:class:`~picows.WSHandshakeError` as the ``__cause__``; they run the same code as the
server (``picows._handshake``), so they accept and refuse exactly what it does.
"""

from __future__ import annotations

from typing import Optional

from ._api import ws_connect, ws_create_server
from ._close import WSCloseHandshake, WSCloseInfo
from ._exceptions import (
    WSError,
    WSHandshakeError,
    WSInvalidHeaderError,
    WSInvalidMessageError,
    WSInvalidStatusError,
    WSInvalidUpgradeError,
    WSProtocolError,
)
from ._frames import WSFrame
from ._handshake import (
    accept_key,
    check_101,
    parse_request,
    parse_response_head,
    validate_upgrade_request,
)
from ._header import first_byte
from ._http11 import WSUpgradeRequest, WSUpgradeResponse, WSUpgradeResponseWithListener
from ._listener import WSListener
from ._protocol import WSProtocol
from ._transport import WSTransport
from ._types import PICOWS_DEBUG_LL, WSAutoPingStrategy, WSCloseCode, WSMsgType

__all__ = [
    "PICOWS_DEBUG_LL",
    "WSAutoPingStrategy",
    "WSCloseCode",
    "WSCloseHandshake",
    "WSCloseInfo",
    "WSError",
    "WSFrame",
    "WSHandshakeError",
    "WSInvalidHeaderError",
    "WSInvalidMessageError",
    "WSInvalidStatusError",
    "WSInvalidUpgradeError",
    "WSListener",
    "WSMsgType",
    "WSProtocol",
    "WSProtocolError",
    "WSTransport",
    "WSUpgradeRequest",
    "WSUpgradeResponse",
    "WSUpgradeResponseWithListener",
    "_make_test_ws_frame",
    "_parse_http_request",
    "_parse_upgrade_response",
    "_validate_upgrade_request",
    "ws_connect",
    "ws_create_server",
]


def _parse_http_request(raw_headers: bytes) -> WSUpgradeRequest:
    """The request in ``raw_headers`` (the header block without its final empty line)."""
    try:
        return parse_request(raw_headers)
    except WSHandshakeError as exc:
        raise RuntimeError(str(exc)) from exc


def _validate_upgrade_request(upgrade_request: WSUpgradeRequest) -> bytes:
    """The ``Sec-WebSocket-Accept`` value for a valid upgrade request."""
    try:
        key = validate_upgrade_request(upgrade_request)
    except WSHandshakeError as exc:
        raise RuntimeError(str(exc)) from exc
    return accept_key(key).encode("ascii")


def _parse_upgrade_response(data: bytes, websocket_key_b64: bytes) -> Optional[WSUpgradeResponse]:
    """The 101 response at the start of ``data``, or None while its header is incomplete.

    Raises the :class:`~picows.WSHandshakeError` subclass a client would fail with.
    """
    head, end, tail = data.partition(b"\r\n\r\n")
    if not end:
        return None
    response, reason = parse_response_head(head, tail)
    if response.status != 101:
        received = f"{int(response.status)} {reason.decode('ascii', 'replace')}".rstrip()
        raise WSInvalidStatusError(
            f"expected upgrade response with status 101 Switching Protocols, "
            f"but received {received}",
            head,
            tail,
            response,
        )
    # No extensions or subprotocols were offered: the rules of a bare request apply.
    check_101(response, websocket_key_b64, WSUpgradeRequest().headers, head, tail)
    return response


def _make_test_ws_frame(msg_type: int, payload: bytes, fin: bool, rsv1: bool) -> WSFrame:
    """A :class:`WSFrame` holding ``payload``, as if it had just been received."""
    view = memoryview(bytes(payload))
    first = first_byte(msg_type, fin, rsv1, False, False)
    # No reader: with nothing after the frame (tail 0), none is ever asked.
    return WSFrame(None, view, WSMsgType(msg_type), first, 0, len(view), 0)
