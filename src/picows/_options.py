"""Per-connection settings, and the socket and logger set-up of a new connection.

``ConnectionOptions`` carries what ``ws_connect`` and ``ws_create_server`` were given
to every ``WSProtocol``; the helpers below run once per connection, in
``connection_made``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, Optional, Union

from ._types import WSAutoPingStrategy

__all__ = [
    "ConnectionOptions",
    "Logger",
    "connection_logger",
    "error_body",
    "set_nodelay",
]

Logger = Union[logging.Logger, "logging.LoggerAdapter[Any]"]


class ConnectionOptions:
    """The per-connection settings shared by ``ws_connect`` and ``ws_create_server``."""

    __slots__ = (
        "auto_ping_idle_timeout",
        "auto_ping_reply_timeout",
        "auto_ping_strategy",
        "disconnect_on_exception",
        "enable_auto_ping",
        "enable_auto_pong",
        "logger",
        "max_frame_size",
        "read_buffer_init_size",
        "websocket_handshake_timeout",
    )

    def __init__(
        self,
        *,
        logger: Logger,
        disconnect_on_exception: bool,
        websocket_handshake_timeout: Optional[float],
        enable_auto_ping: bool,
        auto_ping_idle_timeout: float,
        auto_ping_reply_timeout: float,
        auto_ping_strategy: WSAutoPingStrategy,
        enable_auto_pong: bool,
        max_frame_size: int,
        read_buffer_init_size: int,
    ) -> None:
        if enable_auto_ping and auto_ping_reply_timeout > auto_ping_idle_timeout:
            raise ValueError(
                "auto_ping_reply_timeout must not be greater than auto_ping_idle_timeout"
            )
        if max_frame_size < 0:
            raise ValueError("max_frame_size must not be negative")
        self.logger = logger
        self.disconnect_on_exception = disconnect_on_exception
        self.websocket_handshake_timeout = websocket_handshake_timeout
        self.enable_auto_ping = enable_auto_ping
        self.auto_ping_idle_timeout = auto_ping_idle_timeout
        self.auto_ping_reply_timeout = auto_ping_reply_timeout
        self.auto_ping_strategy = WSAutoPingStrategy(auto_ping_strategy)
        self.enable_auto_pong = enable_auto_pong
        self.max_frame_size = max_frame_size
        self.read_buffer_init_size = read_buffer_init_size


class _ConnectionLogger(logging.Logger):
    """A per-connection child logger whose level checks always ask its parents.

    ``Logger.isEnabledFor`` caches its answers, and only registered loggers have
    their cache cleared by ``setLevel``: this one is not registered, so it skips
    the cache and follows runtime level changes of ``picows`` and its parents.
    """

    def isEnabledFor(self, level: int) -> bool:
        if self.disabled or self.manager.disable >= level:
            return False
        return level >= self.getEffectiveLevel()


def connection_logger(parent: Logger, transport: asyncio.BaseTransport) -> Logger:
    """A child logger ``<parent>.<fd>`` that is not registered with ``logging``.

    ``logging.getLogger`` would keep one logger per file descriptor forever; a
    hand-made child is freed with its connection.  Its level is NOTSET: the
    parent's level, as it is at each call, decides.
    """
    if isinstance(parent, logging.LoggerAdapter):
        return parent
    sock = transport.get_extra_info("socket")
    fd = sock.fileno() if sock is not None else -1
    child = _ConnectionLogger(f"{parent.name}.{fd}")
    child.parent = parent
    return child


def error_body(exc: BaseException) -> bytes:
    """``str(exc)`` as UTF-8, the body of a 400 or 500 (as upstream sends it).

    Header values are decoded with surrogateescape, so a message that quotes one
    may hold lone surrogates, which UTF-8 cannot encode: they are escaped.
    """
    return str(exc).encode("utf-8", "backslashreplace")


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if hasattr(socket, "TCP_QUICKACK"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
    except OSError:
        pass
