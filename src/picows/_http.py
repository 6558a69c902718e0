"""The opening handshake, RFC 6455 section 4, over HTTP/1.1 (RFC 9110 and RFC 9112).

Both sides are Sans-I/O: :class:`ClientHandshake` builds the upgrade request and checks
the response, :class:`ServerHandshake` parses the request and serialises the answer.
Each is fed bytes as they arrive and never touches a socket; nothing here imports
asyncio.  The wire format both read (RFC 9112 2.1)::

    HTTP-message = start-line CRLF *( field-line CRLF ) CRLF [ message-body ]

One reader (:class:`_HeaderBlockReader`) collects the bytes up to the empty line, and one
parser (:func:`_parse_fields`) checks the field lines, so both sides share the same
limits (:data:`MAX_HEADER_BLOCK`, :data:`MAX_HEADERS`) and the same strict syntax.
A failure is final: later calls raise the same exception again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any, Optional, Protocol, Union, cast

from multidict import CIMultiDict

from ._exceptions import (
    WSHandshakeError,
    WSInvalidHeaderError,
    WSInvalidMessageError,
    WSInvalidStatusError,
    WSInvalidUpgradeError,
)
from ._types import WSHeadersLike

__all__ = [
    "MAX_HEADERS",
    "MAX_HEADER_BLOCK",
    "ClientHandshake",
    "RequestTooLargeError",
    "ServerHandshake",
    "UnsupportedVersionError",
    "WSUpgradeRequest",
    "WSUpgradeResponse",
    "WSUpgradeResponseWithListener",
    "accept_key",
    "upgrade_required_response",
]

#: Largest header block accepted, start line and final empty line included.
MAX_HEADER_BLOCK = 16 * 1024
#: Most field lines accepted in one header block.
MAX_HEADERS = 128
# Most body bytes kept from a non-101 response (enough for any redirect or error page).
_MAX_ERROR_BODY = 1024 * 1024

# RFC 6455 1.3: the key is "concatenated with the string
# "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" in string form".
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# RFC 9110 5.6.2: token = 1*tchar
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 5.5: field values are VCHAR, obs-text, SP and HTAB; any other CTL is refused.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
# (the final SP is optional here: "HTTP/1.1 101" alone is accepted).
_STATUS_LINE = re.compile(rb"(HTTP/1\.1) ([1-9][0-9]{2})(?: ([\t\x20-\x7e\x80-\xff]*))?", re.I)
# RFC 9112 3.2: request-target, here any run of visible ASCII.
_TARGET = re.compile(rb"[\x21-\x7e]+")
_BARE_LF = re.compile(rb"(?<!\r)\n")
_EXTENSIONS = "Sec-WebSocket-Extensions"
_PROTOCOL = "Sec-WebSocket-Protocol"


class RequestTooLargeError(WSInvalidMessageError):
    """The request's header block is over 16 KiB or has over 128 headers.

    The server closes the connection without answering, as upstream picows does.
    """


class UnsupportedVersionError(WSInvalidHeaderError):
    """The request asks for a WebSocket version other than 13.

    The server answers with :func:`upgrade_required_response` (426).
    """


class _URLLike(Protocol):
    """What :class:`ClientHandshake` needs of a :class:`~picows.WSParsedURL`."""

    @property
    def netloc(self) -> str: ...

    @property
    def resource_name(self) -> str: ...


# ---------------------------------------------------------------------------
# Header values supplied by the user: checked once, serialised the same way everywhere.


def _header_pairs(headers: Optional[WSHeadersLike]) -> list[tuple[str, str]]:
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
        _field_line(name, value)
        pairs.append((name, value))
    return pairs


def _field_line(name: str, value: str) -> bytes:
    """``name: value CRLF``, refusing anything that would end the line or the name early."""
    try:
        raw_name = name.encode("ascii")
        raw_value = value.encode("utf-8", "surrogateescape")  # parsed values round-trip
    except UnicodeEncodeError:
        raise ValueError(f"header {name!r} cannot be encoded") from None
    if _TOKEN.fullmatch(raw_name) is None:
        raise ValueError(f"invalid header name {name!r}: it must be an RFC 9110 token")
    if _BAD_VALUE.search(raw_value) is not None:
        raise ValueError(f"invalid value {value!r} for header {name!r}: control characters")
    return b"%s: %s\r\n" % (raw_name, raw_value)


def _serialize(
    start_line: bytes, fields: Iterable[tuple[str, str]], body: Optional[bytes]
) -> bytes:
    lines = [start_line, b"\r\n"]
    lines.extend(_field_line(name, value) for name, value in fields)
    lines.append(b"\r\n")
    if body:
        lines.append(body)
    return b"".join(lines)


def _status_line(version: bytes, status: HTTPStatus) -> bytes:
    # RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
    return b"%s %d %s" % (version, status, status.phrase.encode("ascii"))


def _with_body_fields(headers: CIMultiDict[str], body: Optional[bytes]) -> list[tuple[str, str]]:
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


def _coerce_status(status: Union[int, HTTPStatus]) -> HTTPStatus:
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
            headers if isinstance(headers, CIMultiDict) else CIMultiDict(_header_pairs(headers))
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
        self.status: HTTPStatus = _coerce_status(status)
        self.headers: CIMultiDict[str] = (
            headers if isinstance(headers, CIMultiDict) else CIMultiDict(_header_pairs(headers))
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
        return WSUpgradeResponse(headers=CIMultiDict(fields + _header_pairs(extra_headers)))

    @staticmethod
    def create_error_response(
        status: Union[int, HTTPStatus],
        body: Optional[bytes] = None,
        extra_headers: Optional[WSHeadersLike] = None,
    ) -> WSUpgradeResponse:
        """An error response; ``status`` must be 400 or more (ValueError otherwise)."""
        code = _coerce_status(status)
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
        code = _coerce_status(status)
        if not 300 <= code <= 399:
            raise ValueError(f"invalid redirect response code {int(code)}, can be only 3xx")
        fields = [(n, v) for n, v in _header_pairs(extra_headers) if n.lower() != "location"]
        fields += _header_pairs([("Location", location)])
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
        start = _status_line(self.version, self.status)
        return _serialize(start, _with_body_fields(self.headers, self.body), self.body)


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


def accept_key(key: Union[str, bytes]) -> str:
    """The ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key`` (RFC 6455 4.2.2)."""
    raw = key.encode("ascii") if isinstance(key, str) else key
    # 4.2.2: "take the SHA-1 hash of this concatenated value ... base64-encode"
    return base64.b64encode(hashlib.sha1(raw + _GUID).digest()).decode("ascii")


def upgrade_required_response(body: Optional[bytes] = None) -> WSUpgradeResponse:
    """426 Upgrade Required, naming version 13 (the answer to :class:`UnsupportedVersionError`)."""
    # RFC 6455 4.2.2: "send an appropriate HTTP error code (such as 426 Upgrade Required) and
    # a |Sec-WebSocket-Version| header field indicating the version(s) the server is capable
    # of understanding"; RFC 9110 15.5.22: "The server MUST send an Upgrade header field".
    fields = [("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")]
    return WSUpgradeResponse.create_error_response(HTTPStatus.UPGRADE_REQUIRED, body, fields)


# ---------------------------------------------------------------------------
# The header block: read, split, parse.  Shared by both sides.


class _HeaderBlockReader:
    """Collects bytes up to the empty line that ends a header block (RFC 9112 2.1).

    It never holds more than MAX_HEADER_BLOCK bytes plus one feed: past the limit it
    raises ``too_large`` at once instead of waiting for the end of the block.
    """

    __slots__ = ("_scanned", "_too_large", "buffer")

    def __init__(self, too_large: type[WSInvalidMessageError]) -> None:
        self.buffer = bytearray()
        self._scanned = 0
        self._too_large = too_large

    def feed(self, data: bytes) -> Optional[tuple[bytes, bytes]]:
        """``(block, rest)`` once the empty line has arrived, else None."""
        buffer = self.buffer
        start = max(0, self._scanned - 3)  # CRLF CRLF may straddle two feeds
        buffer += data
        end = buffer.find(b"\r\n\r\n", start)
        if end < 0:
            self._scanned = len(buffer)
            if len(buffer) >= MAX_HEADER_BLOCK:
                raise self._too_large(
                    f"upgrade header block exceeds max_size={MAX_HEADER_BLOCK} bytes",
                    raw_header=bytes(buffer),
                )
            # RFC 9112 2.2: lines end in CRLF.  Fail now rather than wait for a
            # CRLF CRLF that an LF-only peer will never send.
            if _BARE_LF.search(buffer, start) is not None:
                raise WSInvalidMessageError("header lines must end with CRLF", bytes(buffer))
            return None
        end += 4
        block = bytes(buffer[:end])
        if end > MAX_HEADER_BLOCK:
            raise self._too_large(
                f"upgrade header block exceeds max_size={MAX_HEADER_BLOCK} bytes", block
            )
        rest = bytes(buffer[end:])
        self.clear()
        return block, rest

    def clear(self) -> None:
        self.buffer = bytearray()
        self._scanned = 0


def _parse_fields(
    fields: bytes, block: bytes, too_large: type[WSInvalidMessageError]
) -> CIMultiDict[str]:
    """Parses the field lines of ``block`` (``fields``: them, without the final CRLF)."""
    lines = fields.split(b"\r\n") if fields else []
    if len(lines) > MAX_HEADERS:
        raise too_large(f"header block has more than {MAX_HEADERS} headers", block)
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines:
        # RFC 9112 5.1: field-line = field-name ":" OWS field-value OWS
        name, colon, value = line.partition(b":")
        if line[:1] in (b" ", b"\t"):
            # RFC 9112 5.2: obs-fold is deprecated; we reject it on both sides.
            raise WSInvalidMessageError(f"obsolete line folding in {line[:100]!r}", block)
        # RFC 9112 5.1: "No whitespace is allowed between the field name and colon."
        if not colon or _TOKEN.fullmatch(name) is None:
            raise WSInvalidMessageError(f"invalid header line {line[:100]!r}", block)
        value = value.strip(b" \t")
        if _BAD_VALUE.search(value) is not None:
            raise WSInvalidMessageError(f"invalid header value in {line[:100]!r}", block)
        headers.add(name.decode("ascii"), value.decode("ascii", "surrogateescape"))
    return headers


def _tokens(headers: CIMultiDict[str], name: str) -> list[str]:
    """The lower-cased elements of a comma-separated list header (RFC 9110 5.6.1)."""
    return [t.strip(" \t").lower() for v in headers.getall(name, []) for t in v.split(",")]


def _joined(headers: CIMultiDict[str], name: str) -> Optional[str]:
    values = headers.getall(name, [])
    return ", ".join(values) if values else None


def _is_zero(value: str) -> bool:
    return value.isascii() and value.isdigit() and not value.strip("0")


def _check_upgrade(headers: CIMultiDict[str], *context: Any) -> None:
    """Both sides: Upgrade lists "websocket" and Connection lists "upgrade", as tokens.

    ``context`` is the ``raw_header, raw_body, response`` of the error.
    """
    # 4.2.1: "An |Upgrade| header field containing the value "websocket", treated as an
    # ASCII case-insensitive value."  "A |Connection| header field that includes the token
    # "Upgrade", treated as an ASCII case-insensitive value." (so "keep-alive, Upgrade")
    for name, token in (("Upgrade", "websocket"), ("Connection", "upgrade")):
        if token not in _tokens(headers, name):
            value = _joined(headers, name)
            problem = "missing" if value is None else "invalid"
            raise WSInvalidUpgradeError(f"{problem} {name} header", name, value, *context)


def _only(headers: CIMultiDict[str], name: str, *context: Any) -> str:
    """The value of a header that must appear exactly once."""
    values = headers.getall(name, [])
    if len(values) != 1:
        problem = "missing" if not values else "duplicate"
        raise WSInvalidHeaderError(
            f"{problem} {name} header", name, _joined(headers, name), *context
        )
    return values[0]


def _is_valid_key(key: str) -> bool:
    # 4.2.1: "a base64-encoded value that, when decoded, is 16 bytes in length"
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        return False
    # Strict: only the canonical encoding (no stray bits before the padding).
    return len(raw) == 16 and base64.b64encode(raw) == key.encode("ascii")


# ---------------------------------------------------------------------------
# Client side.

# ClientHandshake states: reading the header block; reading the body of a non-101
# response (to report it); done (101 received; the rest of the bytes are frames).
_READ_HEADER, _READ_ERROR_BODY, _DONE = range(3)


class ClientHandshake:
    """The client side of the opening handshake (RFC 6455 4.1), without I/O.

    Send :meth:`request_bytes`, then pass what arrives to :meth:`receive_data` until it
    returns the 101 response; the bytes that followed its header block are then in
    :attr:`leftover` (they are WebSocket frames).  Call :meth:`receive_eof` if the peer
    closes first.  Errors are :class:`~picows.WSHandshakeError` subclasses carrying
    ``raw_header``, ``raw_body`` and ``response``.
    """

    def __init__(
        self,
        url: _URLLike,
        extra_headers: Optional[WSHeadersLike] = None,
        key: Optional[bytes] = None,
    ) -> None:
        # 4.1: "a nonce consisting of a randomly selected 16-byte value that has been
        # base64-encoded"
        self.key = base64.b64encode(os.urandom(16)) if key is None else key
        fields = [
            ("Host", url.netloc),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", self.key.decode("ascii")),
        ]
        for name, value in _header_pairs(extra_headers):
            if name.lower() == "host":
                fields[0] = (name, value)  # replaces the generated Host, in place
            else:
                fields.append((name, value))
        path = url.resource_name.encode("utf-8")
        if _TARGET.fullmatch(path) is None:
            raise ValueError(f"invalid resource name {url.resource_name!r}")
        self.request = WSUpgradeRequest(b"GET", path, b"HTTP/1.1", CIMultiDict(fields))
        self.response: Optional[WSUpgradeResponse] = None
        self.leftover = b""
        self._reader = _HeaderBlockReader(WSInvalidMessageError)
        self._state = _READ_HEADER
        self._error: Optional[WSHandshakeError] = None
        self._raw_header: Optional[bytes] = None
        self._reason = ""
        self._body = bytearray()
        self._body_wanted = 0

    def request_bytes(self) -> bytes:
        """``GET <resource> HTTP/1.1``, the headers and the empty line."""
        request = self.request
        start = b"%s %s %s" % (request.method, request.path, request.version)
        return _serialize(start, request.headers.items(), None)

    def receive_data(self, data: bytes) -> Optional[WSUpgradeResponse]:
        """The 101 response once it is complete and valid, else None; raises on failure."""
        if self._error is not None:
            raise self._error
        if self._state == _DONE:
            raise RuntimeError("the handshake is complete: feed the frame parser instead")
        try:
            if self._state == _READ_ERROR_BODY:
                self._receive_error_body(data)
                return None
            return self._receive_header(data)
        except WSHandshakeError as exc:
            self._fail(exc)
            raise

    def receive_eof(self) -> None:
        """The peer closed the connection: fails the handshake unless it completed."""
        if self._error is not None:
            raise self._error
        if self._state == _DONE:
            return
        if self._state == _READ_ERROR_BODY:
            exc: WSHandshakeError = self._status_error()
        else:
            exc = WSInvalidMessageError(
                "connection closed before the upgrade response was complete",
                raw_header=bytes(self._reader.buffer),
            )
        self._fail(exc)
        raise exc

    def _fail(self, exc: WSHandshakeError) -> None:
        self._error = exc
        self._reader.clear()
        self._body = bytearray()

    def _receive_header(self, data: bytes) -> Optional[WSUpgradeResponse]:
        parts = self._reader.feed(data)
        if parts is None:
            return None
        block, rest = parts
        self._raw_header = block
        start, _, fields = block[:-4].partition(b"\r\n")
        match = _STATUS_LINE.fullmatch(start)
        if match is None:
            raise WSInvalidMessageError(f"invalid status line {start[:100]!r}", block)
        headers = _parse_fields(fields, block, WSInvalidMessageError)
        version, code, reason = match.groups(b"")
        response = WSUpgradeResponse(version, _coerce_status(int(code)), headers)
        self.response = response
        if code != b"101":
            # Keep the body (up to its Content-Length), so that redirects can be followed
            # and the error reported with what the server said.
            self._reason = reason.decode("ascii", "backslashreplace")
            wanted = self._error_body_length(headers)
            # Without a usable Content-Length, the body is what came with the header block.
            self._body = bytearray(rest[: _MAX_ERROR_BODY if wanted is None else wanted])
            self._body_wanted = len(self._body) if wanted is None else wanted
            self._state = _READ_ERROR_BODY
            self._receive_error_body(b"")
            return None
        self._check_101(response, block, rest)
        self.leftover = rest
        self._state = _DONE
        return response

    def _receive_error_body(self, data: bytes) -> None:
        self._body += data[: self._body_wanted - len(self._body)]
        if len(self._body) >= self._body_wanted:
            raise self._status_error()

    @staticmethod
    def _error_body_length(headers: CIMultiDict[str]) -> Optional[int]:
        """How much body to wait for: Content-Length, capped at 1 MiB; None if unknown."""
        lengths = headers.getall("Content-Length", [])
        if "Transfer-Encoding" in headers or len(lengths) != 1:
            return None
        digits = lengths[0]
        if not digits.isascii() or not digits.isdigit():
            return None
        digits = digits.lstrip("0") or "0"
        # int() of a huge digit string is slow (and refused on 3.11+): compare lengths first.
        return _MAX_ERROR_BODY if len(digits) > 7 else min(int(digits), _MAX_ERROR_BODY)

    def _status_error(self) -> WSInvalidStatusError:
        response = cast(WSUpgradeResponse, self.response)
        response.body = bytes(self._body)
        received = f"{int(response.status)} {self._reason}".rstrip()
        return WSInvalidStatusError(
            "expected upgrade response with status 101 Switching Protocols, "
            f"but received {received}",
            self._raw_header,
            response.body,
            response,
        )

    def _check_101(self, response: WSUpgradeResponse, block: bytes, rest: bytes) -> None:
        headers = response.headers
        context = (block, rest, response)
        # RFC 9112 6.1: "A server MUST NOT send a Transfer-Encoding header field in any
        # response with a status code of 1xx"
        if "Transfer-Encoding" in headers:
            raise WSInvalidMessageError("Transfer-Encoding in a 101 response", *context)
        # RFC 9110 8.6: "A server MUST NOT send a Content-Length header field in any
        # response with a status code of 1xx"; we tolerate "0".
        if not all(_is_zero(v) for v in headers.getall("Content-Length", [])):
            raise WSInvalidMessageError("Content-Length in a 101 response", *context)
        _check_upgrade(headers, *context)
        # 4.1: "If the |Sec-WebSocket-Accept| contains a value other than the base64-encoded
        # SHA-1 of the concatenation of the |Sec-WebSocket-Key| ... the client MUST _Fail_"
        accept = _only(headers, "Sec-WebSocket-Accept", *context)
        if accept != accept_key(self.key):
            raise WSInvalidHeaderError(
                "invalid Sec-WebSocket-Accept header", "Sec-WebSocket-Accept", accept, *context
            )
        # 4.1: "If the response includes a |Sec-WebSocket-Extensions| header field and this
        # header field indicates the use of an extension that was not present in the
        # client's handshake ... the client MUST _Fail the WebSocket Connection_."
        requested = self.request.headers
        if _EXTENSIONS in headers:
            offered = {e.partition(";")[0].strip(" \t") for e in _tokens(requested, _EXTENSIONS)}
            chosen = {e.partition(";")[0].strip(" \t") for e in _tokens(headers, _EXTENSIONS)}
            if _EXTENSIONS not in requested or not chosen <= offered:
                value = _joined(headers, _EXTENSIONS)
                raise WSInvalidHeaderError("unrequested extension", _EXTENSIONS, value, *context)
        # 4.1: the same for "a subprotocol that was not present in the client's handshake".
        if _PROTOCOL in headers:
            chosen_protocol = _only(headers, _PROTOCOL, *context)
            offered = {
                t.strip(" \t") for v in requested.getall(_PROTOCOL, []) for t in v.split(",")
            }
            if chosen_protocol not in offered - {""}:
                raise WSInvalidHeaderError(
                    "unrequested subprotocol", _PROTOCOL, chosen_protocol, *context
                )


# ---------------------------------------------------------------------------
# Server side.


class ServerHandshake:
    """The server side of the opening handshake (RFC 6455 4.2), without I/O.

    Pass received bytes to :meth:`receive_data` until it returns the request (the bytes
    after it are in :attr:`leftover`), route it, then either :meth:`validate_upgrade` it
    and send :meth:`build_101_response_bytes`, or send :meth:`error_response_bytes`.
    How to answer each failure:

    * :class:`RequestTooLargeError`: close the connection without answering;
    * :class:`UnsupportedVersionError`: :func:`upgrade_required_response` (426);
    * any other :class:`~picows.WSHandshakeError`: 400 with ``str(exc)`` as the body.
    """

    def __init__(self) -> None:
        self.request: Optional[WSUpgradeRequest] = None
        self.leftover = b""
        self._reader = _HeaderBlockReader(RequestTooLargeError)
        self._error: Optional[WSHandshakeError] = None
        self._raw_header: Optional[bytes] = None

    def receive_data(self, data: bytes) -> Optional[WSUpgradeRequest]:
        """The request once its header block is complete and well-formed, else None."""
        if self._error is not None:
            raise self._error
        if self.request is not None:
            raise RuntimeError("the request is complete: feed the frame parser instead")
        try:
            parts = self._reader.feed(data)
            if parts is None:
                return None
            block, rest = parts
            self._raw_header = block
            self.request = self._parse(block, rest)
        except WSHandshakeError as exc:
            self._error = exc
            self._reader.clear()
            raise
        self.leftover = rest
        return self.request

    @staticmethod
    def _parse(block: bytes, rest: bytes) -> WSUpgradeRequest:
        start, _, fields = block[:-4].partition(b"\r\n")
        # RFC 9112 3: request-line = method SP request-target SP HTTP-version
        parts = start.split(b" ")
        if len(parts) != 3:
            raise WSInvalidMessageError(f"invalid request line {start[:100]!r}", block, rest)
        method, target, version = parts
        # RFC 6455 4.1: "The method of the request MUST be GET, and the HTTP version MUST
        # be at least 1.1."  (We speak exactly HTTP/1.1.)
        if method != b"GET":
            raise WSInvalidMessageError(f"unsupported method {method[:20]!r}", block, rest)
        if version != b"HTTP/1.1":
            raise WSInvalidMessageError(f"unsupported HTTP version {version[:20]!r}", block, rest)
        if _TARGET.fullmatch(target) is None:
            raise WSInvalidMessageError(f"invalid request target {target[:100]!r}", block, rest)
        headers = _parse_fields(fields, block, RequestTooLargeError)
        # An upgrade request has no body (RFC 9112 6.3): refuse any framing of one.
        if "Transfer-Encoding" in headers:
            raise WSInvalidMessageError("Transfer-Encoding in an upgrade request", block, rest)
        lengths = headers.getall("Content-Length", [])
        if len(lengths) > 1:
            raise WSInvalidMessageError("duplicate Content-Length header", block, rest)
        if lengths and not _is_zero(lengths[0]):
            raise WSInvalidMessageError("an upgrade request cannot have a body", block, rest)
        return WSUpgradeRequest(method, target, version, headers)

    def validate_upgrade(self, request: WSUpgradeRequest) -> str:
        """Checks the upgrade headers (RFC 6455 4.2.1) and returns ``Sec-WebSocket-Key``."""
        headers = request.headers
        raw = self._raw_header
        _check_upgrade(headers, raw)
        version = _only(headers, "Sec-WebSocket-Version", raw)
        # 4.2.2: "If this version does not match a version understood by the server, the
        # server MUST abort the WebSocket handshake ... and instead send an appropriate
        # HTTP error code (such as 426 Upgrade Required)"
        if version != "13":
            raise UnsupportedVersionError(
                f"unsupported WebSocket version {version!r}, only 13 is supported",
                "Sec-WebSocket-Version",
                version,
                raw,
            )
        key = _only(headers, "Sec-WebSocket-Key", raw)
        if not _is_valid_key(key):
            raise WSInvalidHeaderError(
                "invalid Sec-WebSocket-Key header", "Sec-WebSocket-Key", key, raw
            )
        return key

    @staticmethod
    def upgrade_required_response(body: Optional[bytes] = None) -> WSUpgradeResponse:
        """The answer to :class:`UnsupportedVersionError`: :func:`upgrade_required_response`."""
        return upgrade_required_response(body)

    @staticmethod
    def build_101_response_bytes(key: str, response: WSUpgradeResponse) -> bytes:
        """The 101 answer to a request with ``key``, with the user's headers of ``response``."""
        if response.status != 101:
            raise ValueError("build_101_response_bytes needs a 101 response")
        ours = {"connection", "upgrade", "sec-websocket-accept"}
        fields = [("Connection", "upgrade"), ("Upgrade", "websocket")]
        fields += [(n, v) for n, v in response.headers.items() if n.lower() not in ours]
        # 4.2.2: "A |Sec-WebSocket-Accept| header field" with the hashed key.
        fields.append(("Sec-WebSocket-Accept", accept_key(key)))
        # RFC 9110 15.2: a 1xx response ends with its header block; a body is never sent.
        return _serialize(b"HTTP/1.1 101 Switching Protocols", fields, None)

    @staticmethod
    def error_response_bytes(response: WSUpgradeResponse) -> bytes:
        """Any non-101 response, with ``Connection: close`` forced (the connection ends)."""
        if response.status == 101:
            raise ValueError("error_response_bytes cannot send a 101 response")
        headers = response.headers
        # RFC 9110 7.8: "A sender of Upgrade MUST also send an "Upgrade" connection option".
        connection = "close, Upgrade" if "Upgrade" in headers else "close"
        fields = [("Connection", connection)]
        fields += [
            (n, v)
            for n, v in _with_body_fields(headers, response.body)
            if n.lower() != "connection"
        ]
        return _serialize(_status_line(b"HTTP/1.1", response.status), fields, response.body)
