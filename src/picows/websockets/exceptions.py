"""The exceptions of the ``websockets`` library, with the same names and attributes.

Hierarchy (as in websockets)::

    WebSocketException
        ConnectionClosed
            ConnectionClosedOK
            ConnectionClosedError
        InvalidURI
        InvalidProxy
        InvalidHandshake
            SecurityError
            ProxyError
                InvalidProxyMessage
                InvalidProxyStatus
            InvalidMessage
            InvalidStatus
            InvalidHeader
                InvalidHeaderFormat
                InvalidHeaderValue
                InvalidOrigin
                InvalidUpgrade
            NegotiationError
                DuplicateParameter
                InvalidParameterName
                InvalidParameterValue
        ProtocolError
        PayloadTooBig
        InvalidState
        ConcurrencyError
        TooManyFragments
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = [
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DuplicateParameter",
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
    "NegotiationError",
    "PayloadTooBig",
    "ProtocolError",
    "ProxyError",
    "SecurityError",
    "TooManyFragments",
    "WebSocketException",
]


class WebSocketException(Exception):
    """Base class of every exception raised by ``picows.websockets``."""


def _side(close: Any) -> str:
    return f"{close.code} ({close.reason})"


class ConnectionClosed(WebSocketException):
    """The connection is closed; raised by every operation on it from then on.

    ``rcvd`` and ``sent`` are the CLOSE frames received and sent (objects with
    ``code`` and ``reason``), or None; ``rcvd_then_sent`` tells their order when
    both exist.
    """

    def __init__(self, rcvd: Any, sent: Any, rcvd_then_sent: Optional[bool] = None) -> None:
        super().__init__(rcvd, sent, rcvd_then_sent)
        self.rcvd = rcvd
        self.sent = sent
        self.rcvd_then_sent = rcvd_then_sent

    def __str__(self) -> str:
        if self.rcvd is None and self.sent is None:
            return "no close frame received or sent"
        if self.rcvd is None:
            return f"sent {_side(self.sent)}"
        if self.sent is None:
            return f"received {_side(self.rcvd)}"
        order = "received then sent" if self.rcvd_then_sent else "sent then received"
        return f"{order} close frames: received {_side(self.rcvd)}, sent {_side(self.sent)}"


class ConnectionClosedOK(ConnectionClosed):
    """Closed properly: close frames with 1000, 1001 or no code went both ways."""


class ConnectionClosedError(ConnectionClosed):
    """Closed with an error code, or without a complete closing handshake."""


class InvalidURI(WebSocketException):
    """The URI is not a valid ws:// or wss:// URI."""

    def __init__(self, uri: str, msg: str) -> None:
        super().__init__(uri, msg)
        self.uri = uri
        self.msg = msg

    def __str__(self) -> str:
        return f"{self.uri} isn't a valid WebSocket URI: {self.msg}"


class InvalidProxy(WebSocketException):
    """The proxy is not a valid proxy URL."""

    def __init__(self, proxy: str, msg: str) -> None:
        super().__init__(proxy, msg)
        self.proxy = proxy
        self.msg = msg

    def __str__(self) -> str:
        return f"{self.proxy} isn't a valid proxy: {self.msg}"


class InvalidHandshake(WebSocketException):
    """The opening handshake failed."""


class SecurityError(InvalidHandshake):
    """A handshake request or response broke a size limit."""


class ProxyError(InvalidHandshake):
    """The connection through the proxy failed."""


class InvalidProxyMessage(ProxyError):
    """The proxy's response was malformed."""


class InvalidProxyStatus(ProxyError):
    """The proxy refused the connection; ``response`` is its answer."""

    def __init__(self, response: Any) -> None:
        super().__init__(response)
        self.response = response

    def __str__(self) -> str:
        status = getattr(self.response, "status_code", None)
        if status is None:
            return "proxy rejected connection"
        return f"proxy rejected connection: HTTP {int(status):d}"


class InvalidMessage(InvalidHandshake):
    """The handshake request or response was malformed."""


class InvalidStatus(InvalidHandshake):
    """The server answered with a status other than 101; ``response`` is its answer."""

    def __init__(self, response: Any) -> None:
        super().__init__(response)
        self.response = response

    def __str__(self) -> str:
        return f"server rejected WebSocket connection: HTTP {int(self.response.status_code):d}"


class InvalidHeader(InvalidHandshake):
    """A header is missing or has a bad value; ``name`` and ``value`` say which."""

    def __init__(self, name: str, value: Optional[str] = None) -> None:
        super().__init__(name, value)
        self.name = name
        self.value = value

    def __str__(self) -> str:
        if self.value is None:
            return f"missing {self.name} header"
        if self.value == "":
            return f"empty {self.name} header"
        return f"invalid {self.name} header: {self.value}"


class InvalidHeaderFormat(InvalidHeader):
    """A header does not follow its grammar."""

    def __init__(self, name: str, error: str, header: str, pos: int) -> None:
        super().__init__(name, f"{error} at {pos} in {header}")


class InvalidHeaderValue(InvalidHeader):
    """A header is well-formed but its value is not acceptable."""


class InvalidOrigin(InvalidHeader):
    """The Origin of the request is not among the server's ``origins``."""

    def __init__(self, origin: Optional[str]) -> None:
        super().__init__("Origin", origin)


class InvalidUpgrade(InvalidHeader):
    """The Upgrade or Connection header is wrong."""


class NegotiationError(InvalidHandshake):
    """Negotiating an extension or a subprotocol failed."""


class DuplicateParameter(NegotiationError):
    """An extension parameter was given twice."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"duplicate parameter: {self.name}"


class InvalidParameterName(NegotiationError):
    """An extension parameter has an unknown name."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"invalid parameter name: {self.name}"


class InvalidParameterValue(NegotiationError):
    """An extension parameter has a missing or wrong value."""

    def __init__(self, name: str, value: Optional[str]) -> None:
        super().__init__(name, value)
        self.name = name
        self.value = value

    def __str__(self) -> str:
        if self.value is None:
            return f"missing value for parameter {self.name}"
        if self.value == "":
            return f"empty value for parameter {self.name}"
        return f"invalid value for parameter {self.name}: {self.value}"


class ProtocolError(WebSocketException):
    """A frame or a sequence of frames broke the protocol."""


class PayloadTooBig(WebSocketException):
    """A message is larger than ``max_size`` (the connection closes with 1009)."""

    def __init__(
        self, size: Optional[int] = None, max_size: Optional[int] = None, current: int = 0
    ) -> None:
        super().__init__(size, max_size, current)
        self.size = size
        self.max_size = max_size
        self.current_size = current

    def __str__(self) -> str:
        if self.max_size is None:
            return "message too big"
        return f"message exceeds the limit of {self.max_size} bytes"


class InvalidState(WebSocketException, AssertionError):
    """An operation is not allowed in the connection's current state."""


class ConcurrencyError(WebSocketException, RuntimeError):
    """Two coroutines ran an operation that must not run concurrently (recv...)."""


class TooManyFragments(WebSocketException):
    """``recv`` met a message of more frames than its limit (4096, as websockets,
    or ``WEBSOCKETS_MAX_FRAGMENTS``): the connection closes with 1009."""

    def __init__(self, max_fragments: int) -> None:
        super().__init__(f"fragmented message exceeds limit of {max_fragments} frames")
        self.max_fragments = max_fragments
