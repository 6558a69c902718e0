"""Opening the byte stream under a WebSocket: directly, over a user's socket, or through
an HTTP, HTTPS, SOCKS4 or SOCKS5 proxy; with asyncio's transports or aiofastnet's.

This is asyncio glue; the only protocol it speaks itself is HTTP CONNECT, and that is
built and parsed by the Sans-I/O module ``_proxy``.  SOCKS is python-socks' job.  The
paths, for a ``ws://`` or ``wss://`` server S::

    direct        create_connection(S, ssl)
    socket        socket_factory(S) -> sock [connected here if needed];
                  create_connection(sock=sock, ssl, server_hostname=S)
    HTTP(S) proxy create_connection(P, ssl=proxy context for https) with HTTPProxyConnectProtocol;
                  CONNECT S -> 2xx; then for wss start_tls(server_hostname=S) inside
                  the tunnel, and the WebSocket protocol takes over the transport
    SOCKS proxy   python-socks connects to P (or talks over socket_factory's socket)
                  and hands back a socket tunnelled to S;
                  create_connection(sock=sock, ssl, server_hostname=S)

With a proxy, ``socket_factory`` gets the proxy's URL and its socket is the one to the
proxy.  Everything up to an open tunnel (reaching the proxy, its answer) is bounded by
``timeout`` and fails with :class:`~picows.WSProxyError`, which names the proxy; what
follows (TLS with S, the upgrade) fails exactly as on a direct connection.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import ssl as ssl_module
import sys
from types import ModuleType
from typing import Any, Awaitable, Callable, Optional, TypeVar, Union, cast
from urllib.parse import unquote

from ._exceptions import WSInvalidURL, WSProxyError
from ._proxy import (
    ConnectResponse,
    ConnectResponseReader,
    build_connect_request,
    proxy_display_url,
)
from ._url import WSParsedURL, parse_url

__all__ = ["Connector", "HTTPProxyConnectProtocol", "create_server", "load_aiofastnet"]

T = TypeVar("T")
Logger = Union[logging.Logger, "logging.LoggerAdapter[Any]"]
ProtocolFactory = Callable[[], asyncio.BaseProtocol]
Connection = tuple[asyncio.Transport, asyncio.BaseProtocol]
#: ``socket_factory(url)`` returns a socket, None, or an awaitable of either.
SocketFactory = Callable[[WSParsedURL], Any]

# create_connection keywords that only matter when the loop opens the TCP connection
# itself (they are dropped when a socket is handed over).
_TCP_ONLY_KWARGS = frozenset(
    {"family", "proto", "flags", "local_addr", "happy_eyeballs_delay", "interleave"}
)

_SOCKS_INSTALL_HINT = "pip install python-socks[asyncio]"
_PROXY_SCHEMES = ("http", "https", "socks4", "socks5")


def _is_tls_kwarg(name: str) -> bool:
    """Keywords for the TLS session with the server; through an HTTP proxy they go to
    ``start_tls`` (``server_hostname``, ``ssl_handshake_timeout``, ...)."""
    return name == "server_hostname" or name.startswith("ssl_")


def load_aiofastnet(use_aiofastnet: Optional[bool]) -> Optional[ModuleType]:
    """The aiofastnet module when it should be used: ``None`` means "if installed"."""
    if use_aiofastnet is not None and not use_aiofastnet:
        return None
    try:
        import aiofastnet
    except ImportError:
        if use_aiofastnet:
            raise ImportError(
                "use_aiofastnet=True but the aiofastnet package is not installed: "
                "pip install aiofastnet"
            ) from None
        return None
    # Annotated so that mypy is satisfied whether or not aiofastnet ships types.
    module: ModuleType = aiofastnet
    return module


async def create_server(
    loop: asyncio.AbstractEventLoop,
    protocol_factory: ProtocolFactory,
    host: Any,
    port: Optional[int],
    *,
    use_aiofastnet: Optional[bool],
    **kwargs: Any,
) -> asyncio.Server:
    """``loop.create_server``, or ``aiofastnet.create_server`` when it is to be used."""
    fastnet = load_aiofastnet(use_aiofastnet)
    if fastnet is not None:
        server: asyncio.Server = await fastnet.create_server(
            loop, protocol_factory, host, port, **kwargs
        )
        return server
    return await loop.create_server(protocol_factory, host, port, **kwargs)


class _Net:
    """The loop's connection methods, or aiofastnet's (same signatures, loop first)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fastnet: Optional[ModuleType]) -> None:
        self.loop = loop
        self._fastnet = fastnet

    async def create_connection(
        self,
        factory: ProtocolFactory,
        host: Optional[str] = None,
        port: Optional[int] = None,
        **kwargs: Any,
    ) -> Connection:
        if self._fastnet is not None:
            connection: Connection = await self._fastnet.create_connection(
                self.loop, factory, host, port, **kwargs
            )
            return connection
        if host is None:  # over kwargs["sock"]
            return await self.loop.create_connection(factory, **kwargs)
        assert port is not None
        return await self.loop.create_connection(factory, host, port, **kwargs)

    async def start_tls(
        self,
        transport: asyncio.BaseTransport,
        protocol: asyncio.BaseProtocol,
        context: ssl_module.SSLContext,
        **kwargs: Any,
    ) -> asyncio.Transport:
        if self._fastnet is not None:
            tls: Optional[asyncio.Transport] = await self._fastnet.start_tls(
                self.loop, transport, protocol, context, **kwargs
            )
        else:
            tls = await self.loop.start_tls(transport, protocol, context, **kwargs)
        if tls is None:  # only when the loop is closing
            raise ConnectionError("start_tls() returned no transport")
        return tls


