"""``serve``, :class:`Server`, ``basic_auth`` and ``broadcast``, on picows' core.

The core parses each upgrade request and asks a factory what to answer; here the
factory runs websockets' server handshake: ``process_request``, then the checks
and negotiations of :meth:`_accept` (origin, permessage-deflate, subprotocol),
then ``process_response``.  A 101 answer comes with a :class:`ServerConnection`,
whose handler task starts once the core has sent the 101.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import email.utils
import hmac
import http
import re
import sys
from collections.abc import Awaitable, Generator, Iterable, Mapping, Sequence
from typing import Any, Callable, Optional, Union

from multidict import CIMultiDict

from ..._api import ws_create_server
from ..._handshake import accept_key
from ..._http11 import WSUpgradeRequest, WSUpgradeResponseWithListener
from ..._types import WSMsgType
from ..compat import Request, Response, State, plain_response
from ..exceptions import ConcurrencyError, InvalidHandshake, InvalidHeader, InvalidOrigin
from ..extensions.permessage_deflate import PerMessageDeflate, ServerPerMessageDeflateFactory
from ..headers import parse_subprotocol
from ..typing import DataLike, LoggerLike, MaxQueue, MaxSize, Origin, StatusLike, Subprotocol
from .connection import ServerConnection
from .negotiation import negotiate_extensions, select_server_subprotocol, server_extension_factories
from .utils import Logger, default_server_header, normalize_max_size, resolve_logger, sync_hook

__all__ = [
    "Server",
    "ServerConnection",
    "ServerHandshakeConnection",
    "basic_auth",
    "broadcast",
    "serve",
]

_UNLIMITED = 2**63 - 1
Handler = Callable[[ServerConnection], Awaitable[None]]
SelectSubprotocol = Callable[[Any, Sequence[Subprotocol]], Optional[Subprotocol]]


class ServerHandshakeConnection:
    """What ``process_request``, ``process_response`` and ``select_subprotocol``
    receive: the connection during its opening handshake (state CONNECTING)."""

    def __init__(self, request: Request) -> None:
        self.request = request
        #: Set by ``basic_auth``; becomes ``ServerConnection.username``.
        self.username: Optional[str] = None
        #: Set by ``route``'s router: the matched endpoint and its URL values.
        self.handler: Optional[Callable[..., Awaitable[None]]] = None
        self.handler_kwargs: Mapping[str, Any] = {}

    @property
    def state(self) -> State:
        return State.CONNECTING

    def respond(self, status: StatusLike, text: str) -> Response:
        """A plain-text HTTP response that rejects the WebSocket upgrade."""
        return plain_response(int(status), text)


def _origin_ok(origin: Optional[str], origins: Optional[Sequence[Any]]) -> bool:
    if origins is None:
        return True
    for allowed in origins:
        if allowed == origin:
            return True
        if isinstance(allowed, re.Pattern) and origin is not None and allowed.fullmatch(origin):
            return True
    return False


class Server:
    """A WebSocket server: an asyncio server plus its connections and handlers.

    Returned by :func:`serve`; ``await`` it (or ``async with`` it) to start.
    """

    def __init__(
        self,
        create_server: Callable[[Server], Awaitable[asyncio.Server]],
        handler: Handler,
        logger: Logger,
    ) -> None:
        self._create_server = create_server
        self.handler = handler
        self.logger = logger
        self.server: Optional[asyncio.Server] = None
        self.loop = asyncio.get_running_loop()
        self.handlers: dict[ServerConnection, asyncio.Task[None]] = {}
        self.close_task: Optional[asyncio.Task[None]] = None
        self._closed_waiter: asyncio.Future[None] = self.loop.create_future()

    @property
    def connections(self) -> set[ServerConnection]:
        """The connections that completed the handshake and are not closing."""
        return {c for c in self.handlers if c.state is State.OPEN}

    def start_connection_handler(self, connection: ServerConnection) -> None:
        self.handlers[connection] = self.loop.create_task(self._run_handler(connection))

    async def _run_handler(self, connection: ServerConnection) -> None:
        try:
            try:
                await self.handler(connection)
            except Exception:
                self.logger.error("connection handler failed", exc_info=True)
                await connection.close(1011)
            else:
                await connection.close()
        finally:
            del self.handlers[connection]

    def close(self, close_connections: bool = True, code: int = 1001, reason: str = "") -> None:
        """Stop accepting connections; close the open ones with ``code`` (1001,
        going away) unless ``close_connections`` is False; then wait for every
        handler.  Idempotent; :meth:`wait_closed` waits for the end."""
        if self.close_task is None:
            self.close_task = self.loop.create_task(self._close(close_connections, code, reason))

    async def _close(self, close_connections: bool, code: int, reason: str) -> None:
        self.logger.info("server closing")
        if self.server is not None:
            self.server.close()
        if close_connections:
            closing = [
                asyncio.ensure_future(c.close(code, reason))
                for c in self.handlers
                if c.state is State.OPEN
            ]
            if closing:
                await asyncio.wait(closing)
        if self.server is not None:
            await self.server.wait_closed()
        if self.handlers:
            await asyncio.wait(list(self.handlers.values()))
        self._closed_waiter.set_result(None)
        self.logger.info("server closed")

    async def wait_closed(self) -> None:
        """Wait until the server is closed and every handler returned."""
        await asyncio.shield(self._closed_waiter)

    def _started(self) -> asyncio.Server:
        if self.server is None:
            raise RuntimeError("await the server (or enter it with async with) first")
        return self.server

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.loop

    def is_serving(self) -> bool:
        return self.server is not None and self.server.is_serving()

    async def start_serving(self) -> None:
        await self._started().start_serving()

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` is called, or until cancelled (which closes)."""
        try:
            if not self.is_serving():
                await self.start_serving()
            await self.wait_closed()
        except asyncio.CancelledError:
            self.close()
            await self.wait_closed()
            raise

    @property
    def sockets(self) -> tuple[Any, ...]:
        return tuple(self._started().sockets)

    async def _start(self) -> Server:
        if self.server is None:
            self.server = await self._create_server(self)
            for sock in self.server.sockets:
                self.logger.info("server listening on %s", sock.getsockname())
        return self

    def __await__(self) -> Generator[Any, None, Server]:
        return self._start().__await__()

    async def __aenter__(self) -> Server:
        return await self._start()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close()
        await self.wait_closed()


