"""``ws_connect`` and ``ws_create_server``: the two entry points."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Optional, Union
from urllib.parse import urljoin

from ._connect import Connector, create_server, load_aiofastnet
from ._exceptions import WSHandshakeError, WSInvalidStatusError
from ._handshake import ClientHandshake
from ._http11 import WSUpgradeRequest, WSUpgradeResponse, header_pairs
from ._listener import WSListener
from ._protocol import ConnectionOptions, WSProtocol
from ._transport import WSTransport
from ._types import WSAutoPingStrategy, WSHeadersLike
from ._url import WSParsedURL, parse_url

__all__ = [
    "WSListenerFactory",
    "WSLoggerLike",
    "WSServerListenerFactory",
    "WSSocketFactory",
    "ws_connect",
    "ws_create_server",
]

WSListenerFactory = Union[
    Callable[[], WSListener], Callable[[WSUpgradeRequest, WSUpgradeResponse], WSListener]
]
WSServerListenerFactory = Callable[[WSUpgradeRequest], Any]
WSLoggerLike = Union[str, logging.Logger, "logging.LoggerAdapter[Any]", None]
WSSocketFactory = Callable[[WSParsedURL], Any]

# RFC 9110 15.4: the redirects a client may follow by repeating the request.
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# Credentials meant for one origin: a redirect to another origin does not get them
# (as browsers and HTTP clients do; RFC 9110 15.4 leaves it to the client).
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})

# Keywords that picows itself sets on loop.create_connection.
_RESERVED_CONNECT_KWARGS = ("ssl", "sock", "all_errors")

_DEFAULT_MAX_FRAME_SIZE = 10 * 1024 * 1024
_DEFAULT_READ_BUFFER_INIT_SIZE = 16 * 1024


def _resolve_logger(
    logger_name: WSLoggerLike, default_suffix: str, prefix: str = "picows."
) -> Union[logging.Logger, logging.LoggerAdapter[Any]]:
    """The logger named by ``logger_name``: ``<prefix><name>``, or given as an object."""
    if logger_name is None:
        return logging.getLogger(f"{prefix}{default_suffix}")
    if isinstance(logger_name, str):
        return logging.getLogger(f"{prefix}{logger_name}")
    if isinstance(logger_name, (logging.Logger, logging.LoggerAdapter)):
        return logger_name
    raise TypeError(
        "logger_name must be a str, Logger, LoggerAdapter or None, "
        f"not {type(logger_name).__name__}"
    )


async def ws_connect(
    ws_listener_factory: WSListenerFactory,
    url: str,
    *,
    ssl_context: Any = None,
    disconnect_on_exception: bool = True,
    websocket_handshake_timeout: Optional[float] = 5,
    logger_name: WSLoggerLike = None,
    enable_auto_ping: bool = False,
    auto_ping_idle_timeout: float = 10,
    auto_ping_reply_timeout: float = 10,
    auto_ping_strategy: WSAutoPingStrategy = WSAutoPingStrategy.PING_WHEN_IDLE,
    enable_auto_pong: bool = True,
    max_frame_size: int = _DEFAULT_MAX_FRAME_SIZE,
    extra_headers: Optional[WSHeadersLike] = None,
    max_redirects: int = 5,
    proxy: Optional[str] = None,
    proxy_ssl_context: Any = None,
    read_buffer_init_size: int = _DEFAULT_READ_BUFFER_INIT_SIZE,
    socket_factory: Optional[WSSocketFactory] = None,
    use_aiofastnet: Optional[bool] = None,
    **kwargs: Any,
) -> tuple[WSTransport, WSListener]:
    """Open a WebSocket connection to ``url``; returns ``(transport, listener)``.

    ``kwargs`` are passed to ``loop.create_connection``.  See the API reference for
    every parameter; the defaults are upstream picows' defaults.

    For ``wss://``, ``websocket_handshake_timeout`` also bounds the TLS handshake
    (as ``ssl_handshake_timeout``, unless given in ``kwargs``), and then the upgrade:
    once connected, ``ws_connect`` takes at most twice that long per hop.  A redirect
    to another origin (scheme, host or port) drops ``Authorization``, ``Cookie`` and
    ``Proxy-Authorization`` from ``extra_headers``.
    """
    for name in _RESERVED_CONNECT_KWARGS:
        if name in kwargs:
            raise TypeError(f"ws_connect sets {name!r} itself; it can't be passed in kwargs")
    kwargs.pop("zero_copy_unsafe_ssl_write", None)  # obsolete upstream option
    load_aiofastnet(use_aiofastnet)  # fails early when True and not installed
    connector = Connector(
        proxy=proxy,
        proxy_ssl_context=proxy_ssl_context,
        socket_factory=socket_factory,
        use_aiofastnet=use_aiofastnet,
        kwargs=kwargs,
        tls_handshake_timeout=_tls_bound(websocket_handshake_timeout),
    )
    logger = _resolve_logger(logger_name, "client")
    options = ConnectionOptions(
        logger=logger,
        disconnect_on_exception=disconnect_on_exception,
        websocket_handshake_timeout=websocket_handshake_timeout,
        enable_auto_ping=enable_auto_ping,
        auto_ping_idle_timeout=auto_ping_idle_timeout,
        auto_ping_reply_timeout=auto_ping_reply_timeout,
        auto_ping_strategy=auto_ping_strategy,
        enable_auto_pong=enable_auto_pong,
        max_frame_size=max_frame_size,
        read_buffer_init_size=read_buffer_init_size,
    )
    parsed = parse_url(url)
    # A list, so that every hop can send it again (an iterator could be read once).
    headers = None if extra_headers is None else header_pairs(extra_headers)
    redirects = 0
    while True:
        try:
            return await _connect_once(
                ws_listener_factory, parsed, options, ssl_context, headers, connector
            )
        except WSInvalidStatusError as exc:
            if redirects >= max_redirects:
                raise
            target = _maybe_handle_redirect(exc, parsed, max_redirects)
            redirects += 1
            assert exc.response is not None
            logger.info(
                "Following redirect %d/%d (%d): %s -> %s",
                redirects,
                max_redirects,
                int(exc.response.status),
                parsed.url,
                target.url,
            )
            if headers is not None and not _same_origin(parsed, target):
                headers = [(n, v) for n, v in headers if n.lower() not in _CREDENTIAL_HEADERS]
            parsed = target


def _tls_bound(websocket_handshake_timeout: Optional[float]) -> Optional[float]:
    """The ``ssl_handshake_timeout`` picows sets when the user did not: the TLS
    handshake gets the websocket handshake's bound too (asyncio's default is 60 s)."""
    if websocket_handshake_timeout is None or websocket_handshake_timeout <= 0:
        return None
    return float(websocket_handshake_timeout)


def _same_origin(a: WSParsedURL, b: WSParsedURL) -> bool:
    # RFC 6454 4: an origin is the scheme, the host and the port.
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def _maybe_handle_redirect(
    exc: WSHandshakeError, old_parsed_url: WSParsedURL, max_redirects: int
) -> WSParsedURL:
    """The URL to try next after ``exc``, or ``exc`` re-raised when it is no redirect.

    RFC 9110 15.4: 301, 302, 303, 307 and 308 are followed by repeating the request at
    ``Location``, resolved against the current URL.  A redirect from wss:// to ws://
    would send the request in clear: it is refused.
    """
    response = exc.response
    if max_redirects <= 0 or response is None or response.status not in _REDIRECT_STATUSES:
        raise exc
    location = response.headers.get("Location")
    if location is None:
        raise WSHandshakeError(
            f"received redirect {int(response.status)} without Location header",
            exc.raw_header,
            exc.raw_body,
            response,
        ) from exc
    target = parse_url(urljoin(old_parsed_url.url, location))
    if old_parsed_url.is_secure and not target.is_secure:
        raise WSHandshakeError(
            f"cannot follow redirect to non-secure URL {target.url}",
            exc.raw_header,
            exc.raw_body,
            response,
        ) from exc
    return target


async def _connect_once(
    ws_listener_factory: WSListenerFactory,
    url: WSParsedURL,
    options: ConnectionOptions,
    ssl_context: Any,
    extra_headers: Optional[WSHeadersLike],
    connector: Connector,
) -> tuple[WSTransport, WSListener]:
    loop = asyncio.get_running_loop()
    if url.username is not None or url.password is not None:
        options.logger.warning(
            "Credentials in %s are ignored: Basic auth to the server is not supported",
            url.url,
        )
    handshake = ClientHandshake(url, extra_headers)
    ssl: Any = None
    if url.is_secure:
        ssl = ssl_context if ssl_context is not None else True

    def protocol_factory() -> WSProtocol:
        return WSProtocol(
            options, client_handshake=handshake, client_listener_factory=ws_listener_factory
        )

    # Directly, over socket_factory's socket, or through the proxy (see _connect).
    transport, protocol = await connector.open(
        loop,
        protocol_factory,
        url,
        ssl,
        timeout=options.websocket_handshake_timeout,
        logger=options.logger,
    )
    assert isinstance(protocol, WSProtocol)
    try:
        # Bounded by websocket_handshake_timeout, from connection_made on.
        return await protocol.handshake_done
    except BaseException:
        transport.abort()
        raise


async def ws_create_server(
    ws_listener_factory: WSServerListenerFactory,
    host: Union[str, list[str], tuple[str, ...], None] = None,
    port: Optional[int] = None,
    *,
    disconnect_on_exception: bool = True,
    websocket_handshake_timeout: Optional[float] = 5,
    logger_name: WSLoggerLike = None,
    enable_auto_ping: bool = False,
    auto_ping_idle_timeout: float = 20,
    auto_ping_reply_timeout: float = 20,
    auto_ping_strategy: WSAutoPingStrategy = WSAutoPingStrategy.PING_WHEN_IDLE,
    enable_auto_pong: bool = True,
    max_frame_size: int = _DEFAULT_MAX_FRAME_SIZE,
    read_buffer_init_size: int = _DEFAULT_READ_BUFFER_INIT_SIZE,
    use_aiofastnet: Optional[bool] = None,
    **kwargs: Any,
) -> asyncio.Server:
    """Start a WebSocket server; ``ws_listener_factory`` routes each request.

    The factory returns a ``WSListener`` (101), a ``WSUpgradeResponseWithListener``
    (a custom response), or None (404); if it raises, the client gets a 500 whose
    body is the exception's text, as upstream sends it: a server facing the internet
    should catch its own exceptions in the factory and answer with what it chooses.
    ``kwargs`` are passed to ``loop.create_server``.

    With ``ssl``, ``websocket_handshake_timeout`` also bounds the TLS handshake (as
    ``ssl_handshake_timeout``, unless given), then the upgrade request: a client
    that never completes either is disconnected within twice that long.
    """
    load_aiofastnet(use_aiofastnet)  # fails early when True and not installed
    options = ConnectionOptions(
        logger=_resolve_logger(logger_name, "server"),
        disconnect_on_exception=disconnect_on_exception,
        websocket_handshake_timeout=websocket_handshake_timeout,
        enable_auto_ping=enable_auto_ping,
        auto_ping_idle_timeout=auto_ping_idle_timeout,
        auto_ping_reply_timeout=auto_ping_reply_timeout,
        auto_ping_strategy=auto_ping_strategy,
        enable_auto_pong=enable_auto_pong,
        max_frame_size=max_frame_size,
        read_buffer_init_size=read_buffer_init_size,
    )

    timeout = _tls_bound(websocket_handshake_timeout)
    if kwargs.get("ssl") and timeout is not None:
        kwargs.setdefault("ssl_handshake_timeout", timeout)

    def protocol_factory() -> WSProtocol:
        return WSProtocol(options, server_listener_factory=ws_listener_factory)

    loop = asyncio.get_running_loop()
    return await create_server(
        loop, protocol_factory, host or None, port, use_aiofastnet=use_aiofastnet, **kwargs
    )
