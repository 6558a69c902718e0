"""The opening handshake, RFC 6455 section 4, over HTTP/1.1 (RFC 9110 and RFC 9112).

Both sides are Sans-I/O: :class:`ClientHandshake` builds the upgrade request and checks
the response, :class:`ServerHandshake` parses the request and serialises the answer.
Each is fed bytes as they arrive and never touches a socket; nothing here imports
asyncio.  The wire format both read (RFC 9112 2.1)::

    HTTP-message = start-line CRLF *( field-line CRLF ) CRLF [ message-body ]

One reader (:class:`_HeaderBlockReader`) collects the bytes up to the empty line, and one
parser (:func:`_parse_fields`) checks the field lines, so both sides share the same
limits (``MAX_HEADER_BLOCK``, ``MAX_HEADERS``) and the same strict syntax.  A failure
is final: later calls raise the same exception again.  The error messages use upstream
picows' wording, so that code matching on them keeps working.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
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
from ._http11 import (
    BAD_VALUE,
    MAX_HEADER_BLOCK,
    MAX_HEADERS,
    TARGET,
    TOKEN,
    WSUpgradeRequest,
    WSUpgradeResponse,
    coerce_status,
    header_pairs,
    is_zero,
    joined,
    serialize,
    status_line,
    tokens,
    with_body_fields,
)
from ._types import WSHeadersLike

__all__ = [
    "ClientHandshake",
    "RequestTooLargeError",
    "ServerHandshake",
    "UnsupportedVersionError",
    "accept_key",
    "check_101",
    "parse_request",
    "parse_response_head",
    "upgrade_required_response",
    "validate_upgrade_request",
]

# Most body bytes kept from a non-101 response (enough for any redirect or error page).
_MAX_ERROR_BODY = 1024 * 1024

# RFC 6455 1.3: the key is "concatenated with the string
# "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" in string form".
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
# (the final SP is optional here: "HTTP/1.1 101" alone is accepted).
_STATUS_LINE = re.compile(rb"(HTTP/1\.1) ([1-9][0-9]{2})(?: ([\t\x20-\x7e\x80-\xff]*))?", re.I)
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
        """``(head, rest)`` once the empty line has arrived, else None.

        ``head`` is the start line and the field lines, without the final CRLF CRLF
        (what upstream reports as ``raw_header``); ``rest`` is what followed.
        """
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
        head = bytes(buffer[:end])
        if end + 4 > MAX_HEADER_BLOCK:
            raise self._too_large(
                f"upgrade header block exceeds max_size={MAX_HEADER_BLOCK} bytes", head
            )
        rest = bytes(buffer[end + 4 :])
        self.clear()
        return head, rest

    def clear(self) -> None:
        self.buffer = bytearray()
        self._scanned = 0


# How each side words a malformed field line (upstream picows' messages).
_REQUEST_ERRORS = "Malformed header in HTTP request"
_RESPONSE_ERRORS = "cannot upgrade, malformed header in upgrade response"


def _parse_fields(
    lines: list[bytes], malformed: str, too_large: type[WSInvalidMessageError], *context: Any
) -> CIMultiDict[str]:
    """Parses the field lines of a header block into a multidict.

    ``malformed`` starts the message for a line that is not ``name: value``;
    ``context`` is the ``raw_header, raw_body, response`` of the error.
    """
    if len(lines) > MAX_HEADERS:
        raise too_large(f"header block contains more than {MAX_HEADERS} headers", *context)
    prefix = "cannot upgrade, " if malformed is _RESPONSE_ERRORS else ""
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            # RFC 9112 5.2: obs-fold is deprecated; we reject it on both sides.
            raise WSInvalidMessageError(
                f"{prefix}Obsolete folded HTTP header is not supported: {line[:100]!r}", *context
            )
        # RFC 9112 5.1: field-line = field-name ":" OWS field-value OWS
        name, colon, value = line.partition(b":")
        if not colon:
            raise WSInvalidMessageError(f"{malformed}: {line[:100]!r}", *context)
        # RFC 9112 5.1: "No whitespace is allowed between the field name and colon."
        if TOKEN.fullmatch(name) is None:
            raise WSInvalidMessageError(
                f"{prefix}Invalid HTTP header name: {name[:100]!r}", *context
            )
        value = value.strip(b" \t")
        if BAD_VALUE.search(value) is not None:
            raise WSInvalidMessageError(
                f"{prefix}Invalid HTTP header value for {name[:100]!r}: {value[:100]!r}",
                *context,
            )
        headers.add(name.decode("ascii"), value.decode("ascii", "surrogateescape"))
    return headers


def _check_upgrade(headers: CIMultiDict[str], side: str, *context: Any) -> None:
    """Both sides: Upgrade lists "websocket" and Connection lists "upgrade", as tokens.

    ``side`` is "request" or "response" (the wording differs, as upstream's does);
    ``context`` is the ``raw_header, raw_body, response`` of the error.
    """
    # 4.2.1: "An |Upgrade| header field containing the value "websocket", treated as an
    # ASCII case-insensitive value."  "A |Connection| header field that includes the token
    # "Upgrade", treated as an ASCII case-insensitive value." (so "keep-alive, Upgrade")
    for name, token in (("Upgrade", "websocket"), ("Connection", "upgrade")):
        if token not in tokens(headers, name):
            value = joined(headers, name)
            if side == "response":
                message = f"cannot upgrade, invalid {name.lower()} header"
            elif name == "Upgrade":
                message = "No WebSocket UPGRADE header. Can 'Upgrade' only to 'websocket'"
            elif value is None:
                message = "No CONNECTION upgrade header"
            else:
                message = "CONNECTION header value is not 'upgrade'"
            raise WSInvalidUpgradeError(message, name, value, *context)


def _only(headers: CIMultiDict[str], name: str, *context: Any) -> str:
    """The value of a header that must appear exactly once."""
    values = headers.getall(name, [])
    if len(values) != 1:
        problem = "missing" if not values else "duplicate"
        raise WSInvalidHeaderError(
            f"{problem} {name} header", name, joined(headers, name), *context
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


def parse_request(head: bytes, rest: bytes = b"") -> WSUpgradeRequest:
    """The upgrade request in ``head`` (its header block without the final empty line).

    Checks the request line and the fields (RFC 9112 3 and 5) and that no body is
    announced; the upgrade headers are checked later, by
    :meth:`ServerHandshake.validate_upgrade`, once the router wants a 101.
    """
    start, *lines = head.split(b"\r\n")
    # RFC 9112 3: request-line = method SP request-target SP HTTP-version
    parts = start.split(b" ")
    if len(parts) != 3:
        raise WSInvalidMessageError(f"Malformed request line: {start[:100]!r}", head, rest)
    method, target, version = parts
    # RFC 6455 4.1: "The method of the request MUST be GET, and the HTTP version MUST
    # be at least 1.1."  (We speak exactly HTTP/1.1.)
    if method != b"GET":
        raise WSInvalidMessageError(f"Unsupported HTTP method: {method[:20]!r}", head, rest)
    if not target:
        raise WSInvalidMessageError("HTTP request target cannot be empty", head, rest)
    if version != b"HTTP/1.1":
        raise WSInvalidMessageError(f"Unsupported HTTP version: {version[:20]!r}", head, rest)
    if TARGET.fullmatch(target) is None:
        raise WSInvalidMessageError(f"Invalid HTTP request target: {target[:100]!r}", head, rest)
    headers = _parse_fields(lines, _REQUEST_ERRORS, RequestTooLargeError, head, rest)
    # An upgrade request has no body (RFC 9112 6.3): refuse any framing of one.
    if "Transfer-Encoding" in headers:
        raise WSInvalidMessageError(
            "Transfer-Encoding is not supported in HTTP requests", head, rest
        )
    lengths = headers.getall("Content-Length", [])
    if len(lengths) > 1:
        raise WSInvalidMessageError("Multiple Content-Length headers are not supported", head, rest)
    if lengths and not is_zero(lengths[0]):
        raise WSInvalidMessageError(
            f"HTTP request body is not supported: Content-Length is {lengths[0]!r}", head, rest
        )
    return WSUpgradeRequest(method, target, version, headers)


def _check_host(headers: CIMultiDict[str], *context: Any) -> None:
    """Exactly one Host header, as every HTTP/1.1 request must carry.

    Checked by the server on what it receives, not by :func:`parse_request` (upstream's
    ``_parse_http_request`` accepts requests without one).
    """
    # RFC 9112 3.2: "A server MUST respond with a 400 (Bad Request) status code to any
    # HTTP/1.1 request message that lacks a Host header field and to any request message
    # that contains more than one Host header field line" (RFC 7230 5.4 before it).
    count = len(headers.getall("Host", []))
    if count == 0:
        raise WSInvalidMessageError("No Host header in HTTP request", *context)
    if count > 1:
        raise WSInvalidMessageError("Multiple Host headers are not supported", *context)


def parse_response_head(head: bytes, rest: bytes = b"") -> tuple[WSUpgradeResponse, bytes]:
    """The response in ``head`` (its header block without the final empty line), and
    its reason phrase.  Checks the status line and the fields (RFC 9112 4 and 5) only.
    """
    start, *lines = head.split(b"\r\n")
    if start[:9].lower() != b"http/1.1 ":
        raise WSInvalidMessageError(
            "cannot upgrade, unknown protocol (expected HTTP/1.1) in upgrade response: "
            f"{start[:100]!r}",
            head,
            rest,
        )
    match = _STATUS_LINE.fullmatch(start)
    if match is None:
        raise WSInvalidMessageError(
            f"cannot upgrade, invalid HTTP status line in upgrade response: {start[:100]!r}",
            head,
            rest,
        )
    version, code, reason = match.groups(b"")
    response = WSUpgradeResponse(version, coerce_status(int(code)))
    response.headers = _parse_fields(
        lines, _RESPONSE_ERRORS, WSInvalidMessageError, head, rest, response
    )
    return response, reason


def validate_upgrade_request(request: WSUpgradeRequest, raw_header: Optional[bytes] = None) -> str:
    """Checks the upgrade headers of ``request`` (RFC 6455 4.2.1); its key, when valid.

    Raises :class:`UnsupportedVersionError` (to be answered with 426) for a version
    other than 13, and another :class:`~picows.WSHandshakeError` for anything else.
    """
    headers = request.headers
    _check_upgrade(headers, "request", raw_header)
    versions = headers.getall("Sec-WebSocket-Version", [])
    version = joined(headers, "Sec-WebSocket-Version")
    if len(versions) != 1:
        raise WSInvalidHeaderError(
            f"Upgrade requested to unsupported websocket version: {version} "
            "(exactly one Sec-WebSocket-Version header is required)",
            "Sec-WebSocket-Version",
            version,
            raw_header,
        )
    # 4.2.2: "If this version does not match a version understood by the server, the
    # server MUST abort the WebSocket handshake ... and instead send an appropriate
    # HTTP error code (such as 426 Upgrade Required)"
    if version != "13":
        raise UnsupportedVersionError(
            f"Upgrade requested to unsupported websocket version: {version} "
            "(Sec-WebSocket-Version must be 13)",
            "Sec-WebSocket-Version",
            version,
            raw_header,
        )
    key = joined(headers, "Sec-WebSocket-Key")
    if key is None or not _is_valid_key(key):
        raise WSInvalidHeaderError(
            f"Handshake error, invalid key: {key!r} (Sec-WebSocket-Key must be one base64 "
            "value of 16 bytes)",
            "Sec-WebSocket-Key",
            key,
            raw_header,
        )
    return key


def check_101(
    response: WSUpgradeResponse,
    key: bytes,
    requested: CIMultiDict[str],
    head: bytes,
    rest: bytes = b"",
) -> None:
    """The WebSocket rules for a 101 ``response`` to a request with ``key`` and the
    headers ``requested`` (RFC 6455 4.1); raises a WSHandshakeError on failure.
    """
    headers = response.headers
    context = (head, rest, response)
    # RFC 9112 6.1: "A server MUST NOT send a Transfer-Encoding header field in any
    # response with a status code of 1xx"
    if "Transfer-Encoding" in headers:
        raise WSInvalidHeaderError(
            "101 response cannot have Transfer-Encoding but it has",
            "Transfer-Encoding",
            joined(headers, "Transfer-Encoding"),
            *context,
        )
    # RFC 9110 8.6: "A server MUST NOT send a Content-Length header field in any
    # response with a status code of 1xx"; we tolerate "0".
    for length in headers.getall("Content-Length", []):
        if not is_zero(length):
            problem = "non-zero" if length.isascii() and length.isdigit() else "invalid"
            raise WSInvalidHeaderError(
                f"101 response has {problem} Content-Length header, but it can't have body",
                "Content-Length",
                length,
                *context,
            )
    _check_upgrade(headers, "response", *context)
    # 4.1: "If the |Sec-WebSocket-Accept| contains a value other than the base64-encoded
    # SHA-1 of the concatenation of the |Sec-WebSocket-Key| ... the client MUST _Fail_"
    accept = joined(headers, "Sec-WebSocket-Accept")
    if accept != accept_key(key):
        raise WSInvalidHeaderError(
            "cannot upgrade, invalid sec-websocket-accept response",
            "Sec-WebSocket-Accept",
            accept,
            *context,
        )
    # 4.1: "If the response includes a |Sec-WebSocket-Extensions| header field and this
    # header field indicates the use of an extension that was not present in the
    # client's handshake ... the client MUST _Fail the WebSocket Connection_."
    if _EXTENSIONS in headers:
        offered = {e.partition(";")[0].strip(" \t") for e in tokens(requested, _EXTENSIONS)}
        chosen = {e.partition(";")[0].strip(" \t") for e in tokens(headers, _EXTENSIONS)}
        if _EXTENSIONS not in requested or not chosen <= offered:
            value = joined(headers, _EXTENSIONS)
            raise WSInvalidHeaderError("unrequested extension", _EXTENSIONS, value, *context)
    # 4.1: the same for "a subprotocol that was not present in the client's handshake".
    if _PROTOCOL in headers:
        chosen_protocol = _only(headers, _PROTOCOL, *context)
        offered = {t.strip(" \t") for v in requested.getall(_PROTOCOL, []) for t in v.split(",")}
        if chosen_protocol not in offered - {""}:
            raise WSInvalidHeaderError(
                "unrequested subprotocol", _PROTOCOL, chosen_protocol, *context
            )


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
        for name, value in header_pairs(extra_headers):
            if name.lower() == "host":
                fields[0] = (name, value)  # replaces the generated Host, in place
            else:
                fields.append((name, value))
        path = url.resource_name.encode("utf-8")
        if TARGET.fullmatch(path) is None:
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
        return serialize(start, request.headers.items(), None)

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
        head, rest = parts
        self._raw_header = head
        response, reason = parse_response_head(head, rest)
        self.response = response
        if response.status != 101:
            # Keep the body (up to its Content-Length), so that redirects can be followed
            # and the error reported with what the server said.
            self._reason = reason.decode("ascii", "backslashreplace")
            wanted = self._error_body_length(response.headers)
            # Without a usable Content-Length, the body is what came with the header block.
            self._body = bytearray(rest[: _MAX_ERROR_BODY if wanted is None else wanted])
            self._body_wanted = len(self._body) if wanted is None else wanted
            self._state = _READ_ERROR_BODY
            self._receive_error_body(b"")
            return None
        check_101(response, self.key, self.request.headers, head, rest)
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
            head, rest = parts
            self._raw_header = head
            request = parse_request(head, rest)
            _check_host(request.headers, head, rest)
            self.request = request
        except WSHandshakeError as exc:
            self._error = exc
            self._reader.clear()
            raise
        self.leftover = rest
        return self.request

    def validate_upgrade(self, request: WSUpgradeRequest) -> str:
        """Checks the upgrade headers (RFC 6455 4.2.1) and returns ``Sec-WebSocket-Key``."""
        return validate_upgrade_request(request, self._raw_header)

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
        return serialize(b"HTTP/1.1 101 Switching Protocols", fields, None)

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
            (n, v) for n, v in with_body_fields(headers, response.body) if n.lower() != "connection"
        ]
        return serialize(status_line(b"HTTP/1.1", response.status), fields, response.body)
