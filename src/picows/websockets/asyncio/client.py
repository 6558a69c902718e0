"""``connect``: websockets' client entry point, on :func:`picows.ws_connect`.

``await connect(uri)``, ``async with connect(uri) as ws`` and the reconnecting
``async for ws in connect(uri)`` behave as in websockets.  The core opens the TCP
(or TLS, or proxied) connection and runs the opening handshake; this module builds
the request headers, negotiates the subprotocol and permessage-deflate from the
response, and translates the core's errors into websockets' exceptions.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import socket
import ssl as ssl_module
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Generator, Sequence
from typing import Any, Callable, Optional, Union

from multidict import CIMultiDict

from ..._api import ws_connect
from ..._exceptions import (
    WSHandshakeError,
    WSInvalidHeaderError,
    WSInvalidMessageError,
    WSInvalidStatusError,
    WSInvalidUpgradeError,
    WSInvalidURL,
    WSProxyError,
)
from ..._http11 import WSUpgradeRequest, WSUpgradeResponse, header_pairs
from ..._url import WSParsedURL, parse_url
from ..compat import Request, Response
from ..exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidMessage,
    InvalidProxy,
    InvalidProxyStatus,
    InvalidStatus,
    InvalidUpgrade,
    InvalidURI,
    ProxyError,
    SecurityError,
)
from ..extensions.permessage_deflate import ClientPerMessageDeflateFactory
from ..typing import HeadersLike, LoggerLike, MaxQueue, MaxSize, Origin, Subprotocol
from .connection import ClientConnection, process_exception
from .negotiation import (
    client_extension_factories,
    configure_permessage_deflate,
    extensions_offer,
    resolve_subprotocol,
)
from .utils import default_user_agent, normalize_max_size, resolve_logger

__all__ = ["ClientConnection", "backoff", "connect", "process_exception"]

# websockets' reconnection delays (RFC 6455 7.2.3: "the first reconnect attempt
# SHOULD be delayed by a random amount of time"), then exponential backoff; set
# by the same environment variables as websockets'.
BACKOFF_INITIAL_DELAY = float(os.environ.get("WEBSOCKETS_BACKOFF_INITIAL_DELAY", "5"))
BACKOFF_MIN_DELAY = float(os.environ.get("WEBSOCKETS_BACKOFF_MIN_DELAY", "3.1"))
BACKOFF_MAX_DELAY = float(os.environ.get("WEBSOCKETS_BACKOFF_MAX_DELAY", "90.0"))
BACKOFF_FACTOR = float(os.environ.get("WEBSOCKETS_BACKOFF_FACTOR", "1.618"))

# websockets' limit on redirects followed by one connect, and its variable to change it.
MAX_REDIRECTS = int(os.environ.get("WEBSOCKETS_MAX_REDIRECTS", "10"))
# RFC 9110 15.4: the statuses whose Location a client may follow.
_REDIRECT_STATUSES = frozenset({300, 301, 302, 303, 307, 308})
# Credentials that must not follow a redirect to another origin.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})

# Size of any message or frame the core accepts when max_size is None.
_UNLIMITED = 2**63 - 1
_PROXY_SCHEMES = ("http", "https", "socks4", "socks5", "socks5h")


def backoff(
    initial_delay: float = BACKOFF_INITIAL_DELAY,
    min_delay: float = BACKOFF_MIN_DELAY,
    max_delay: float = BACKOFF_MAX_DELAY,
    factor: float = BACKOFF_FACTOR,
) -> Generator[float, None, None]:
    """The delays between reconnection attempts: random at first, then growing."""
    yield random.random() * initial_delay
    delay = min_delay
    while delay < max_delay:
        yield delay
        delay *= factor
    while True:
        yield max_delay


def _process_proxy(
    proxy: Union[str, bool, None], secure: bool, host: Optional[str] = None, port: int = 0
) -> Optional[str]:
    """The proxy URL to use: ``proxy`` itself, the system's for True (unless
    ``no_proxy`` exempts ``host``), or None."""
    if proxy is None or proxy is False:
        return None
    if isinstance(proxy, str):
        return proxy
    if proxy is True:
        if host is not None and urllib.request.proxy_bypass(f"{host}:{port}"):
            return None
        proxies = urllib.request.getproxies()
        schemes = ("wss", "https") if secure else ("ws", "http")
        for scheme in (*schemes, "socks"):
            if proxies.get(scheme):
                return proxies[scheme]
        return None
    raise InvalidProxy(str(proxy), "proxy must be None, True, or a proxy URL")


def _check_proxy(proxy: str) -> None:
    scheme = proxy.partition("://")[0].lower()
    if "://" not in proxy or scheme not in _PROXY_SCHEMES:
        raise InvalidProxy(proxy, "scheme isn't http, https, socks4 or socks5")


def _ssl_context(ssl: Any, parsed: WSParsedURL) -> Any:
    if not parsed.is_secure:
        if ssl is not None:
            raise ValueError("ssl argument is incompatible with a ws:// URI")
        return None
    if ssl is None or ssl is True:
        return ssl_module.create_default_context()
    if ssl is False:
        raise NotImplementedError("ssl=False isn't supported for wss:// URIs")
    if not isinstance(ssl, ssl_module.SSLContext):
        raise TypeError("ssl must be an SSLContext, True, False, or None")
    return ssl


class connect:
    """Open a WebSocket connection to ``uri``, with websockets' parameters.

    ``await connect(...)`` returns a :class:`ClientConnection`; ``async with``
    closes it at the end; ``async for`` reconnects with backoff after each
    retryable failure (``process_exception`` decides which are).  Extra keyword
    arguments go to ``loop.create_connection`` (through :func:`picows.ws_connect`);
    ``sock``, ``host``/``port`` (override the address), ``ssl``, ``server_hostname``
    and ``proxy_ssl`` are understood as websockets understands them.
    """

    def __init__(
        self,
        uri: str,
        *,
        origin: Optional[Origin] = None,
        extensions: Optional[Sequence[ClientPerMessageDeflateFactory]] = None,
        subprotocols: Optional[Sequence[Subprotocol]] = None,
        compression: Optional[str] = "deflate",
        additional_headers: Optional[HeadersLike] = None,
        user_agent_header: Optional[str] = default_user_agent(),
        proxy: Union[str, bool, None] = True,
        process_exception: Callable[[Exception], Optional[Exception]] = process_exception,
        open_timeout: Optional[float] = 10,
        ping_interval: Optional[float] = 20,
        ping_timeout: Optional[float] = 20,
        close_timeout: Optional[float] = 10,
        reconnect_delays: Optional[Callable[[], Generator[float, None, None]]] = None,
        max_size: MaxSize = 2**20,
        max_queue: MaxQueue = 16,
        write_limit: Union[int, tuple[int, Optional[int]]] = 2**15,
        logger: LoggerLike = None,
        create_connection: Any = None,
        **kwargs: Any,
    ) -> None:
        if create_connection is not None:
            raise NotImplementedError("create_connection isn't supported by picows.websockets")
        self.uri = uri
        self._factories = client_extension_factories(compression, extensions)
        self._compression = compression
        self._extensions = extensions
        self._origin = origin
        self._subprotocols = subprotocols
        self._additional_headers = additional_headers
        self._user_agent_header = user_agent_header
        self._proxy = proxy
        self._process_exception = process_exception
        self.open_timeout = open_timeout
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._close_timeout = close_timeout
        self._reconnect_delays = reconnect_delays
        self._max_message_size, self._max_frame_size = normalize_max_size(max_size)
        self._max_queue = max_queue
        self._write_limit = write_limit
        self.logger = resolve_logger(logger, "websockets.client")
        self._kwargs = kwargs
        #: The first delay before reconnecting is random, up to this many seconds.
        self._backoff = BACKOFF_INITIAL_DELAY
        self._connection: Optional[ClientConnection] = None

    # -- the three ways to use it -----------------------------------------------------

    def __await__(self) -> Generator[Any, None, ClientConnection]:
        return self._connect().__await__()

    async def __aenter__(self) -> ClientConnection:
        if self._connection is not None:
            raise RuntimeError("connect() isn't reentrant")
        self._connection = await self._connect()
        return self._connection

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.__aexit__(exc_type, exc, tb)

    async def __aiter__(self) -> AsyncIterator[ClientConnection]:
        delays: Optional[Generator[float, None, None]] = None
        while True:
            try:
                async with self as connection:
                    yield connection
            except Exception as exc:
                try:
                    new_exc = self._process_exception(exc)
                except Exception as raised:
                    new_exc = raised
                if new_exc is exc:
                    raise
                if new_exc is not None:
                    raise new_exc from exc
                if delays is None:
                    delays = (self._reconnect_delays or self._default_delays)()
                delay = next(delays)
                self.logger.info("connect failed; reconnecting in %.1f seconds: %r", delay, exc)
                await asyncio.sleep(delay)
            else:
                delays = None  # connected: the next failure starts the backoff over

    def _default_delays(self) -> Generator[float, None, None]:
        return backoff(initial_delay=self._backoff)

    # -- opening ----------------------------------------------------------------------

    def _headers(self, parsed: WSParsedURL) -> list[tuple[str, str]]:
        headers = header_pairs(self._additional_headers)
        if parsed.user_info is not None and not any(
            name.lower() == "authorization" for name, _ in headers
        ):
            # RFC 7617: credentials in the URI become Basic authentication.
            token = base64.b64encode(":".join(parsed.user_info).encode("utf-8")).decode()
            headers.append(("Authorization", f"Basic {token}"))
        if self._origin is not None:
            headers.append(("Origin", self._origin))
        offer = extensions_offer(self._factories)
        if offer is not None:
            headers.append(("Sec-WebSocket-Extensions", offer))
        if self._subprotocols:
            headers.append(("Sec-WebSocket-Protocol", ", ".join(self._subprotocols)))
        if self._user_agent_header is not None:
            headers.append(("User-Agent", self._user_agent_header))
        return headers

    def _socket_factory(self, parsed: WSParsedURL, kwargs: dict[str, Any]) -> Any:
        sock = kwargs.pop("sock", None)
        host = kwargs.pop("host", None)
        port = kwargs.pop("port", None)
        factory = kwargs.pop("socket_factory", None)
        if sock is not None:
            if factory is not None:
                raise TypeError("cannot pass both sock and socket_factory")
            if not isinstance(sock, socket.socket):
                raise TypeError("sock must be a socket.socket instance")
            return lambda _url: sock
        if host is not None or port is not None:
            if factory is not None:
                raise TypeError("cannot pass both host/port override and socket_factory")
            address = (host or parsed.host, port or parsed.port)

            async def connect_override(_url: Any) -> socket.socket:
                # Only the TCP destination changes: TLS and Host still use the URI's.
                infos = await asyncio.get_running_loop().getaddrinfo(
                    *address, type=socket.SOCK_STREAM
                )
                family, type_, proto, _, sockaddr = infos[0]
                new = socket.socket(family, type_, proto)
                new.setblocking(False)
                try:
                    await asyncio.get_running_loop().sock_connect(new, sockaddr)
                except BaseException:
                    new.close()
                    raise
                return new

            return connect_override
        return factory

    async def _connect(self) -> ClientConnection:
        """Open the connection, following redirects (websockets' rules; the core
        follows none): the open timeout covers them all."""
        try:
            return await asyncio.wait_for(self._follow_redirects(), self.open_timeout)
        except asyncio.TimeoutError as exc:
            raise asyncio.TimeoutError("timed out during opening handshake") from exc

    async def _follow_redirects(self) -> ClientConnection:
        for _ in range(MAX_REDIRECTS):
            try:
                return await self._connect_once()
            except InvalidStatus as exc:
                new_uri = self._process_redirect(exc)
                if new_uri is None:
                    raise
                self.logger.info("redirected to %s", new_uri)
                self.uri = new_uri  # later reconnections (async for) go there too
        raise SecurityError(f"more than {MAX_REDIRECTS} redirects")

    def _process_redirect(self, exc: InvalidStatus) -> Optional[str]:
        """The URI to follow after ``exc``, or None if it is no redirect.  Raises
        when it is one that must not be followed."""
        response = exc.response
        location = response.headers.get("Location")
        if int(response.status_code) not in _REDIRECT_STATUSES or location is None:
            return None
        new_uri: str = urllib.parse.urljoin(self.uri, str(location))
        old, new = _parse_uri(self.uri), _parse_uri(new_uri)
        if self._kwargs.get("sock") is not None:
            raise ValueError(f"cannot follow redirect to {new_uri} with a preexisting socket")
        if old.is_secure and not new.is_secure:
            raise SecurityError(f"cannot follow redirect to non-secure URI {new_uri}")
        if (old.is_secure, old.host, old.port) != (new.is_secure, new.host, new.port):
            if self._kwargs.get("host") is not None or self._kwargs.get("port") is not None:
                raise ValueError(
                    f"cannot follow cross-origin redirect to {new_uri} "
                    "with an explicit host or port"
                )
            # Another origin must not get our credentials.
            self._additional_headers = [
                (name, value)
                for name, value in header_pairs(self._additional_headers)
                if name.lower() not in _CREDENTIAL_HEADERS
            ]
        return new_uri

    async def _connect_once(self) -> ClientConnection:
        parsed = _parse_uri(self.uri)
        kwargs = dict(self._kwargs)
        ssl_context = _ssl_context(kwargs.pop("ssl", None), parsed)
        proxy_ssl = kwargs.pop("proxy_ssl", None)
        socket_factory = self._socket_factory(parsed, kwargs)
        proxy = None
        if socket_factory is None:
            proxy = _process_proxy(self._proxy, parsed.is_secure, parsed.host, parsed.port)
        if proxy is not None:
            _check_proxy(proxy)
        headers = self._headers(parsed)
        url = f"{parsed.scheme}://{parsed.netloc}{parsed.resource_name}"

        def listener_factory(request: WSUpgradeRequest, response: WSUpgradeResponse) -> Any:
            theirs = Response.from_picows(response)
            return ClientConnection(
                request=Request.from_picows(request),
                response=theirs,
                subprotocol=resolve_subprotocol(self._subprotocols, theirs),
                permessage_deflate=configure_permessage_deflate(
                    theirs, self._compression, self._extensions
                ),
                ping_interval=self._ping_interval,
                ping_timeout=self._ping_timeout,
                close_timeout=self._close_timeout,
                max_queue=self._max_queue,
                write_limit=self._write_limit,
                max_message_size=self._max_message_size,
                max_frame_size=self._max_frame_size,
                logger=self.logger,
            )

        limits = [n for n in (self._max_message_size, self._max_frame_size) if n is not None]
        opening = ws_connect(
            listener_factory,
            url,
            ssl_context=ssl_context,
            websocket_handshake_timeout=self.open_timeout,
            enable_auto_ping=False,
            enable_auto_pong=True,
            # The core checks each frame's size on the wire; messages are ours.
            max_frame_size=min(limits) if limits else _UNLIMITED,
            extra_headers=headers,
            proxy=proxy,
            proxy_ssl_context=proxy_ssl,
            socket_factory=socket_factory,
            max_redirects=0,  # followed here, with websockets' rules
            **kwargs,
        )
        try:
            _transport, listener = await opening
        except WSHandshakeError as exc:
            raise _handshake_error(exc) from exc
        except WSProxyError as exc:
            raise _proxy_error(exc) from exc
        assert isinstance(listener, ClientConnection)
        return listener


def _parse_uri(uri: str) -> WSParsedURL:
    try:
        return parse_url(uri)
    except WSInvalidURL as exc:
        raise InvalidURI(exc.url, exc.msg) from None


def _handshake_error(exc: WSHandshakeError) -> InvalidHandshake:
    """The websockets exception for a failed handshake."""
    if isinstance(exc, WSInvalidStatusError) and exc.response is not None:
        return InvalidStatus(Response.from_picows(exc.response))
    if isinstance(exc, WSInvalidUpgradeError):
        return InvalidUpgrade(exc.name, exc.value)
    if isinstance(exc, WSInvalidHeaderError):
        return InvalidHeader(exc.name, exc.value)
    if isinstance(exc, WSInvalidMessageError):
        error = InvalidMessage(str(exc))
        if "connection closed" in str(exc):
            # An end of stream: retryable for process_exception, as in websockets.
            error.__cause__ = EOFError(str(exc))
        return error
    return InvalidHandshake(str(exc))


def _proxy_error(exc: WSProxyError) -> Exception:
    """websockets' view of a proxy failure: network errors stay OSError (retryable)."""
    cause = exc.__cause__
    if exc.status is not None:
        return InvalidProxyStatus(Response(int(exc.status), "", CIMultiDict(), b""))
    if isinstance(cause, (OSError, asyncio.TimeoutError)):
        return cause
    return ProxyError(str(exc))
