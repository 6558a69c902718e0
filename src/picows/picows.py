"""Upstream picows' module layout: ``picows.picows`` (its compiled module).

Code written for upstream imports ``WSCloseInfo``, ``WSCloseHandshake`` and the
core classes from here; they are the same objects as ``picows.<name>``.
``_make_test_ws_frame`` builds a frame over a bytes payload, to unit-test a
listener's ``on_ws_frame`` without a socket (upstream's test helper).
"""

from __future__ import annotations

from typing import Any, cast

from ._close import WSCloseHandshake, WSCloseInfo
from ._exceptions import WSError, WSProtocolError
from ._frames import WSFrame
from ._header import first_byte
from ._listener import WSListener
from ._transport import WSTransport
from ._types import WSAutoPingStrategy, WSCloseCode, WSMsgType

__all__ = [
    "WSAutoPingStrategy",
    "WSCloseCode",
    "WSCloseHandshake",
    "WSCloseInfo",
    "WSError",
    "WSFrame",
    "WSListener",
    "WSMsgType",
    "WSProtocolError",
    "WSTransport",
    "_make_test_ws_frame",
]


def _make_test_ws_frame(msg_type: WSMsgType, payload: bytes, fin: bool, rsv1: bool) -> WSFrame:
    """A complete frame holding ``payload``, alone in its (private) buffer."""
    view = memoryview(bytes(payload))
    first = first_byte(msg_type, fin, rsv1, False, False)
    # No reader: with nothing after the frame (tail 0), none is ever asked.
    return WSFrame(cast(Any, None), view, WSMsgType(msg_type), first, 0, len(view), 0)
