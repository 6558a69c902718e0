"""Extension and subprotocol negotiation of the opening handshake (Sans-I/O).

RFC 6455 9.1: the client lists the extensions it offers, in order of preference,
each possibly several times with different parameters; the server accepts a subset,
one variant each, and says which with which parameters.  RFC 6455 4.1: the client
fails the connection if the server chose an extension or subprotocol it did not
offer, or parameters it cannot accept (RFC 7692 7.1).  Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from multidict import CIMultiDict

from ..compat import Response
from ..exceptions import InvalidHandshake, InvalidHeader, NegotiationError
from ..extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
    enable_client_permessage_deflate,
    enable_server_permessage_deflate,
)
from ..headers import build_extension, parse_extension, parse_subprotocol
from ..typing import Subprotocol

__all__ = [
    "client_extension_factories",
    "configure_permessage_deflate",
    "extensions_offer",
    "negotiate_extensions",
    "resolve_subprotocol",
    "select_server_subprotocol",
    "server_extension_factories",
]

_EXTENSIONS = "Sec-WebSocket-Extensions"
_PROTOCOL = "Sec-WebSocket-Protocol"


def _check_compression(compression: Optional[str]) -> None:
    if compression not in (None, "deflate"):
        raise ValueError(f"unsupported compression: {compression}")


def _check_factories(extensions: Optional[Sequence[Any]], kind: type) -> None:
    for factory in extensions or ():
        if not isinstance(factory, kind):
            raise NotImplementedError(
                f"picows.websockets supports only permessage-deflate: extensions must be "
                f"{kind.__name__} instances, got {type(factory).__name__}"
            )


def client_extension_factories(
    compression: Optional[str], extensions: Optional[Sequence[Any]]
) -> list[ClientPerMessageDeflateFactory]:
    """What the client offers: ``extensions``, plus the default deflate offer."""
    _check_compression(compression)
    _check_factories(extensions, ClientPerMessageDeflateFactory)
    if compression == "deflate":
        return enable_client_permessage_deflate(extensions)
    return list(extensions or [])


def server_extension_factories(
    compression: Optional[str], extensions: Optional[Sequence[Any]]
) -> list[ServerPerMessageDeflateFactory]:
    """What the server accepts: ``extensions``, plus the default deflate answer."""
    _check_compression(compression)
    _check_factories(extensions, ServerPerMessageDeflateFactory)
    if compression == "deflate":
        return enable_server_permessage_deflate(extensions)
    return list(extensions or [])


def extensions_offer(factories: Sequence[ClientPerMessageDeflateFactory]) -> Optional[str]:
    """The client's ``Sec-WebSocket-Extensions`` value, or None to offer nothing."""
    if not factories:
        return None
    return build_extension([(f.name, f.get_request_params()) for f in factories])


def _header_values(headers: CIMultiDict[Any], name: str) -> list[str]:
    values = headers.getall(name, [])
    for value in values:
        if not isinstance(value, str):
            raise InvalidHeader(name, repr(value))
    return values


def configure_permessage_deflate(
    response: Response,
    compression: Optional[str],
    extensions: Optional[Sequence[ClientPerMessageDeflateFactory]] = None,
) -> Optional[PerMessageDeflate]:
    """The compression a client gets from the server's ``response``, or None.

    Raises :class:`InvalidHandshake` (:class:`NegotiationError` for parameters,
    :class:`InvalidHeader` for syntax) when the answer cannot be accepted: the
    client must then fail the connection (RFC 7692 5, RFC 6455 4.1).
    """
    try:
        values = _header_values(response.headers, _EXTENSIONS)
    except InvalidHeader:
        raise InvalidHandshake("invalid Sec-WebSocket-Extensions header") from None
    if not values:
        return None
    factories = client_extension_factories(compression, extensions)
    if not factories:
        raise InvalidHandshake("unexpected websocket extensions negotiated by server")
    accepted: list[PerMessageDeflate] = []
    for value in values:
        for name, params in parse_extension(value):
            for factory in factories:
                if factory.name != name:
                    continue
                try:
                    accepted.append(factory.process_response_params(params, accepted))
                except NegotiationError:
                    continue
                break
            else:
                raise NegotiationError(f"unsupported extension: name = {name}, params = {params}")
    return accepted[0] if accepted else None


def negotiate_extensions(
    headers: CIMultiDict[str], factories: Sequence[ServerPerMessageDeflateFactory]
) -> tuple[Optional[str], Optional[PerMessageDeflate]]:
    """The server's answer to the client's offers: the response header value and
    the agreed compression, both None if nothing was accepted.

    An offer we cannot accept is declined (we try the client's next offer), never
    accepted with parameters we would then ignore.  A malformed header raises
    :class:`InvalidHeader` (the handshake fails with 400).
    """
    values = _header_values(headers, _EXTENSIONS)
    if not values or not factories:
        return None, None
    answers: list[tuple[str, list[tuple[str, Optional[str]]]]] = []
    accepted: list[PerMessageDeflate] = []
    for value in values:
        for name, params in parse_extension(value):
            for factory in factories:
                if factory.name != name:
                    continue
                try:
                    response_params, extension = factory.process_request_params(params, accepted)
                except NegotiationError:
                    continue
                answers.append((name, response_params))
                accepted.append(extension)
                break
    if not accepted:
        return None, None
    return build_extension(answers), accepted[0]


def resolve_subprotocol(
    subprotocols: Optional[Sequence[Subprotocol]], response: Response
) -> Optional[Subprotocol]:
    """The subprotocol the server chose; InvalidHandshake if we did not offer it."""
    values = response.headers.getall(_PROTOCOL, [])
    if not values:
        return None
    if not all(isinstance(value, str) for value in values):
        raise InvalidHandshake("server returned non-string subprotocol")
    chosen = [p for value in values for p in parse_subprotocol(value)]
    if len(chosen) != 1:
        raise InvalidHandshake(f"server chose several subprotocols: {', '.join(chosen)}")
    if subprotocols is None or chosen[0] not in subprotocols:
        raise InvalidHandshake(f"unsupported subprotocol negotiated by server: {chosen[0]}")
    return Subprotocol(chosen[0])


def select_server_subprotocol(
    offered: Sequence[str], available: Optional[Sequence[Subprotocol]]
) -> Optional[Subprotocol]:
    """websockets' default choice: the first of the server's subprotocols that the
    client offered; NegotiationError if the server has some and none matches."""
    if not available:
        return None
    if not offered:
        raise NegotiationError("missing subprotocol")
    for subprotocol in available:
        if subprotocol in offered:
            return subprotocol
    raise NegotiationError("invalid subprotocol; expected one of " + ", ".join(available))
