"""``picows.api``: upstream picows' module path for the two entry points.

The objects are the ones of :mod:`picows._api` (identity, not copies), including the
two helpers that upstream's tests import: ``_maybe_handle_redirect`` (one redirect
step of ``ws_connect``) and ``_resolve_logger`` (the ``logger_name`` rule).
"""

from __future__ import annotations

from ._api import (
    WSListenerFactory,
    WSLoggerLike,
    WSServerListenerFactory,
    _maybe_handle_redirect,
    _resolve_logger,
    ws_connect,
    ws_create_server,
)

__all__ = [
    "WSListenerFactory",
    "WSLoggerLike",
    "WSServerListenerFactory",
    "_maybe_handle_redirect",
    "_resolve_logger",
    "ws_connect",
    "ws_create_server",
]
