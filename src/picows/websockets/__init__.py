"""``picows.websockets``: the asyncio API of the ``websockets`` library on picows.

Migrate with one line::

    import picows.websockets as websockets

``connect``, ``serve``, connections (``recv``, ``send``, ``close``, ``ping``...),
the exceptions and permessage-deflate (RFC 7692, on by default) behave as in
websockets 13+ (the ``websockets.asyncio`` API); docs/websockets-compat.md lists
what differs.  The layout follows upstream picows 2.3.1: ``asyncio.client``,
``asyncio.server``, ``asyncio.connection``, ``exceptions``, ``compat``, ``typing``.
"""

from __future__ import annotations

from . import exceptions, protocol
from .asyncio.client import connect
from .asyncio.connection import ClientConnection, ServerConnection, process_exception
from .asyncio.router import Router, route
from .asyncio.server import Server, ServerHandshakeConnection, basic_auth, broadcast, serve
from .compat import CloseCode, Request, Response, State
from .exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    DuplicateParameter,
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidOrigin,
    InvalidParameterName,
    InvalidParameterValue,
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    InvalidState,
    InvalidStatus,
    InvalidUpgrade,
    InvalidURI,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
    ProxyError,
    SecurityError,
    TooManyFragments,
    WebSocketException,
)
from .typing import (
    BytesLike,
    Data,
    DataLike,
    ExtensionName,
    ExtensionParameter,
    HeadersLike,
    LoggerLike,
    Origin,
    StatusLike,
    Subprotocol,
)

#: The legacy API's name, still used in type annotations by many projects.
WebSocketClientProtocol = ClientConnection

__all__ = [
    "BytesLike",
    "ClientConnection",
    "CloseCode",
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Data",
    "DataLike",
    "DuplicateParameter",
    "ExtensionName",
    "ExtensionParameter",
    "HeadersLike",
    "InvalidHandshake",
    "InvalidHeader",
    "InvalidHeaderFormat",
    "InvalidHeaderValue",
    "InvalidMessage",
    "InvalidOrigin",
    "InvalidParameterName",
    "InvalidParameterValue",
    "InvalidProxy",
    "InvalidProxyMessage",
    "InvalidProxyStatus",
    "InvalidState",
    "InvalidStatus",
    "InvalidURI",
    "InvalidUpgrade",
    "LoggerLike",
    "NegotiationError",
    "Origin",
    "PayloadTooBig",
    "ProtocolError",
    "ProxyError",
    "Request",
    "Response",
    "Router",
    "SecurityError",
    "Server",
    "ServerConnection",
    "ServerHandshakeConnection",
    "State",
    "StatusLike",
    "Subprotocol",
    "TooManyFragments",
    "WebSocketClientProtocol",
    "WebSocketException",
    "basic_auth",
    "broadcast",
    "connect",
    "exceptions",
    "process_exception",
    "protocol",
    "route",
    "serve",
]
