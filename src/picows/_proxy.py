"""HTTP CONNECT tunnels through a proxy (RFC 9110 section 9.3.6), without I/O.

Sans-I/O, like ``_http``: this module builds the CONNECT request and reads the proxy's
answer from the bytes it is fed; it never touches a socket and never imports asyncio.
The exchange is short::

    client: CONNECT server.example:443 HTTP/1.1 CRLF
            Host: server.example:443 CRLF
            [Proxy-Authorization: Basic dXNlcjpwYXNz CRLF]
            CRLF
    proxy:  HTTP/1.1 200 Connection established CRLF
            *( field-line CRLF )
            CRLF
            ... from here on, the bytes are the server's ...

Any 2xx status opens the tunnel; anything else is a refusal (407 asks for credentials).
Unlike ``_http`` (which checks a WebSocket server strictly), this reader is lenient with
what proxies are known to send: ``HTTP/1.0`` status lines (tinyproxy), interim 1xx
responses, header lines it cannot parse (it only needs the status), and bare LF line
endings.  Its only limits are the size of the answer (:data:`MAX_CONNECT_RESPONSE`) and
a status line that must look like HTTP from the first bytes on, so a peer that is not an
HTTP proxy fails at once instead of at the timeout.

The SOCKS protocols (RFC 1928 and RFC 1929) are python-socks' job, not this module's.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Optional

from multidict import CIMultiDict

from ._exceptions import WSProxyError
from ._url import WSParsedURL

__all__ = [
    "MAX_CONNECT_RESPONSE",
    "ConnectResponse",
    "ConnectResponseReader",
    "authority",
    "basic_credentials",
    "build_connect_request",
    "proxy_display_url",
]

#: Largest answer to CONNECT accepted: status line, header fields and the empty line.
MAX_CONNECT_RESPONSE = 64 * 1024

# RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ].  HTTP/1.0
# is accepted (tinyproxy answers with it); the SP before an empty reason is optional.
_STATUS_LINE = re.compile(rb"HTTP/(1\.[01]) ([0-9]{3})(?: ([^\r\n]*))?")
# RFC 9112 2.2: "a recipient MAY recognize a single LF as a line terminator".
_END_OF_HEADER = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")
_PREFIX = b"HTTP/1."
_INVALID = "HTTP proxy returned an invalid response"
_TOO_LARGE = f"HTTP proxy response headers are too large (over {MAX_CONNECT_RESPONSE} bytes)"


def authority(host: str, port: int) -> str:
    """``host:port`` in authority form; an IPv6 literal goes in brackets (RFC 3986 3.2.2).

    ``host`` is a :attr:`WSParsedURL.host`: lower-case ASCII, an IPv6 literal without
    brackets, its zone (if any) after a bare "%", which the URI form writes "%25".
    """
    if ":" in host:
        return f"[{host.replace('%', '%25')}]:{port}"
    return f"{host}:{port}"


def basic_credentials(username: str, password: str) -> str:
    """The ``Proxy-Authorization`` value for the Basic scheme (RFC 7617 section 2).

    RFC 7617 2: the credentials are ``base64(user-id ":" password)``, and "a user-id
    containing a colon character is invalid".  2.1: the charset is UTF-8.
    """
    if ":" in username:
        raise ValueError("a proxy user name containing ':' can't be sent with Basic auth")
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def build_connect_request(
    host: str, port: int, user_info: Optional[tuple[str, str]] = None
) -> bytes:
    """The CONNECT request for ``host:port``, with Basic credentials when given."""
    # RFC 9110 9.3.6: "A client sending a CONNECT request MUST send the authority form of
    # request-target"; RFC 9112 3.2: "A client MUST send a Host header field in all
    # HTTP/1.1 request messages" (for CONNECT, the same authority).
    target = authority(host, port)
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if user_info is not None:
        # RFC 9110 11.7.2: Proxy-Authorization carries the credentials for the proxy.
        lines.append(f"Proxy-Authorization: {basic_credentials(*user_info)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def proxy_display_url(proxy: WSParsedURL) -> str:
    """``scheme://[user@]host:port``: the proxy URL safe to log (no password, no path)."""
    user = ""
    if proxy.username is not None:
        user = proxy.username + "@"  # already in URI form
    return f"{proxy.scheme}://{user}{authority(proxy.host, proxy.port)}"