class HTTPProxyConnectProtocol(asyncio.Protocol):
    """Sends CONNECT to an HTTP proxy and waits for a 2xx answer (upstream's name).

    ``username`` and ``password`` are as in the proxy URL (percent-encoded).  A refusal,
    an answer that is not HTTP or one over 64 KiB aborts the connection and fails
    :meth:`wait_tunnel_established` with a :class:`~picows.WSProxyError`; a connection
    lost before the answer fails it with the loss's own exception.  Once the tunnel is
    open, reading pauses and the bytes that followed the answer are kept in
    :attr:`leftover`: they already belong to the server, for the WebSocket protocol
    that takes the transport over.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: Optional[str],
        password: Optional[str],
        proxy: str = "",
    ) -> None:
        user_info = None
        if username is not None:
            user_info = (unquote(username), unquote(password or ""))
        self._request = build_connect_request(host.strip("[]"), port, user_info)
        self._reader = ConnectResponseReader(proxy)
        self._transport: Optional[asyncio.Transport] = None
        #: What the server sent right after the proxy's answer.
        self.leftover = b""
        self._tunnel_established: asyncio.Future[ConnectResponse] = (
            asyncio.get_running_loop().create_future()
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self._tunnel_established.done():
            self.leftover += data
            return
        try:
            answer = self._reader.feed(data)
        except WSProxyError as exc:
            self._fail(exc)
            return
        if answer is None:
            return
        response, self.leftover = answer
        if not response.is_success:
            self._fail(self._reader.refused(response))
            return
        # Hold what follows (the server's bytes) until the WebSocket protocol is in.
        if self._transport is not None:
            self._transport.pause_reading()
        self._tunnel_established.set_result(response)

    def eof_received(self) -> Optional[bool]:
        self.connection_lost(None)
        return False

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if self._tunnel_established.done():
            return
        if exc is None:
            try:
                self._reader.feed_eof()
            except WSProxyError as error:
                exc = error
        self._tunnel_established.set_exception(exc or ConnectionResetError())

    def _fail(self, exc: BaseException) -> None:
        if self._transport is not None:
            self._transport.abort()
        if not self._tunnel_established.done():
            self._tunnel_established.set_exception(exc)

    async def wait_tunnel_established(self) -> ConnectResponse:
        """The proxy's 2xx answer, once the tunnel is open."""
        return await self._tunnel_established


def _feed(protocol: asyncio.BaseProtocol, data: bytes) -> None:
    """Hands ``data`` to ``protocol`` the way a transport would."""
    if isinstance(protocol, asyncio.BufferedProtocol):
        view = memoryview(data)
        while view:
            buffer = memoryview(protocol.get_buffer(len(view))).cast("B")
            size = min(len(buffer), len(view))
            buffer[:size] = view[:size]
            protocol.buffer_updated(size)
            view = view[size:]
    elif isinstance(protocol, asyncio.Protocol):
        protocol.data_received(data)


def _is_connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


