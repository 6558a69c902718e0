"""HTTP/1.1 messages (RFC 9110 and RFC 9112): the upgrade request and response objects.

Sans-I/O and free of WebSocket rules: the objects the API hands out
(:class:`WSUpgradeRequest`, :class:`WSUpgradeResponse`), how user-supplied headers are
checked and serialised, and the small helpers that read list-valued headers.  The
opening handshake that uses them (RFC 6455 section 4) is in ``_handshake``; this
module raises only ``ValueError`` and ``TypeError`` for bad arguments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any, Optional, Union, cast

from multidict import CIMultiDict

from ._types import WSHeadersLike

__all__ = [
    "MAX_HEADERS",
    "MAX_HEADER_BLOCK",
    "WSUpgradeRequest",
    "WSUpgradeResponse",
    "WSUpgradeResponseWithListener",
    "coerce_status",
    "field_line",
    "header_pairs",
    "is_zero",
    "joined",
    "serialize",
    "status_line",
    "tokens",
    "with_body_fields",
]

#: Largest header block accepted, start line and final empty line included.
MAX_HEADER_BLOCK = 16 * 1024
#: Most field lines accepted in one header block.
MAX_HEADERS = 128

# RFC 9110 5.6.2: token = 1*tchar
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 5.5: field values are VCHAR, obs-text, SP and HTAB; any other CTL is refused.
BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9112 3.2: request-target, here any run of visible ASCII.
TARGET = re.compile(rb"[\x21-\x7e]+")


# ---------------------------------------------------------------------------
# Header values supplied by the user: checked once, serialised the same way everywhere.


def header_pairs(headers: Optional[WSHeadersLike]) -> list[tuple[str, str]]:
    """``headers`` as a list of pairs: str only (TypeError), no header injection (ValueError)."""
    if headers is None:
        return []
    if isinstance(headers, (str, bytes, bytearray)):
        raise TypeError("headers must be a mapping or an iterable of (name, value) pairs")
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs = []
    for item in items:
        if isinstance(item, (str, bytes)) or len(item) != 2:
            raise TypeError("headers must be a mapping or an iterable of (name, value) pairs")
        name, value = item
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"header name and value must be str, got {name!r}: {value!r}")
        field_line(name, value)
        pairs.append((name, value))
    return pairs


def field_line(name: str, value: str) -> bytes:
    """``name: value CRLF``, refusing anything that would end the line or the name early."""
    try:
        raw_name = name.encode("ascii")
        raw_value = value.encode("utf-8", "surrogateescape")  # parsed values round-trip
    except UnicodeEncodeError:
        raise ValueError(f"header {name!r} cannot be encoded") from None
    if TOKEN.fullmatch(raw_name) is None:
        raise ValueError(f"invalid header name {name!r}: it must be an RFC 9110 token")
    if BAD_VALUE.search(raw_value) is not None:
        raise ValueError(f"invalid value {value!r} for header {name!r}: control characters")
    return b"%s: %s\r\n" % (raw_name, raw_value)


def serialize(start_line: bytes, fields: Iterable[tuple[str, str]], body: Optional[bytes]) -> bytes:
    lines = [start_line, b"\r\n"]
    lines.extend(field_line(name, value) for name, value in fields)
    lines.append(b"\r\n")
    if body:
        lines.append(body)
    return b"".join(lines)


def status_line(version: bytes, status: HTTPStatus) -> bytes:
    # RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
    return b"%s %d %s" % (version, status, status.phrase.encode("ascii"))


def with_body_fields(headers: CIMultiDict[str], body: Optional[bytes]) -> list[tuple[str, str]]:
    """The headers to send, with Content-Type and Content-Length made to match ``body``."""
    if body is None:
        return list(headers.items())
    fields = [(n, v) for n, v in headers.items() if n.lower() != "content-length"]
    if "Content-Type" not in headers:
        fields.append(("Content-Type", "text/plain"))
    # RFC 9110 8.6: Content-Length "indicates ... the number of octets" of the content.
    fields.append(("Content-Length", str(len(body))))
    return fields


def _check_body(body: Optional[bytes]) -> Optional[bytes]:
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    raise TypeError(f"body must be bytes-like or None, got {type(body).__name__}")


class _UnknownStatus(int):
    """A status code that :class:`http.HTTPStatus` has no member for, such as 599.

    ``HTTPStatus(599)`` raises ValueError, so such codes get this ``int`` subclass, with
    HTTPStatus' ``value``, ``name``, ``phrase`` and ``description`` attributes.  It
    compares equal to the number, but ``isinstance(status, HTTPStatus)`` is False.
    """

    __slots__ = ()
    phrase = ""
    description = ""

    @property
    def value(self) -> int:
        return int(self)

    @property
    def name(self) -> str:
        return f"UNKNOWN_{int(self)}"

    def __repr__(self) -> str:
        return f"<HTTPStatus: {int(self)}>"


def coerce_status(status: Union[int, HTTPStatus]) -> HTTPStatus:
    if isinstance(status, HTTPStatus):
        return status
    if not isinstance(status, int) or isinstance(status, bool):
        raise TypeError(f"status must be an int or HTTPStatus, got {type(status).__name__}")
    # RFC 9110 15: "the status code of a response is a three-digit integer code"
    if not 100 <= status <= 999:
        raise ValueError(f"invalid status code {status}: it must have three digits")
    try:
        return HTTPStatus(status)
    except ValueError:
        return cast(HTTPStatus, _UnknownStatus(status))


# ---------------------------------------------------------------------------
# The public HTTP objects.


class WSUpgradeRequest:
    """An HTTP/1.1 upgrade request: the one a client sends, or the one a server received.

    ``path`` includes the query.  Header values are ASCII, decoded with surrogateescape.
    """

    __slots__ = ("headers", "method", "path", "version")

    def __init__(
        self,
        method: bytes = b"GET",
        path: bytes = b"/",
        version: bytes = b"HTTP/1.1",
        headers: Optional[WSHeadersLike] = None,
    ) -> None:
        self.method = method
        self.path = path
        self.version = version
        self.headers: CIMultiDict[str] = (
            headers if isinstance(headers, CIMultiDict) else CIMultiDict(header_pairs(headers))
        )

    def __repr__(self) -> str:
        return (
            f"WSUpgradeRequest(method={self.method!r}, path={self.path!r}, "
            f"version={self.version!r}, headers={self.headers!r})"
        )


class WSUpgradeResponse:
    """An HTTP/1.1 response to an upgrade request.

    ``status`` is an :class:`http.HTTPStatus`; a code it has no member for (599, say)
    is an ``int`` subclass with the same attributes instead (see ``_UnknownStatus``).
    """

    __slots__ = ("body", "headers", "status", "version")

    def __init__(
        self,
        version: bytes = b"HTTP/1.1",
        status: Union[int, HTTPStatus] = HTTPStatus.SWITCHING_PROTOCOLS,
        headers: Optional[WSHeadersLike] = None,
        body: Optional[bytes] = None,
    ) -> None:
        self.version = version
        self.status: HTTPStatus = coerce_status(status)
        self.headers: CIMultiDict[str] = (
            headers if isinstance(headers, CIMultiDict) else CIMultiDict(header_pairs(headers))
        )
        self.body: Optional[bytes] = _check_body(body)

    def __repr__(self) -> str:
        return (
            f"WSUpgradeResponse(version={self.version!r}, status={self.status!r}, "
            f"headers={self.headers!r}, body={self.body!r})"
        )

    @staticmethod
    def create_101_response(extra_headers: Optional[WSHeadersLike] = None) -> WSUpgradeResponse:
        """101 Switching Protocols with ``Connection: upgrade`` and ``Upgrade: websocket``."""
        fields = [("Connection", "upgrade"), ("Upgrade", "websocket")]
        return WSUpgradeResponse(headers=CIMultiDict(fields + header_pairs(extra_headers)))

    @staticmethod
    def create_error_response(
        status: Union[int, HTTPStatus],
        body: Optional[bytes] = None,
        extra_headers: Optional[WSHeadersLike] = None,
    ) -> WSUpgradeResponse:
        """An error response; ``status`` must be 400 or more (ValueError otherwise)."""
        code = coerce_status(status)
        if code < 400:
            raise ValueError(f"invalid error response code {int(code)}, can be only >=400")
        return WSUpgradeResponse(b"HTTP/1.1", code, extra_headers, body)

    @staticmethod
    def create_redirect_response(
        status: Union[int, HTTPStatus],
        location: str,
        extra_headers: Optional[WSHeadersLike] = None,
    ) -> WSUpgradeResponse:
        """A 3xx redirect (ValueError otherwise) whose ``Location`` is ``location``."""
        code = coerce_status(status)
        if not 300 <= code <= 399:
            raise ValueError(f"invalid redirect response code {int(code)}, can be only 3xx")
        fields = [(n, v) for n, v in header_pairs(extra_headers) if n.lower() != "location"]
        fields += header_pairs([("Location", location)])
        return WSUpgradeResponse(b"HTTP/1.1", code, CIMultiDict(fields))

    @staticmethod
    def create_ok_response(
        body: Optional[bytes] = None, extra_headers: Optional[WSHeadersLike] = None
    ) -> WSUpgradeResponse:
        """200 OK, with ``Content-Type: text/plain; charset=utf-8`` unless given."""
        response = WSUpgradeResponse(b"HTTP/1.1", HTTPStatus.OK, extra_headers, body)
        if "Content-Type" not in response.headers:
            response.headers.add("Content-Type", "text/plain; charset=utf-8")
        return response

    def to_bytes(self) -> bytes:
        """The status line, the headers and the body; ValueError for unsafe headers."""
        start = status_line(self.version, self.status)
        return serialize(start, with_body_fields(self.headers, self.body), self.body)


class WSUpgradeResponseWithListener:
    """Binds a :class:`WSUpgradeResponse` and the listener that serves the connection."""

    __slots__ = ("listener", "response")

    def __init__(self, response: WSUpgradeResponse, listener: Any) -> None:
        if response.status == 101 and listener is None:
            raise ValueError("listener cannot be None for 101 Switching Protocols response")
        if response.status >= 400 and listener is not None:
            raise ValueError("listener must be None for error response")
        self.response = response
        self.listener = listener


def tokens(headers: CIMultiDict[str], name: str) -> list[str]:
    """The lower-cased elements of a comma-separated list header (RFC 9110 5.6.1)."""
    return [t.strip(" \t").lower() for v in headers.getall(name, []) for t in v.split(",")]


def joined(headers: CIMultiDict[str], name: str) -> Optional[str]:
    values = headers.getall(name, [])
    return ", ".join(values) if values else None


def is_zero(value: str) -> bool:
    return value.isascii() and value.isdigit() and not value.strip("0")
