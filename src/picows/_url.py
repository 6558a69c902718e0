"""Parsing and validation of WebSocket URLs (and of proxy URLs).

Sans-I/O: this module does no networking and never imports asyncio.

:func:`parse_url` splits a URL with the generic syntax of RFC 3986 section 3 and
applies the WebSocket rules of RFC 6455 section 3: the scheme is ``ws`` or ``wss``,
the port defaults to 80 or 443, and a fragment is not allowed.  A non-ASCII URL
(an IRI) is converted to a URI as RFC 3987 section 3.1 describes: the host is
IDNA-encoded and the path, query and credentials are percent-encoded as UTF-8.

Every rejection is a :class:`~picows.WSInvalidURL`; nothing else escapes for a
``str`` argument.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass
from typing import Optional

from ._exceptions import WSInvalidURL
from ._types import WSHost, WSPort

__all__ = ["WSParsedURL", "parse_url"]

# RFC 6455 section 3: the default ports of ws and wss.  Proxy schemes use their
# usual ports (SOCKS is 1080, RFC 1928 section 3).
_WS_DEFAULT_PORTS = {"ws": 80, "wss": 443}
_DEFAULT_PORTS = {**_WS_DEFAULT_PORTS, "http": 80, "https": 443, "socks4": 1080, "socks5": 1080}
_SCHEME = re.compile(r"[a-z][a-z0-9+\-.]*")
_SECURE_SCHEMES = frozenset(("wss", "https"))

# Characters that a URL may never contain, even as an IRI: ASCII control
# characters, DEL, C1 controls and every Unicode whitespace character.
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f-\x9f\s]")
# A lone surrogate cannot be encoded as UTF-8, so it has no URI form.
_SURROGATES = re.compile(r"[\ud800-\udfff]")

# RFC 3986 section 2.2 and 2.3: the reserved (gen-delims, sub-delims) and
# unreserved characters.  They, and valid "%XX" escapes, are kept as they are.
_RESERVED = ":/?#[]@!$&'()*+,;="
_UNRESERVED_RE = r"A-Za-z0-9\-._~"
# Anything else (non-ASCII, or one of "<>\"{}|\\^`") and any "%" that does not
# start a valid escape needs percent-encoding.
_NEEDS_QUOTING = re.compile(
    r"[^" + _UNRESERVED_RE + re.escape(_RESERVED) + r"%]|%(?![0-9A-Fa-f]{2})"
)
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_QUOTE_SAFE = _RESERVED + "%"

# RFC 3986 section 3.2.2: reg-name = *( unreserved / pct-encoded / sub-delims ).
# Checked after percent-decoding and IDNA encoding, so "%" is not in the set.
_INVALID_REG_NAME = re.compile(r"[^" + _UNRESERVED_RE + re.escape("!$&'()*+,;=") + r"]")
# RFC 6874 section 2: a zone identifier in an IPv6 literal, "%25" + ZoneID.  We
# accept the unreserved characters (interface names and numbers).
_ZONE_ID = re.compile(r"[" + _UNRESERVED_RE + r"]+")
# UTS #46 / RFC 3490 section 3.1: full stops that separate IDNA labels.
_IDNA_DOTS = re.compile("[\u002e\u3002\uff0e\uff61]")


@dataclass(frozen=True)
class WSParsedURL:
    """A parsed and validated WebSocket (or proxy) URL.

    The fields are upstream picows' and in its order.  Two differences: ``netloc`` is
    what the Host header needs (never the credentials), and equal URLs compare equal.
    """

    #: Original URL that was used to construct this object.
    url: str
    #: Lower-cased scheme: ``ws`` or ``wss`` (or a proxy's scheme).
    scheme: str
    #: ``True`` for ``wss`` (and for an ``https`` proxy).
    is_secure: bool
    #: Value for the Host header: host (IPv6 in brackets) and any non-default port.
    netloc: str
    #: Lower-cased, IDNA-encoded host; an IPv6 literal has no brackets.
    host: WSHost
    #: Always set, even when the URL relies on the default port.
    port: WSPort
    #: Percent-encoded path; may be empty.
    path: str
    #: Percent-encoded query without the "?"; may be empty.
    query: str
    #: User name as written in the URL (percent-encoded, UTF-8 for an IRI), if any.
    username: Optional[str] = None
    #: Password as written in the URL (percent-encoded), when the user info has a ":".
    password: Optional[str] = None

    @property
    def resource_name(self) -> str:
        """The request target of the opening handshake (RFC 6455 section 3)."""
        resource_name = self.path or "/"
        if self.query:
            resource_name += "?" + self.query
        return resource_name

    @property
    def user_info(self) -> Optional[tuple[str, str]]:
        """``(username, password)`` when the URL carries both, else ``None``."""
        if self.username is None or self.password is None:
            return None
        return self.username, self.password


def parse_url(url: str, check_scheme: bool = True) -> WSParsedURL:
    """Parse and validate a WebSocket URL.

    ``check_scheme=False`` accepts other schemes too (proxy URLs: ``http``, ``https``,
    ``socks4``, ``socks5``, each with its usual default port).  Raises
    :class:`~picows.WSInvalidURL` when ``url`` is not valid, and ``TypeError`` when it
    is not a ``str``.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be str, not {type(url).__name__}")

    if _FORBIDDEN_CHARS.search(url) is not None:
        raise WSInvalidURL(url, "URL contains whitespace or control characters")
    if _SURROGATES.search(url) is not None:
        raise WSInvalidURL(url, "URL contains unpaired surrogates")

    # RFC 3986 section 3.1: scheme ":" hier-part; schemes are case-insensitive.
    colon = url.find(":")
    scheme = url[:colon].lower() if colon > 0 and url[:colon].isascii() else ""
    if check_scheme and scheme not in _WS_DEFAULT_PORTS:
        raise WSInvalidURL(url, "scheme isn't ws or wss")
    # RFC 3986 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
    if _SCHEME.fullmatch(scheme) is None:
        raise WSInvalidURL(url, "invalid scheme")
    rest = url[colon + 1 :]

    # RFC 3986 section 3.5: the fragment starts at the first "#".
    rest, hash_sign, _ = rest.partition("#")
    # RFC 3986 section 3.4: the query starts at the first "?".
    rest, _, query = rest.partition("?")

    # RFC 3986 section 3.2: the authority follows "//" and ends at the next "/".
    if rest.startswith("//"):
        slash = rest.find("/", 2)
        if slash < 0:
            slash = len(rest)
        authority, path = rest[2:slash], rest[slash:]
    else:
        authority, path = "", rest

    # RFC 3986 section 3.2.1: userinfo "@" host; the host holds no "@", so split
    # at the last one (a raw "@" in a password stays in the userinfo).
    userinfo: Optional[str]
    userinfo, at_sign, hostport = authority.rpartition("@")
    if not at_sign:
        userinfo = None

    raw_host, raw_port, host_error = _split_host_port(hostport)
    if not raw_host and host_error is None:
        raise WSInvalidURL(url, "hostname isn't provided")
    # RFC 6455 section 3: "Fragment identifiers are meaningless in the context
    # of WebSocket URIs and MUST NOT be used on these URIs."
    if hash_sign:
        raise WSInvalidURL(url, "fragment identifier is meaningless")

    default_port = _DEFAULT_PORTS.get(scheme, 80)
    port = _parse_port(url, raw_port, default_port)

    if host_error is not None:
        raise WSInvalidURL(url, host_error)
    if hostport.startswith("["):
        host, netloc_host = _parse_ip_literal(url, raw_host)
    else:
        host = _parse_reg_name(url, raw_host)
        netloc_host = host

    netloc = netloc_host if port == default_port else f"{netloc_host}:{port}"

    username: Optional[str] = None
    password: Optional[str] = None
    if userinfo is not None:
        # Kept in URI form, as upstream does; whoever sends them percent-decodes them.
        raw_username, colon_sign, raw_password = userinfo.partition(":")
        username = _to_uri_chars(raw_username)
        if colon_sign:
            password = _to_uri_chars(raw_password)

    return WSParsedURL(
        url=url,
        scheme=scheme,
        is_secure=scheme in _SECURE_SCHEMES,
        netloc=netloc,
        host=WSHost(host),
        port=WSPort(port),
        path=_to_uri_chars(path),
        query=_to_uri_chars(query),
        username=username,
        password=password,
    )


