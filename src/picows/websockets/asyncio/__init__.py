"""The asyncio implementation of the ``websockets`` API (``websockets.asyncio``)."""

from __future__ import annotations

from ..compat import State
from .client import connect
from .connection import ClientConnection, ServerConnection, process_exception
from .router import route
from .server import Server, ServerHandshakeConnection, basic_auth, broadcast, serve

__all__ = [
    "ClientConnection",
    "Server",
    "ServerConnection",
    "ServerHandshakeConnection",
    "State",
    "basic_auth",
    "broadcast",
    "connect",
    "process_exception",
    "route",
    "serve",
]
