"""The connection object of the ``websockets`` asyncio API, on picows' core.

A :class:`Connection` is the core's :class:`~picows.WSListener`: the core calls
``on_ws_frame`` for every frame (pings are answered by the core's auto-pong), and
the connection turns frames into messages for ``recv`` and messages into frames
for ``send``.  What a data frame may look like is decided by
:class:`picows._messages.MessageRules` (RFC 6455 5.2, 5.4, 8.1) and inflated by
:class:`~picows.websockets.extensions.permessage_deflate.PerMessageDeflate`; a
``WSProtocolError`` raised from ``on_ws_frame`` makes the core fail the connection
with its code.  Receiving and sending live in ``_receiving`` and ``_sending``;
this module holds the state, the closing handshake and keepalive.

Closing (RFC 6455 7): whoever closes first sends CLOSE; the other side echoes it.
Then the server closes TCP at once, the client waits for the server to do it
(7.1.1: "the underlying TCP connection, in most normal cases, SHOULD be closed
first by the server").  Once a CLOSE was sent or received, ``close_timeout`` bounds
the wait: then the TCP connection is aborted.
"""

from __future__ import annotations

import asyncio
import os
import uuid
import warnings
from collections import deque
from collections.abc import Awaitable, Mapping
from typing import Any, Callable, Optional, Union

from ..._close import WSCloseHandshake, truncate_reason
from ..._exceptions import WSProtocolError
from ..._frames import WSFrame
from ..._listener import WSListener
from ..._messages import MessageRules
from ..._transport import WSTransport
from ..._types import WSCloseCode, WSMsgType
from ..compat import CloseCode, Request, Response, State, plain_response
from ..exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidMessage,
    InvalidStatus,
)
from ..extensions.permessage_deflate import PerMessageDeflate
from ..frames import OK_CLOSE_CODES, Close
from ..typing import DataLike, MaxQueue, Subprotocol
from ._receiving import Receiving
from ._sending import Sending
from .utils import Logger, normalize_watermarks, resolve_logger

__all__ = [
    "ClientConnection",
    "Connection",
    "ServerConnection",
    "_PerMessageDeflate",
    "process_exception",
]

#: Upstream picows' name of the permessage-deflate codec (its frame-level API).
_PerMessageDeflate = PerMessageDeflate

_PONG = WSMsgType.PONG
_CLOSE = WSMsgType.CLOSE
_TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
# The ServerConnection attributes that handshake hooks may set (basic_auth, route).
_SET_BY_HOOKS = frozenset({"username", "handler", "handler_kwargs"})


def process_exception(exc: Exception) -> Optional[Exception]:
    """Whether ``async for ... in connect(...)`` retries after ``exc``.

    None (retry) for network errors and timeouts, an end of stream, and the
    server errors 500, 502, 503 and 504; ``exc`` itself (give up) otherwise.
    """
    if isinstance(exc, (OSError, asyncio.TimeoutError, EOFError)):
        return None
    if isinstance(exc, InvalidMessage) and isinstance(exc.__cause__, EOFError):
        return None
    if isinstance(exc, InvalidStatus) and int(exc.response.status_code) in _TRANSIENT_STATUSES:
        return None
    return exc


def _close_record(info: Any) -> Optional[Close]:
    if info is None:
        return None
    # 7.1.5: a CLOSE without a status code is reported as 1005.
    code = int(info.code) or CloseCode.NO_STATUS_RCVD
    return Close(CloseCode(code), info.reason)


