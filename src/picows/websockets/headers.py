"""Parsing and building the handshake headers of RFC 6455 section 9 (Sans-I/O).

``Sec-WebSocket-Extensions`` (9.1)::

    extension-list = 1#extension
    extension = extension-token *( ";" extension-param )
    extension-token = registered-token
    registered-token = token
    extension-param = token [ "=" (token | quoted-string) ]
        ; When using the quoted-string syntax variant, the value
        ; after quoted-string unescaping MUST conform to the
        ; 'token' ABNF.

``Sec-WebSocket-Protocol`` (4.1) is a comma-separated list of tokens.  The ``1#``
list rule (RFC 9110 5.6.1) allows empty elements and optional whitespace (OWS)
around the commas.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Optional

from .exceptions import InvalidHeaderFormat

__all__ = [
    "ExtensionHeader",
    "build_extension",
    "build_subprotocol",
    "parse_extension",
    "parse_subprotocol",
]

#: One extension of the list: its name and its (name, value or None) parameters.
ExtensionHeader = tuple[str, list[tuple[str, Optional[str]]]]

# RFC 9110 5.6.2: token = 1*tchar
_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
# RFC 9110 5.6.4: quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
_QUOTED = re.compile(r'"((?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*)"')
_UNESCAPE = re.compile(r"\\(.)")
_OWS = re.compile(r"[ \t]*")


def _skip_ows(header: str, pos: int) -> int:
    match = _OWS.match(header, pos)
    assert match is not None  # [ \t]* always matches
    return match.end()


def _token(header: str, pos: int, name: str) -> tuple[str, int]:
    match = _TOKEN.match(header, pos)
    if match is None:
        raise InvalidHeaderFormat(name, "expected token", header, pos)
    return match.group(), match.end()


def _param_value(header: str, pos: int, name: str) -> tuple[str, int]:
    if header.startswith('"', pos):
        match = _QUOTED.match(header, pos)
        if match is None:
            raise InvalidHeaderFormat(name, "expected quoted string", header, pos)
        value = _UNESCAPE.sub(r"\1", match.group(1))
        if _TOKEN.fullmatch(value) is None:  # 9.1: unquoted, it must be a token
            raise InvalidHeaderFormat(name, "invalid quoted value", header, pos)
        return value, match.end()
    return _token(header, pos, name)


def _list_items(header: str, name: str) -> list[tuple[int, int]]:
    """The (start, end) of each non-empty element of a ``1#`` list."""
    # Commas inside quoted strings do not separate elements.
    spans: list[tuple[int, int]] = []
    start = pos = 0
    while pos < len(header):
        char = header[pos]
        if char == '"':
            match = _QUOTED.match(header, pos)
            if match is None:
                raise InvalidHeaderFormat(name, "unterminated quoted string", header, pos)
            pos = match.end()
            continue
        if char == ",":
            spans.append((start, pos))
            start = pos + 1
        pos += 1
    spans.append((start, len(header)))
    items = [(s, e) for s, e in spans if header[s:e].strip(" \t")]
    if not items:
        raise InvalidHeaderFormat(name, "expected at least one element", header, 0)
    return items


def parse_extension(header: str) -> list[ExtensionHeader]:
    """Parse one ``Sec-WebSocket-Extensions`` value; InvalidHeaderFormat if malformed."""
    name = "Sec-WebSocket-Extensions"
    extensions: list[ExtensionHeader] = []
    for start, end in _list_items(header, name):
        pos = _skip_ows(header, start)
        extension, pos = _token(header, pos, name)
        params: list[tuple[str, Optional[str]]] = []
        pos = _skip_ows(header, pos)
        while pos < end and header[pos] == ";":
            pos = _skip_ows(header, pos + 1)
            param, pos = _token(header, pos, name)
            pos = _skip_ows(header, pos)
            value: Optional[str] = None
            if pos < end and header[pos] == "=":
                value, pos = _param_value(header, _skip_ows(header, pos + 1), name)
                pos = _skip_ows(header, pos)
            params.append((param, value))
        if pos != end:
            raise InvalidHeaderFormat(name, "expected ';' or ','", header, pos)
        extensions.append((extension, params))
    return extensions


def build_extension(extensions: Sequence[ExtensionHeader]) -> str:
    """The ``Sec-WebSocket-Extensions`` value for ``extensions``."""
    return ", ".join(
        "; ".join([name] + [p if v is None else f"{p}={v}" for p, v in params])
        for name, params in extensions
    )


def parse_subprotocol(header: str) -> list[str]:
    """Parse one ``Sec-WebSocket-Protocol`` value into its tokens."""
    name = "Sec-WebSocket-Protocol"
    protocols = []
    for start, end in _list_items(header, name):
        element = header[start:end].strip(" \t")
        if _TOKEN.fullmatch(element) is None:
            raise InvalidHeaderFormat(name, "expected token", header, start)
        protocols.append(element)
    return protocols


def build_subprotocol(subprotocols: Sequence[str]) -> str:
    return ", ".join(subprotocols)
