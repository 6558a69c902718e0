"""``picows.types``: the enums, constants and type aliases, under a public module path.

The objects are the ones of :mod:`picows._types` (identity, not copies).
"""

from __future__ import annotations

from ._types import (
    PICOWS_DEBUG_LL,
    WSAutoPingStrategy,
    WSBuffer,
    WSCloseCode,
    WSHeadersLike,
    WSHost,
    WSMsgType,
    WSPort,
)

__all__ = [
    "PICOWS_DEBUG_LL",
    "WSAutoPingStrategy",
    "WSBuffer",
    "WSCloseCode",
    "WSHeadersLike",
    "WSHost",
    "WSMsgType",
    "WSPort",
]
