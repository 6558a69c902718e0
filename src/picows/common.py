"""``picows.common``: upstream picows' module path for the HTTP objects and exceptions.

The objects are the ones of the private modules (identity, not copies).
"""

from __future__ import annotations

from ._exceptions import (
    WSError,
    WSHandshakeError,
    WSInvalidHeaderError,
    WSInvalidMessageError,
    WSInvalidStatusError,
    WSInvalidUpgradeError,
    WSProtocolError,
)
from ._http11 import WSUpgradeRequest, WSUpgradeResponse, WSUpgradeResponseWithListener
from ._types import PICOWS_DEBUG_LL, WSBuffer, WSHeadersLike, WSHost, WSPort

__all__ = [
    "PICOWS_DEBUG_LL",
    "WSBuffer",
    "WSError",
    "WSHandshakeError",
    "WSHeadersLike",
    "WSHost",
    "WSInvalidHeaderError",
    "WSInvalidMessageError",
    "WSInvalidStatusError",
    "WSInvalidUpgradeError",
    "WSPort",
    "WSProtocolError",
    "WSUpgradeRequest",
    "WSUpgradeResponse",
    "WSUpgradeResponseWithListener",
]