async def _connect_socket(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, endpoint: WSParsedURL
) -> None:
    """Connects a user's unconnected socket to ``endpoint``, in the socket's family."""
    infos = await loop.getaddrinfo(
        endpoint.host, endpoint.port, family=sock.family, type=socket.SOCK_STREAM
    )
    if not infos:  # pragma: no cover - getaddrinfo raises instead
        raise OSError(f"getaddrinfo({endpoint.host!r}) returned no address")
    await loop.sock_connect(sock, infos[0][4])


def _import_python_socks() -> tuple[ModuleType, ModuleType]:
    """``python_socks`` and its asyncio API, or an ImportError that says what to install."""
    try:
        import python_socks
        from python_socks.async_ import asyncio as socks_asyncio
    except ImportError as exc:
        raise ImportError(
            "socks4:// and socks5:// proxies need the optional python-socks package: "
            + _SOCKS_INSTALL_HINT
        ) from exc
    return python_socks, socks_asyncio


class _SocketStream:
    """The stream python-socks' connectors talk through, over a socket of ours.

    Used only when ``socket_factory`` made the socket to a SOCKS proxy: python-socks'
    public API opens its own socket.  Both spellings of the methods are offered
    (python-socks 2.4 says ``write_all``/``read_exact``, 3.x ``write``/``read_exactly``).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self._loop = loop
        self._sock = sock

    async def write(self, data: bytes) -> None:
        await self._loop.sock_sendall(self._sock, data)

    write_all = write

    async def read(self, max_bytes: int = 65536) -> bytes:
        return await self._loop.sock_recv(self._sock, max_bytes)

    async def read_exactly(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = await self._loop.sock_recv(self._sock, n - len(data))
            if not chunk:
                raise EOFError("the proxy closed the connection")
            data += chunk
        return bytes(data)

    read_exact = read_exactly

    async def close(self) -> None:
        self._sock.close()


class Connector:
    """How ``ws_connect`` reaches a server: the proxy, socket factory and loop API.

    Built once per ``ws_connect`` call (checking the arguments up front), then
    :meth:`open` is called for the URL and again for each redirect, so every hop goes
    through the same proxy.
    """

    def __init__(
        self,
        *,
        proxy: Optional[str],
        proxy_ssl_context: Optional[ssl_module.SSLContext],
        socket_factory: Optional[SocketFactory],
        use_aiofastnet: Optional[bool],
        kwargs: dict[str, Any],
        tls_handshake_timeout: Optional[float] = None,
    ) -> None:
        self.proxy = None if proxy is None else parse_url(proxy, check_scheme=False)
        if self.proxy is not None and self.proxy.scheme not in _PROXY_SCHEMES:
            raise WSInvalidURL(proxy or "", "proxy scheme isn't http, https, socks4 or socks5")
        if self.proxy is not None and proxy_ssl_context is not None and not self.proxy.is_secure:
            raise ValueError(
                f"proxy_ssl_context is only meaningful with an https:// proxy, "
                f"not {self.proxy.scheme}://"
            )
        self._display = "" if self.proxy is None else proxy_display_url(self.proxy)
        self._socks: Optional[tuple[ModuleType, ModuleType]] = None
        if self.proxy is not None and self.proxy.scheme.startswith("socks"):
            self._socks = _import_python_socks()
        self._proxy_ssl_context = proxy_ssl_context
        self._socket_factory = socket_factory
        self._fastnet = load_aiofastnet(use_aiofastnet)
        self._kwargs = kwargs
        self._tls_handshake_timeout = tls_handshake_timeout

    def _kwargs_for(self, url: WSParsedURL) -> dict[str, Any]:
        """The user's kwargs for the connection to ``url``, with ``ssl_handshake_timeout``
        set to ``tls_handshake_timeout`` for wss:// unless the user set it."""
        timeout = self._tls_handshake_timeout
        if url.is_secure and timeout is not None and "ssl_handshake_timeout" not in self._kwargs:
            return {**self._kwargs, "ssl_handshake_timeout": timeout}
        return self._kwargs

    async def open(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol_factory: ProtocolFactory,
        url: WSParsedURL,
        ssl: Any,
        *,
        timeout: Optional[float],
        logger: Logger,
    ) -> Connection:
        """Connects to ``url`` (``ssl``: None, True or a context for wss); returns what
        ``create_connection`` returns.

        A TLS handshake cut off by the bound picows derived (``tls_handshake_timeout``)
        fails with ``asyncio.TimeoutError``, as the upgrade's own timeout does.
        """
        started = loop.time()
        try:
            return await self._open(loop, protocol_factory, url, ssl, timeout, logger)
        except ConnectionAbortedError as exc:
            # asyncio, uvloop and aiofastnet abort a TLS handshake that is over
            # ssl_handshake_timeout with ConnectionAbortedError.
            # (The timer may fire a clock tick early: hence the 0.9.)
            bound = self._kwargs_for(url).get("ssl_handshake_timeout")
            if "ssl_handshake_timeout" in self._kwargs or bound is None:
                raise
            if loop.time() - started < 0.9 * bound:
                raise
            raise asyncio.TimeoutError("websocket handshake timeout") from exc

    async def _open(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol_factory: ProtocolFactory,
        url: WSParsedURL,
        ssl: Any,
        timeout: Optional[float],
        logger: Logger,
    ) -> Connection:
        net = _Net(loop, self._fastnet)
        proxy = self.proxy
        if proxy is None:
            sock = await self._socket_from_factory(url)
            if sock is None:
                return await net.create_connection(
                    protocol_factory, url.host, url.port, ssl=ssl, **self._kwargs_for(url)
                )
            try:
                if not _is_connected(sock):
                    await _connect_socket(loop, sock, url)
            except BaseException:
                sock.close()
                raise
            return await self._over_socket(net, protocol_factory, sock, url, ssl)
        logger.debug("Connecting to %s through proxy %s", url.url, self._display)
        if proxy.scheme in ("http", "https"):
            return await self._through_http_proxy(net, protocol_factory, url, ssl, timeout)
        return await self._through_socks_proxy(net, protocol_factory, url, ssl, timeout)

    # -- sockets ----------------------------------------------------------------------

    async def _socket_from_factory(self, endpoint: WSParsedURL) -> Optional[socket.socket]:
        if self._socket_factory is None:
            return None
        result = self._socket_factory(endpoint)
        if inspect.isawaitable(result):
            result = await result
        if result is None:
            return None
        if not isinstance(result, socket.socket):
            raise TypeError(
                f"socket_factory must return a socket.socket or None, not {type(result).__name__}"
            )
        result.setblocking(False)
        return result

    async def _over_socket(
        self,
        net: _Net,
        protocol_factory: ProtocolFactory,
        sock: socket.socket,
        url: WSParsedURL,
        ssl: Any,
    ) -> Connection:
        """``create_connection`` over a socket connected (or tunnelled) to ``url``."""
        kwargs = {k: v for k, v in self._kwargs_for(url).items() if k not in _TCP_ONLY_KWARGS}
        if ssl:
            # There is no host to take it from: the certificate must match the server.
            kwargs.setdefault("server_hostname", url.host)
        try:
            return await net.create_connection(protocol_factory, sock=sock, ssl=ssl, **kwargs)
        except BaseException:
            sock.close()
            raise

    # -- proxies ----------------------------------------------------------------------

    async def _proxy_step(self, step: Awaitable[T], timeout: Optional[float]) -> T:
        """Runs the part that talks to the proxy: bounded, every failure a WSProxyError."""
        try:
            if timeout is None:
                return await step
            return await asyncio.wait_for(step, timeout)
        except WSProxyError:
            raise
        except asyncio.TimeoutError as exc:  # also TimeoutError, an OSError, on 3.11+
            raise WSProxyError(self._display, f"no answer within {timeout:g} s") from exc
        except OSError as exc:
            raise WSProxyError(self._display, f"connection to the proxy failed: {exc}") from exc

    async def _through_http_proxy(
        self,
        net: _Net,
        protocol_factory: ProtocolFactory,
        url: WSParsedURL,
        ssl: Any,
        timeout: Optional[float],
    ) -> Connection:
        assert self.proxy is not None
        tls_kwargs = {k: v for k, v in self._kwargs_for(url).items() if _is_tls_kwarg(k)}
        if not url.is_secure and tls_kwargs:
            raise ValueError(f"{', '.join(tls_kwargs)} is only meaningful with wss://")
        sock = await self._socket_from_factory(self.proxy)
        transport, tunnel = await self._proxy_step(self._http_tunnel(net, sock, url), timeout)
        try:
            if url.is_secure:
                if tunnel.leftover:
                    raise WSProxyError(self._display, "unexpected data before the TLS handshake")
                # The TLS session with the server runs inside the tunnel; the certificate
                # is checked against the server's name, not the proxy's.  The tunnel's
                # protocol stays in place until TLS is up: the WebSocket protocol only
                # ever sees a working connection.
                context = ssl if isinstance(ssl, ssl_module.SSLContext) else None
                if context is None:
                    context = ssl_module.create_default_context()
                tls_kwargs.setdefault("server_hostname", url.host)
                try:
                    transport = await net.start_tls(transport, tunnel, context, **tls_kwargs)
                except TypeError as exc:
                    _explain_tls_in_tls(exc, net.loop, self._fastnet, self.proxy.is_secure)
                    raise
            protocol = protocol_factory()
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            if tunnel.leftover:
                _feed(protocol, tunnel.leftover)
            if not url.is_secure:
                transport.resume_reading()
            return transport, protocol
        except BaseException:
            transport.abort()
            raise

    async def _http_tunnel(
        self, net: _Net, sock: Optional[socket.socket], url: WSParsedURL
    ) -> tuple[asyncio.Transport, HTTPProxyConnectProtocol]:
        """Connects to the HTTP(S) proxy and opens a CONNECT tunnel to ``url``."""
        proxy = self.proxy
        assert proxy is not None
        context: Optional[ssl_module.SSLContext] = None
        kwargs: dict[str, Any] = {}
        if proxy.is_secure:
            context = self._proxy_ssl_context or ssl_module.create_default_context()
            kwargs["server_hostname"] = proxy.host

        def tunnel_factory() -> HTTPProxyConnectProtocol:
            return HTTPProxyConnectProtocol(
                url.host, url.port, proxy.username, proxy.password, self._display
            )

        if sock is None:
            kwargs.update((k, v) for k, v in self._kwargs.items() if k in _TCP_ONLY_KWARGS)
            transport, tunnel = await net.create_connection(
                tunnel_factory, proxy.host, proxy.port, ssl=context, **kwargs
            )
        else:
            try:
                if not _is_connected(sock):
                    await _connect_socket(net.loop, sock, proxy)
                transport, tunnel = await net.create_connection(
                    tunnel_factory, sock=sock, ssl=context, **kwargs
                )
            except BaseException:
                sock.close()
                raise
        try:
            assert isinstance(tunnel, HTTPProxyConnectProtocol)
            await tunnel.wait_tunnel_established()
        except BaseException:
            transport.abort()
            raise
        if transport.is_closing():  # the proxy hung up right after saying yes
            transport.abort()
            raise WSProxyError(self._display, "the proxy closed the tunnel")
        return transport, tunnel

    async def _through_socks_proxy(
        self,
        net: _Net,
        protocol_factory: ProtocolFactory,
        url: WSParsedURL,
        ssl: Any,
        timeout: Optional[float],
    ) -> Connection:
        assert self.proxy is not None
        user_sock = await self._socket_from_factory(self.proxy)
        tunnel = self._socks_tunnel(net.loop, user_sock, url, timeout)
        sock = await self._proxy_step(tunnel, timeout)
        return await self._over_socket(net, protocol_factory, sock, url, ssl)

    async def _socks_tunnel(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: Optional[socket.socket],
        url: WSParsedURL,
        timeout: Optional[float],
    ) -> socket.socket:
        """A socket tunnelled to ``url`` by the SOCKS proxy, thanks to python-socks."""
        proxy = self.proxy
        assert proxy is not None and self._socks is not None
        python_socks, socks_asyncio = self._socks
        # RFC 1929 2: the user name and password are sent as they are, not URI-encoded.
        username = None if proxy.username is None else unquote(proxy.username)
        password = None if proxy.password is None else unquote(proxy.password)
        try:
            if proxy.scheme == "socks5":
                proxy_type = python_socks.ProxyType.SOCKS5
                # RFC 1928 5: ATYP 3 (DOMAINNAME) sends the name; the proxy resolves it.
                rdns, host = True, str(url.host)
            else:
                proxy_type = python_socks.ProxyType.SOCKS4
                # SOCKS4 carries an IPv4 address (DSTIP), resolved here rather than by
                # python-socks (2.4 sends the name anyway, as SOCKS4a, which proxies
                # handle badly).
                rdns, host = False, await self._ipv4_address(loop, url)
            # With credentials, SOCKS5 authenticates with user/password (RFC 1929) and
            # SOCKS4 sends the user name as USERID.
            if sock is None:
                client = socks_asyncio.Proxy(
                    proxy_type, proxy.host, proxy.port, username, password, rdns=rdns
                )
                tunnelled: socket.socket = await client.connect(host, url.port, timeout=timeout)
                return tunnelled
            if not _is_connected(sock):
                await _connect_socket(loop, sock, proxy)
            await _socks_handshake(loop, sock, proxy_type, username, password, rdns, host, url.port)
            return sock
        except BaseException as exc:
            if sock is not None:
                sock.close()
            error = self._socks_error(exc, timeout)
            if error is None:
                raise
            raise error from error.__cause__

    def _socks_error(self, exc: BaseException, timeout: Optional[float]) -> Optional[WSProxyError]:
        """python-socks' errors as WSProxyError (with the original as ``__cause__``)."""
        assert self.proxy is not None and self._socks is not None
        python_socks, _ = self._socks
        cause: BaseException = exc
        if isinstance(exc, python_socks.ProxyConnectionError):
            # Like the other proxies: the cause is the OSError (ConnectionRefusedError...).
            if isinstance(exc.__cause__, OSError):
                cause = exc.__cause__
            error = WSProxyError(self._display, f"connection to the proxy failed: {cause}")
        elif isinstance(exc, python_socks.ProxyTimeoutError):
            error = WSProxyError(self._display, f"no answer within {timeout:g} s")
        elif isinstance(exc, (python_socks.ProxyError, EOFError)):
            label = self.proxy.scheme.upper()
            error = WSProxyError(self._display, f"{label} handshake failed: {exc}")
        else:
            return None  # ours already, or for _proxy_step to sort out
        error.__cause__ = cause
        return error

    async def _ipv4_address(self, loop: asyncio.AbstractEventLoop, url: WSParsedURL) -> str:
        try:
            infos = await loop.getaddrinfo(
                url.host, url.port, family=socket.AF_INET, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise WSProxyError(
                self._display, f"SOCKS4 needs an IPv4 address for {url.host}: {exc}"
            ) from exc
        return str(infos[0][4][0])


async def _socks_handshake(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    proxy_type: Any,
    username: Optional[str],
    password: Optional[str],
    rdns: bool,
    host: str,
    port: int,
) -> None:
    """The SOCKS handshake over a socket of the user's (``socket_factory``).

    python-socks' public API always opens its own socket, so this drives its connector
    classes (private, but stable from 2.4 to 3.x) over :class:`_SocketStream`, and
    reports their errors as the public API does (``ProxyError``).
    """
    try:
        from python_socks import ProxyError
        from python_socks._connectors.factory_async import create_connector
        from python_socks._protocols.errors import ReplyError
        from python_socks.async_.asyncio._resolver import Resolver
    except ImportError as exc:
        raise ImportError(
            "socket_factory with a SOCKS proxy needs python-socks internals that this "
            "version lacks: " + _SOCKS_INSTALL_HINT
        ) from exc
    connector = create_connector(
        proxy_type=proxy_type,
        username=username,
        password=password,
        rdns=rdns,
        resolver=Resolver(loop=loop),
    )
    stream: Any = _SocketStream(loop, sock)
    try:
        await connector.connect(stream=stream, host=host, port=port)
    except ReplyError as exc:
        raise ProxyError(exc, error_code=exc.error_code) from exc


def _explain_tls_in_tls(
    exc: TypeError, loop: asyncio.AbstractEventLoop, fastnet: Optional[ModuleType], proxy_tls: bool
) -> None:
    """wss through an https proxy is TLS inside TLS: before Python 3.11, asyncio's
    start_tls refuses its own SSL transport with a TypeError (as upstream lets it
    escape).  Say why in the message, keeping the type and the original text."""
    old_asyncio = sys.version_info < (3, 11) and isinstance(loop, asyncio.BaseEventLoop)
    if proxy_tls and old_asyncio and fastnet is None:
        exc.args = (
            f"{exc} (wss:// through an https:// proxy needs TLS inside TLS, which "
            "asyncio's own loop supports from Python 3.11 on; uvloop and aiofastnet "
            "support it before)",
        )