class Connection(Receiving, Sending, WSListener):
    """A WebSocket connection with websockets' API: ``recv``, ``send``, ``close``...

    Created by :func:`~picows.websockets.connect` and
    :func:`~picows.websockets.serve`, not by applications.
    """

    def __init__(
        self,
        *,
        request: Request,
        response: Response,
        subprotocol: Optional[Subprotocol],
        permessage_deflate: Optional[PerMessageDeflate],
        ping_interval: Optional[float],
        ping_timeout: Optional[float],
        close_timeout: Optional[float],
        max_queue: MaxQueue,
        write_limit: Union[int, tuple[int, Optional[int]]],
        max_message_size: Optional[int],
        max_frame_size: Optional[int],
        logger: Any,
    ) -> None:
        self.id = uuid.uuid4()
        self.logger: Logger = resolve_logger(logger, self._default_logger)
        self.request = request
        self.response = response
        self._subprotocol = subprotocol
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.latency = 0.0
        self.transport: Optional[WSTransport] = None
        self.loop = asyncio.get_running_loop()
        self._closed_waiter: asyncio.Future[None] = self.loop.create_future()
        self._close_exc: Optional[ConnectionClosed] = None
        self._close_timer: Optional[asyncio.TimerHandle] = None
        self._failed = False
        self._keepalive_task: Optional[asyncio.Task[None]] = None
        self._pending_pings: dict[bytes, tuple[asyncio.Future[float], float]] = {}
        self._write_limit = write_limit
        # Receiving: what a data frame may be, how to inflate it, the message queue.
        self._deflate = permessage_deflate
        self._rules = MessageRules(rsv1_allowed=permessage_deflate is not None)
        self._max_message_size = max_message_size
        self._max_frame_size = max_frame_size
        self._message_size = 0
        self._queue: deque[Any] = deque()
        self._queue_high, self._queue_low = normalize_watermarks(max_queue)
        self._reading_paused = False
        self._recv_waiter: Optional[asyncio.Future[None]] = None
        self._recv_busy = False
        # Sending: fragmented messages go one at a time; writes wait for drain.
        self._send_in_progress = False
        self._send_turn: deque[asyncio.Future[None]] = deque()
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []

    _default_logger = "websockets.client"

    # -- the core's callbacks (WSListener) ------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        limit = self._write_limit
        high, low = limit if isinstance(limit, tuple) else (limit, None)
        transport.underlying_transport.set_write_buffer_limits(high=high, low=low)
        if self.ping_interval is not None:
            self._keepalive_task = self.loop.create_task(self._keepalive())

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type < 0x8:
            if self._failed:
                return  # the connection is failing: later frames don't count
            try:
                self._data_frame(frame, msg_type)
            except WSProtocolError as exc:
                # The core fails the connection with the error's code (7.1.7): its
                # CLOSE, a half-close, and the end of TCP once the peer has stopped
                # sending, so that no reset destroys the CLOSE (WSProtocol._after_failure).
                self.logger.debug("failing the connection: %s", exc)
                self._failed = True
                raise
        elif msg_type is _PONG:
            self._acknowledge_pings(frame.get_payload_as_bytes())
        elif msg_type is _CLOSE:
            self._close_frame(transport, frame)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        exc = self._close_exc = self._make_close_exc(transport.close_handshake)
        if not self._closed_waiter.done():
            self._closed_waiter.set_result(None)
        self._wake_receiver()
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
            self._keepalive_task = None
        for waiter, _ in self._pending_pings.values():
            if not waiter.done():
                waiter.set_exception(exc)
            waiter.cancel()  # done: only stops asyncio logging an unretrieved error
        self._pending_pings.clear()
        self._wake_senders()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- closing ----------------------------------------------------------------------

    def _close_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if not transport.is_close_frame_sent:
            # 5.5.1: "If an endpoint receives a Close frame and did not previously
            # send a Close frame, the endpoint MUST send a Close frame in response.
            # (When sending a Close frame in response, the endpoint typically
            # echos the status code it received.)"
            transport.send_close(frame.get_close_code(), frame.get_close_message())
        self._closing_handshake_done(transport)

    def _closing_handshake_done(self, transport: WSTransport) -> None:
        if transport.is_client_side:
            self._arm_close_timer()  # 7.1.1: wait for the server to close TCP
        else:
            transport.disconnect()

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and self.close_timeout is not None:
            self._close_timer = self.loop.call_later(self.close_timeout, self._close_timed_out)

    def _close_timed_out(self) -> None:
        self._close_timer = None
        if self.transport is not None:
            self.transport.disconnect(graceful=False)

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (7.1.7): CLOSE with ``code``, then close TCP."""
        transport = self.transport
        assert transport is not None
        transport.send_close(code, truncate_reason(reason))
        transport.disconnect()
        self._arm_close_timer()  # a peer that never reads can't hold the flush

    def _make_close_exc(self, handshake: Optional[WSCloseHandshake]) -> ConnectionClosed:
        if handshake is None:
            return ConnectionClosedError(None, None, None)
        rcvd, sent = _close_record(handshake.recv), _close_record(handshake.sent)
        order = handshake.recv_then_sent if rcvd is not None and sent is not None else None
        if rcvd is not None and sent is not None:
            if rcvd.code in OK_CLOSE_CODES and sent.code in OK_CLOSE_CODES:
                return ConnectionClosedOK(rcvd, sent, order)
        return ConnectionClosedError(rcvd, sent, order)

    async def _raise_closed(self, cause: Optional[BaseException] = None) -> Any:
        """Wait until the connection is closed, then raise its ConnectionClosed."""
        await asyncio.shield(self._closed_waiter)
        assert self._close_exc is not None
        raise self._close_exc from cause

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Perform the closing handshake and wait until the TCP connection is closed.

        Idempotent.  Closing while a fragmented message is being sent fails the
        connection with 1011 instead (the message can't be finished).
        """
        transport = self.transport
        if transport is None or transport.is_disconnected:
            return
        if self._send_in_progress:
            self._fail(CloseCode.INTERNAL_ERROR, "close during fragmented message")
        elif not transport.is_close_frame_sent:
            transport.send_close(code, truncate_reason(reason))  # 5.5: 125 bytes at most
            self._arm_close_timer()
        await asyncio.shield(self._closed_waiter)

    async def wait_closed(self) -> None:
        """Wait until the connection is closed (closing handshake and TCP)."""
        await asyncio.shield(self._closed_waiter)

    # -- ping / pong and keepalive ----------------------------------------------------

    async def ping(self, data: Optional[DataLike] = None) -> asyncio.Future[float]:
        """Send a PING (5.5.2); the returned future resolves with the latency (s)
        when the matching PONG arrives.  Without ``data``, 4 random bytes."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            payload = bytes(data)
        elif isinstance(data, str):
            payload = data.encode("utf-8")
        elif data is None:
            payload = os.urandom(4)
            while payload in self._pending_pings:
                payload = os.urandom(4)
        else:
            raise TypeError(f"ping payload must be str or bytes-like, not {type(data).__name__}")
        if not self._is_open():
            await self._raise_closed()
        if payload in self._pending_pings:
            raise ConcurrencyError("already waiting for a pong with the same data")
        waiter: asyncio.Future[float] = self.loop.create_future()
        self._pending_pings[payload] = (waiter, self.loop.time())
        assert self.transport is not None
        self.transport.send_ping(payload)
        return waiter

    async def pong(self, data: DataLike = b"") -> None:
        """Send an unsolicited PONG (5.5.3), a one-way heartbeat."""
        if isinstance(data, str):
            payload = data.encode("utf-8")
        elif isinstance(data, (bytes, bytearray, memoryview)):
            payload = bytes(data)
        else:
            raise TypeError(f"pong payload must be str or bytes-like, not {type(data).__name__}")
        if not self._is_open():
            await self._raise_closed()
        assert self.transport is not None
        self.transport.send_pong(payload)

    def _acknowledge_pings(self, data: bytes) -> None:
        if data not in self._pending_pings:
            return  # unsolicited pong
        now = self.loop.time()
        # 5.5.3: a PONG may answer only the latest PING: it acknowledges the older
        # ones too.
        acknowledged = []
        for payload, (waiter, sent_at) in self._pending_pings.items():
            acknowledged.append(payload)
            if not waiter.done():
                waiter.set_result(now - sent_at)
            if payload == data:
                self.latency = now - sent_at
                break
        for payload in acknowledged:
            del self._pending_pings[payload]

    async def _keepalive(self) -> None:
        assert self.ping_interval is not None
        latency = 0.0
        try:
            while True:
                await asyncio.sleep(max(self.ping_interval - latency, 0))
                waiter = await self.ping()
                if self.ping_timeout is None:
                    continue
                try:
                    latency = await asyncio.wait_for(asyncio.shield(waiter), self.ping_timeout)
                except asyncio.TimeoutError:
                    self.logger.debug("keepalive ping timed out")
                    self._fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                    return
        except ConnectionClosed:
            pass
        except Exception:
            self.logger.error("keepalive ping failed", exc_info=True)

    # -- state --------------------------------------------------------------------------

    def _is_open(self) -> bool:
        transport = self.transport
        return (
            transport is not None
            and transport.close_handshake is None
            and not transport.is_disconnected
        )

    @property
    def state(self) -> State:
        transport = self.transport
        if transport is None:
            return State.CONNECTING
        if transport.is_disconnected:
            return State.CLOSED
        if transport.close_handshake is not None or transport.underlying_transport.is_closing():
            return State.CLOSING
        return State.OPEN

    @property
    def subprotocol(self) -> Optional[Subprotocol]:
        return self._subprotocol

    @property
    def local_address(self) -> Any:
        assert self.transport is not None
        return self.transport.underlying_transport.get_extra_info("sockname")

    @property
    def remote_address(self) -> Any:
        assert self.transport is not None
        return self.transport.underlying_transport.get_extra_info("peername")

    def _close_info(self) -> Optional[Close]:
        transport = self.transport
        handshake = transport.close_handshake if transport is not None else None
        if handshake is None:
            return None
        return _close_record(handshake.recv) or _close_record(handshake.sent)

    @property
    def close_code(self) -> Optional[int]:
        """The code of the CLOSE received, else of the CLOSE sent, else None."""
        info = self._close_info()
        return None if info is None else info.code

    @property
    def close_reason(self) -> Optional[str]:
        info = self._close_info()
        return None if info is None else info.reason

    @property
    def open(self) -> bool:
        """Legacy API: ``state is State.OPEN``."""
        warnings.warn("use state is State.OPEN instead", DeprecationWarning, stacklevel=2)
        return self._is_open()

    @property
    def closed(self) -> bool:
        """Legacy API: ``state is State.CLOSED``."""
        warnings.warn("use state is State.CLOSED instead", DeprecationWarning, stacklevel=2)
        return self.transport is not None and self.transport.is_disconnected

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        await self.close(
            CloseCode.NORMAL_CLOSURE if exc_type is None else WSCloseCode.INTERNAL_ERROR
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.state.name}>"


class ClientConnection(Connection):
    """The client side of a connection, returned by :func:`~picows.websockets.connect`."""


class ServerConnection(Connection):
    """The server side of a connection, handed to the handler of
    :func:`~picows.websockets.serve`."""

    _default_logger = "websockets.server"

    def __init__(
        self, server: Any, *, username: Optional[str] = None, hooked: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.server = server
        #: Set by ``basic_auth`` when the client authenticated.
        self.username = username
        #: Set by ``route``: the endpoint that handles this connection, and the
        #: values its URL converters captured (its keyword arguments).
        self.handler: Optional[Callable[..., Awaitable[None]]] = None
        self.handler_kwargs: Mapping[str, Any] = {}
        if hooked is not None:
            # What the handshake hooks set on their connection object (username,
            # the routed handler, the application's own attributes) is seen by the
            # handler here, as on websockets' single connection object.
            for name, value in vars(hooked).items():
                if name in _SET_BY_HOOKS or not hasattr(self, name):
                    setattr(self, name, value)

    def on_ws_connected(self, transport: WSTransport) -> None:
        super().on_ws_connected(transport)
        self.server.start_connection_handler(self)

    def respond(self, status: int, text: str) -> Response:
        """A plain-text HTTP response (for ``process_request``-like code)."""
        return plain_response(status, text)
