"""The exception hierarchy, and the one table that maps failures to close codes.

Every error picows raises because of what the *network* sent derives from
:class:`WSError`.  Handshake failures carry the raw bytes that were received, so a
user can log or inspect exactly what the peer said.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from ._http11 import WSUpgradeResponse

    _ProxyErrorBase = Exception
else:
    try:
        # Upstream picows reports proxy failures as python_socks.ProxyError, and code
        # written for it catches that: where python-socks is installed, WSProxyError
        # is one too.
        from python_socks import ProxyError as _ProxyErrorBase
    except ImportError:
        _ProxyErrorBase = Exception

__all__ = [
    "WSError",
    "WSHandshakeError",
    "WSInvalidHeaderError",
    "WSInvalidMessageError",
    "WSInvalidStatusError",
    "WSInvalidURL",
    "WSInvalidUpgradeError",
    "WSProtocolError",
    "WSProxyError",
]


class WSError(Exception):
    """Base exception type for websocket-specific exceptions raised by picows."""


class WSHandshakeError(WSError):
    """Raised by ``ws_connect`` when websocket HTTP upgrade negotiation fails."""

    def __init__(
        self,
        description: str,
        raw_header: Optional[bytes] = None,
        raw_body: Optional[bytes] = None,
        response: Optional[WSUpgradeResponse] = None,
    ) -> None:
        super().__init__(description)
        self.raw_header = raw_header
        self.raw_body = raw_body
        self.response = response


class WSInvalidMessageError(WSHandshakeError):
    """The HTTP handshake request or response is malformed."""


class WSInvalidStatusError(WSHandshakeError):
    """The HTTP handshake response status rejects the WebSocket upgrade."""


class WSInvalidHeaderError(WSHandshakeError):
    """An HTTP header in the WebSocket handshake is invalid."""

    def __init__(
        self,
        description: str,
        name: str,
        value: Optional[str] = None,
        raw_header: Optional[bytes] = None,
        raw_body: Optional[bytes] = None,
        response: Optional[WSUpgradeResponse] = None,
    ) -> None:
        super().__init__(description, raw_header, raw_body, response)
        self.name = name
        self.value = value


class WSInvalidUpgradeError(WSInvalidHeaderError):
    """The Upgrade or Connection header is invalid in the WebSocket handshake."""


class WSProtocolError(WSError):
    """A frame broke RFC 6455 or ``max_frame_size``.

    ``code`` is the close code sent to the peer; ``str(exc)`` is the reason.  User
    callbacks may raise it to choose the CLOSE frame's code and reason.
    """

    def __init__(self, code: Any, message: Any) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return str(self.message)


class WSInvalidURL(WSError):
    """``ws_connect`` was given a URL that is not a valid WebSocket URL."""

    def __init__(self, url: str, msg: str) -> None:
        super().__init__(url, msg)
        self.url = url
        self.msg = msg

    def __str__(self) -> str:
        return f"{self.url} isn't a valid URL: {self.msg}"


class WSProxyError(WSError, _ProxyErrorBase):
    """``ws_connect`` could not open a tunnel through its ``proxy``.

    The proxy is down, answered garbage or nothing in time, rejected the credentials, or
    refused to connect to the server.  ``proxy`` is the proxy URL without its password;
    ``status`` is the HTTP status of a refused CONNECT (None for other failures).  The
    underlying error (``ConnectionRefusedError``, ``TimeoutError``, a ``python_socks``
    error...) is the ``__cause__``.  When python-socks is installed, this is also a
    ``python_socks.ProxyError`` (what upstream picows raises), with ``error_code`` set
    to ``status``.
    """

    def __init__(self, proxy: str, message: str, status: Optional[int] = None) -> None:
        Exception.__init__(self, proxy, message, status)
        self.error_code = status
        self.proxy = proxy
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return f"proxy {self.proxy}: {self.message}"
