"""Option handling shared by ``connect`` and ``serve``."""

from __future__ import annotations

import logging
import sys
from inspect import isawaitable
from typing import Any, Optional, Union

from ... import __version__
from ..typing import LoggerLike, MaxQueue, MaxSize

__all__ = [
    "default_server_header",
    "default_user_agent",
    "normalize_max_size",
    "normalize_watermarks",
    "resolve_logger",
    "sync_hook",
]

Logger = Union[logging.Logger, "logging.LoggerAdapter[Any]"]


def default_user_agent() -> str:
    """``User-Agent`` (client) and ``Server`` (server) unless the user sets them."""
    major, minor = sys.version_info[:2]
    return f"Python/{major}.{minor} picows-websockets/{__version__}"


default_server_header = default_user_agent


def normalize_max_size(max_size: MaxSize) -> tuple[Optional[int], Optional[int]]:
    """``max_size`` as (max message size, max frame size); None means no limit."""
    if isinstance(max_size, tuple):
        message, frame = max_size
        return message, frame
    return max_size, None


def normalize_watermarks(max_queue: MaxQueue) -> tuple[int, int]:
    """``max_queue`` as (high, low) frame counts; (0, 0) disables flow control.

    As websockets: the low-water mark defaults to a quarter of the high one.
    """
    if max_queue is None:
        return 0, 0
    if isinstance(max_queue, tuple):
        high, low = max_queue
        if high is None:
            return 0, 0
    else:
        high, low = max_queue, None
    if low is None:
        low = high // 4
    if high < 0 or low < 0 or low > high:
        raise ValueError(f"invalid max_queue {max_queue!r}: need 0 <= low <= high")
    return high, low


def resolve_logger(logger: LoggerLike, default_name: str) -> Logger:
    """A logger object for ``logger``: a name, a logger, or None for the default."""
    if logger is None:
        return logging.getLogger(default_name)
    if isinstance(logger, str):
        return logging.getLogger(logger)
    return logger


def sync_hook(value: Any, name: str) -> Any:
    """``value``, returned by the hook ``name``; NotImplementedError if it is an
    awaitable: the core asks for the handshake answer synchronously."""
    if isawaitable(value):
        getattr(value, "close", lambda: None)()  # no "never awaited" warning
        raise NotImplementedError(f"picows.websockets supports only synchronous {name}")
    return value
