"""``websockets.protocol``: only :class:`State`, for code that imports it from here."""

from __future__ import annotations

from .compat import State

__all__ = ["State"]