def _split_host_port(hostport: str) -> tuple[str, Optional[str], Optional[str]]:
    """Split ``host[:port]`` into (raw host, raw port or None, error or None).

    An IPv6 literal (RFC 3986 section 3.2.2) is returned without its brackets.
    """
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return hostport, None, "hostname is invalid"
        after = hostport[end + 1 :]
        if after and not after.startswith(":"):
            return hostport[1:end], None, "hostname is invalid"
        return hostport[1:end], (after[1:] if after else None), None
    host, colon, port = hostport.partition(":")
    return host, (port if colon else None), None


def _parse_port(url: str, raw_port: Optional[str], default_port: int) -> int:
    """RFC 3986 section 3.2.3: port = *DIGIT; an empty port means the default."""
    if not raw_port:
        return default_port
    if not (raw_port.isascii() and raw_port.isdigit()):
        raise WSInvalidURL(url, "port is invalid")
    # Strip leading zeros first so a huge digit string never reaches int().
    digits = raw_port.lstrip("0") or "0"
    if len(digits) > 5 or int(digits) > 65535:
        raise WSInvalidURL(url, "port is invalid")
    return int(digits)


def _parse_ip_literal(url: str, literal: str) -> tuple[str, str]:
    """Validate the inside of ``[...]``; return (host, host for the netloc).

    RFC 3986 section 3.2.2 and RFC 6874: ``IPv6address [ "%25" ZoneID ]``.  The
    host keeps the zone as ``%zone`` (what getaddrinfo expects); the netloc keeps
    the URI form ``[addr%25zone]``.  IPvFuture literals are not supported.
    """
    address, percent, zone = literal.partition("%25")
    # ipaddress would accept a bare "%zone"; the URI form needs "%25".
    if "%" in address or (percent and _ZONE_ID.fullmatch(zone) is None):
        raise WSInvalidURL(url, "hostname is invalid")
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        raise WSInvalidURL(url, "hostname is invalid") from None
    address = address.lower()
    if percent:
        return f"{address}%{zone}", f"[{address}%25{zone}]"
    return address, f"[{address}]"


