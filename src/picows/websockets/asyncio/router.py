"""``route``: websockets serves a werkzeug URL map with it; we don't (yet)."""

from __future__ import annotations

from typing import Any

__all__ = ["route"]


def route(*args: Any, **kwargs: Any) -> Any:
    """Not supported: raises NotImplementedError (use ``serve`` and dispatch on
    ``connection.request.path`` in the handler or in ``process_request``)."""
    raise NotImplementedError(
        "picows.websockets does not provide route(): dispatch on connection.request.path"
    )