class _Handshake:
    """websockets' server handshake for one request, as the core's factory."""

    def __init__(self, options: dict[str, Any], server: Server) -> None:
        self.o = options
        self.server = server

    def __call__(self, upgrade: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
        o = self.o
        request = Request.from_picows(upgrade)
        connection = ServerHandshakeConnection(request)
        response: Optional[Response] = None
        deflate: Optional[PerMessageDeflate] = None
        subprotocol: Optional[Subprotocol] = None
        if self.server.close_task is not None:
            response = plain_response(503, "Server is shutting down.\n")
        elif o["process_request"] is not None:
            response = sync_hook(o["process_request"](connection, request), "process_request")
        if response is None:
            response, deflate, subprotocol = self._accept(connection, request, upgrade)
        if o["process_response"] is not None:
            replaced = sync_hook(
                o["process_response"](connection, request, response), "process_response"
            )
            response = response if replaced is None else replaced
        if not isinstance(response, Response):
            raise TypeError(f"the handshake response must be a Response, not {response!r}")
        if response.status_code != 101:
            return WSUpgradeResponseWithListener(response.to_picows(), None)
        extensions = response.headers.get("Sec-WebSocket-Extensions")
        if deflate is None and extensions is not None:
            raise InvalidHandshake("process_response added extensions the server did not agree")
        if extensions is None:
            deflate = None
        message, frame = o["max_size"]
        listener = ServerConnection(
            self.server,
            hooked=connection,
            request=request,
            response=response,
            subprotocol=response.headers.get("Sec-WebSocket-Protocol", subprotocol),
            permessage_deflate=deflate,
            ping_interval=o["ping_interval"],
            ping_timeout=o["ping_timeout"],
            close_timeout=o["close_timeout"],
            max_queue=o["max_queue"],
            write_limit=o["write_limit"],
            max_message_size=message,
            max_frame_size=frame,
            logger=self.server.logger,
        )
        return WSUpgradeResponseWithListener(response.to_picows(), listener)

    def _accept(
        self, connection: ServerHandshakeConnection, request: Request, upgrade: WSUpgradeRequest
    ) -> tuple[Response, Optional[PerMessageDeflate], Optional[Subprotocol]]:
        """The 101 response, or the error response of a request we refuse."""
        o = self.o
        headers = request.headers
        origins = headers.getall("Origin", [])
        origin = origins[0] if origins else None
        try:
            # RFC 6454 7.3: "The user agent MUST NOT include more than one Origin
            # header field in any HTTP request."
            if len(origins) > 1:
                raise InvalidHeader("Origin", "multiple values")
            if not _origin_ok(origin, o["origins"]):
                raise InvalidOrigin(origin)
            extensions, deflate = negotiate_extensions(headers, o["extensions"])
            offered = [
                p
                for v in headers.getall("Sec-WebSocket-Protocol", [])
                for p in parse_subprotocol(v)
            ]
            if o["select_subprotocol"] is not None:
                subprotocol = o["select_subprotocol"](connection, offered)
                if subprotocol is not None and subprotocol not in offered:
                    raise InvalidHandshake(f"selected subprotocol isn't offered: {subprotocol}")
            else:
                subprotocol = select_server_subprotocol(offered, o["subprotocols"])
        except InvalidOrigin as exc:
            return (
                plain_response(403, f"Failed to open a WebSocket connection: {exc}.\n"),
                None,
                None,
            )
        except InvalidHandshake as exc:
            return (
                plain_response(400, f"Failed to open a WebSocket connection: {exc}.\n"),
                None,
                None,
            )
        except Exception:
            self.server.logger.error("opening handshake failed", exc_info=True)
            text = "Failed to open a WebSocket connection.\nSee server log for more information.\n"
            return plain_response(500, text), None, None
        fields = [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
        ]
        key = headers.get("Sec-WebSocket-Key")
        if key is not None:
            fields.append(("Sec-WebSocket-Accept", accept_key(key)))
        if extensions is not None:
            fields.append(("Sec-WebSocket-Extensions", extensions))
        if subprotocol is not None:
            fields.append(("Sec-WebSocket-Protocol", subprotocol))
        if o["server_header"] is not None:
            fields.append(("Server", o["server_header"]))
        return Response(101, "Switching Protocols", CIMultiDict(fields), b""), deflate, subprotocol


def serve(
    handler: Handler,
    host: Optional[str] = None,
    port: Optional[int] = None,
    *,
    origins: Optional[Sequence[Union[Origin, re.Pattern[str], None]]] = None,
    extensions: Optional[Sequence[ServerPerMessageDeflateFactory]] = None,
    subprotocols: Optional[Sequence[Subprotocol]] = None,
    select_subprotocol: Optional[SelectSubprotocol] = None,
    compression: Optional[str] = "deflate",
    process_request: Optional[Callable[..., Any]] = None,
    process_response: Optional[Callable[..., Any]] = None,
    server_header: Optional[str] = default_server_header(),
    open_timeout: Optional[float] = 10,
    ping_interval: Optional[float] = 20,
    ping_timeout: Optional[float] = 20,
    close_timeout: Optional[float] = 10,
    max_size: MaxSize = 2**20,
    max_queue: MaxQueue = 16,
    write_limit: Union[int, tuple[int, Optional[int]]] = 2**15,
    logger: LoggerLike = None,
    create_connection: Any = None,
    **kwargs: Any,
) -> Server:
    """Create a WebSocket server; ``await`` it or use ``async with`` to start it.

    ``handler(connection)`` runs for each connection; when it returns the
    connection is closed (1000), when it raises it is closed with 1011.  Other
    keyword arguments go to ``loop.create_server`` (``ssl``, ``sock``,
    ``reuse_port``...).
    """
    if create_connection is not None:
        raise NotImplementedError("create_connection isn't supported by picows.websockets")
    options: dict[str, Any] = {
        "origins": origins,
        "extensions": server_extension_factories(compression, extensions),
        "subprotocols": subprotocols,
        "select_subprotocol": select_subprotocol,
        "process_request": process_request,
        "process_response": process_response,
        "server_header": server_header,
        "ping_interval": ping_interval,
        "ping_timeout": ping_timeout,
        "close_timeout": close_timeout,
        "max_size": normalize_max_size(max_size),
        "max_queue": max_queue,
        "write_limit": write_limit,
    }
    limits = [n for n in normalize_max_size(max_size) if n is not None]

    async def create_server(server: Server) -> asyncio.Server:
        return await ws_create_server(
            _Handshake(options, server),
            host,
            port,
            websocket_handshake_timeout=open_timeout,
            enable_auto_ping=False,
            enable_auto_pong=True,
            max_frame_size=min(limits) if limits else _UNLIMITED,
            **kwargs,
        )

    return Server(create_server, handler, resolve_logger(logger, "websockets.server"))


def broadcast(
    connections: Iterable[Any],
    message: DataLike,
    raise_exceptions: bool = False,
    *,
    text: Optional[bool] = None,
) -> None:
    """Send ``message`` to every open connection, without waiting (no backpressure).

    Connections that are not open, or are sending a fragmented message, are
    skipped; failures are logged, or raised together in an ExceptionGroup when
    ``raise_exceptions`` is set (Python 3.11+).
    """
    if isinstance(message, str):
        opcode = WSMsgType.BINARY if text is False else WSMsgType.TEXT
    elif isinstance(message, (bytes, bytearray, memoryview)):
        opcode = WSMsgType.TEXT if text else WSMsgType.BINARY
    else:
        raise TypeError("data must be str or bytes")
    if raise_exceptions and sys.version_info < (3, 11):
        raise ValueError("raise_exceptions requires at least Python 3.11")
    errors: list[Exception] = []
    for connection in connections:
        if connection.state is not State.OPEN:
            continue
        if connection._send_in_progress:
            error: Exception = ConcurrencyError("sending a fragmented message")
        else:
            try:
                connection._encode_and_send(opcode, message, True)
                continue
            except Exception as exc:
                error = RuntimeError("failed to write message")
                error.__cause__ = exc
        if raise_exceptions:
            errors.append(error)
        else:
            logger = getattr(connection, "logger", None) or resolve_logger(
                None, "websockets.server"
            )
            logger.warning(
                "skipped broadcast: %s", error if error.__cause__ is None else error.__cause__
            )
    if errors:
        group: Any = getattr(builtins, "ExceptionGroup")  # noqa: B009 -- 3.11+, checked above
        raise group("skipped broadcast", errors)


def _parse_basic_authorization(header: str) -> tuple[str, str]:
    """(username, password) of an ``Authorization: Basic`` value (RFC 7617 2)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        raise ValueError("unsupported authorization scheme")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("invalid basic authorization header") from None
    username, colon, password = decoded.partition(":")
    if not colon:
        raise ValueError("invalid basic authorization header")
    return username, password


def basic_auth(
    realm: str = "",
    credentials: Union[tuple[str, str], Iterable[tuple[str, str]], None] = None,
    check_credentials: Optional[Callable[[str, str], bool]] = None,
) -> Callable[[ServerHandshakeConnection, Request], Optional[Response]]:
    """A ``process_request`` that requires HTTP Basic authentication (RFC 7617).

    Give ``credentials`` (one (username, password) pair or several) or a
    ``check_credentials(username, password)`` function, not both.  Success sets
    ``connection.username``; failure answers 401 with ``WWW-Authenticate``.
    """
    if (credentials is None) == (check_credentials is None):
        raise ValueError("provide either credentials or check_credentials")
    if credentials is not None:
        pairs: list[Any] = [credentials] if _is_pair(credentials) else list(credentials)
        if not all(_is_pair(pair) for pair in pairs):
            raise TypeError(f"invalid credentials argument: {credentials}")
        table: dict[str, str] = dict(pairs)

        def check_table(username: str, password: str) -> bool:
            expected = table.get(username)
            # Constant time, so that timing does not reveal the password.
            return expected is not None and hmac.compare_digest(expected, password)

        check_credentials = check_table
    check = check_credentials
    assert check is not None

    def unauthorized(text: str) -> Response:
        response = plain_response(http.HTTPStatus.UNAUTHORIZED, text)
        response.headers["WWW-Authenticate"] = f'Basic realm="{realm}"'
        return response

    def process_request(
        connection: ServerHandshakeConnection, request: Request
    ) -> Optional[Response]:
        header = request.headers.get("Authorization")
        if header is None:
            return unauthorized("Missing credentials\n")
        try:
            username, password = _parse_basic_authorization(header)
        except ValueError:
            return unauthorized("Unsupported credentials\n")
        if not sync_hook(check(username, password), "check_credentials"):
            return unauthorized("Invalid credentials\n")
        connection.username = username
        return None

    return process_request


def _is_pair(value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], str)
    )