def _parse_reg_name(url: str, raw_host: str) -> str:
    """Normalize a registered name (or IPv4 address) to its lower-case ASCII form."""
    host = raw_host
    if "%" in host:
        # RFC 3986 section 3.2.2: percent-encoded octets in a reg-name are UTF-8.
        try:
            host = urllib.parse.unquote(host, errors="strict")
        except UnicodeDecodeError:
            raise WSInvalidURL(url, "hostname is invalid") from None
        if not host:
            raise WSInvalidURL(url, "hostname isn't provided")
    host = host.lower()
    if not host.isascii():
        host = _idna_encode(url, host)
    if _INVALID_REG_NAME.search(host) is not None:
        raise WSInvalidURL(url, "hostname is invalid")
    return host


def _idna_encode(url: str, host: str) -> str:
    """RFC 3987 section 3.1 step 2 and RFC 3490 section 4: ToASCII, label by label.

    Like the whole-name "idna" codec, an empty label is an error except for the
    trailing one of a fully qualified name ("bücher.example.").
    """
    labels = _IDNA_DOTS.split(host)
    trailing_dot = len(labels) > 1 and not labels[-1]
    if trailing_dot:
        labels.pop()
    if not all(labels):
        raise WSInvalidURL(url, "hostname can't be IDNA-encoded")
    try:
        encoded = [label.encode("idna").decode("ascii") for label in labels]
    except UnicodeError:
        raise WSInvalidURL(url, "hostname can't be IDNA-encoded") from None
    return ".".join(encoded) + ("." if trailing_dot else "")


def _to_uri_chars(component: str) -> str:
    """Percent-encode what a URI may not contain, keeping reserved characters.

    RFC 3987 section 3.1 step 2: non-ASCII characters become their UTF-8 octets
    as "%XX"; the printable ASCII characters URIs forbid ('"', "<", ">", "\\",
    "^", "`", "{", "|", "}") are encoded too, as the same section allows, and so
    is a "%" that does not start a valid escape.  Valid escapes are kept.
    """
    if _NEEDS_QUOTING.search(component) is None:
        return component
    return urllib.parse.quote(_STRAY_PERCENT.sub("%25", component), safe=_QUOTE_SAFE)