@dataclass(frozen=True)
class ConnectResponse:
    """The proxy's final answer to CONNECT."""

    #: ``b"HTTP/1.1"`` or ``b"HTTP/1.0"``.
    version: bytes
    status: int
    reason: str
    #: The fields that could be parsed (lenient: malformed lines are skipped).
    headers: CIMultiDict[str]
    #: The raw header block, for logs.
    raw: bytes

    @property
    def is_success(self) -> bool:
        # RFC 9110 9.3.6: "Any 2xx (Successful) response indicates that the sender (and
        # all inbound proxies) will switch to tunnel mode".
        return 200 <= self.status <= 299


class ConnectResponseReader:
    """Reads the proxy's answer to CONNECT from the bytes it is fed.

    :meth:`feed` returns None until the final (non-1xx) response is complete, then
    ``(response, leftover)``: the bytes after the header block already belong to the
    tunnel.  It raises :class:`~picows.WSProxyError` (naming ``proxy``) when the answer
    is not HTTP or is too large, and :meth:`feed_eof` when the proxy closed first.
    """

    def __init__(self, proxy: str) -> None:
        self._proxy = proxy
        self._buffer = bytearray()
        self._scanned = 0
        self._failure: Optional[WSProxyError] = None

    def feed(self, data: bytes) -> Optional[tuple[ConnectResponse, bytes]]:
        if self._failure is not None:  # a failure is final
            raise self._failure
        self._buffer += data
        while True:
            buffer = self._buffer
            match = _END_OF_HEADER.search(buffer, max(0, self._scanned - 3))
            end = len(buffer) if match is None else match.end()
            if end > MAX_CONNECT_RESPONSE:
                raise self._error(_TOO_LARGE)
            # Fail fast on a peer that does not speak HTTP (a SOCKS server, garbage).
            if not _PREFIX.startswith(bytes(buffer[: len(_PREFIX)])):
                raise self._error(f"{_INVALID}: {bytes(buffer[:100])!r}")
            if match is None:
                self._scanned = len(buffer)
                return None
            block = bytes(buffer[:end])
            del buffer[:end]
            self._scanned = 0
            response = self._parse(block)
            # RFC 9110 15.2: "A client MUST be able to parse one or more 1xx responses
            # received prior to a final response, even if the client does not expect
            # one."  (101 would switch protocols: not an answer to CONNECT; it fails.)
            if 100 <= response.status <= 199 and response.status != 101:
                continue
            leftover = bytes(buffer)
            self._buffer = bytearray()
            return response, leftover

    def feed_eof(self) -> None:
        """The proxy closed the connection before its answer was complete."""
        if self._failure is not None:
            raise self._failure
        received = f": {bytes(self._buffer[:100])!r}" if self._buffer else ""
        raise self._error(f"HTTP proxy closed the connection before replying{received}")

    def _parse(self, block: bytes) -> ConnectResponse:
        lines = _LINE_END.split(block.rstrip(b"\r\n"))
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise self._error(f"{_INVALID}: {lines[0][:100]!r}")
        version, code, reason = match.groups(b"")
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if colon and name and name == name.strip():
                headers.add(
                    name.decode("ascii", "replace"),
                    value.strip(b" \t").decode("ascii", "surrogateescape"),
                )
        return ConnectResponse(
            version=b"HTTP/" + version,
            status=int(code),
            reason=reason.decode("ascii", "backslashreplace"),
            headers=headers,
            raw=block,
        )

    def refused(self, response: ConnectResponse) -> WSProxyError:
        """The error for a final answer that is not 2xx (407 asks for credentials)."""
        reason = f"{response.status} {response.reason}".rstrip()
        return self._error(f"HTTP proxy rejected connection with status {reason}", response.status)

    def _error(self, message: str, status: Optional[int] = None) -> WSProxyError:
        self._buffer = bytearray()
        self._failure = WSProxyError(self._proxy, message, status)
        return self._failure
