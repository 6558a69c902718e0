"""``WSProtocol``: the asyncio glue between a socket and the Sans-I/O connection.

Three steps, as in every Sans-I/O design: the bytes that arrive go into the
connection's buffer (``get_buffer`` / ``buffer_updated``), the connection says what
happened (the handshake's request or response, then frames), and what it wants sent is
written to the transport.  Every rule of RFC 6455 lives in ``_connection`` (and the
modules it uses); this module adds only what needs asyncio or the application:

* the listener's callbacks, the server's router, and what their exceptions do;
* time: the handshake timeout, the close timeout, auto-ping, round-trip times, and
  giving grown buffers back after a second of quiet;
* closing TCP: shortly after a failure's CLOSE, or when a refused request is answered.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from typing import Any, Callable, Optional, cast

from . import _backend
from ._backend import BACKEND
from ._connection import Connection, State
from ._exceptions import WSHandshakeError, WSProtocolError
from ._frames import WSFrame
from ._handshake import (
    ClientHandshake,
    RequestTooLargeError,
    ServerHandshake,
    UnsupportedVersionError,
    upgrade_required_response,
)
from ._http11 import WSUpgradeRequest, WSUpgradeResponse, WSUpgradeResponseWithListener
from ._listener import WSListener, overrides
from ._options import (
    ConnectionOptions,
    Logger,
    connection_logger,
    error_body,
    set_nodelay,
)
from ._transport import WSTransport
from ._types import PICOWS_DEBUG_LL, WSAutoPingStrategy, WSCloseCode

__all__ = ["CLOSE_TIMEOUT", "ConnectionOptions", "WSProtocol"]

_CONNECTING = State.CONNECTING

#: After we send CLOSE, the TCP connection ends within this many seconds, whether or
#: not the peer answers (websockets waits as long).  7.1.1: the server closes first;
#: a peer that never answers, or never closes, must not hold the connection forever.
CLOSE_TIMEOUT = 10.0

# Upstream waits this long between sending a failure CLOSE and dropping the TCP
# connection, so the CLOSE has a chance to reach the peer before a reset.
_FAIL_DISCONNECT_DELAY = 0.01

# After failing a connection we half-close it and drop what still arrives: we close
# once nothing came for _FAIL_QUIET seconds, and after _FAIL_LINGER_TIMEOUT at most
# (WSProtocol._after_failure).
_FAIL_QUIET = 0.1
_FAIL_LINGER_TIMEOUT = 1.0

# How long a refused client may keep sending when there is no handshake timeout.
_LINGER_TIMEOUT = 5.0

# A receive buffer that grew for a big frame goes back to its initial size once the
# connection has been quiet for this long (Connection.shrink_buffers).
_SHRINK_DELAY = 1.0


class WSProtocol(asyncio.BufferedProtocol):
    """One connection, client or server side: asyncio's callbacks, fed to a Connection."""

    def __init__(
        self,
        options: ConnectionOptions,
        *,
        client_handshake: Optional[ClientHandshake] = None,
        client_listener_factory: Optional[Callable[..., Any]] = None,
        server_listener_factory: Optional[Callable[[WSUpgradeRequest], Any]] = None,
    ) -> None:
        self._options = options
        self._loop = asyncio.get_running_loop()
        self._is_client = client_handshake is not None
        self._client_handshake = client_handshake
        self._conn = conn = Connection(
            client_handshake if client_handshake is not None else ServerHandshake(),
            max_frame_size=options.max_frame_size,
            read_buffer_init_size=options.read_buffer_init_size,
            auto_pong=options.enable_auto_pong,
            backend=_backend.ACTIVE,
        )
        self._reader = conn.reader
        self._client_listener_factory = client_listener_factory
        self._server_listener_factory = server_listener_factory
        self._logger: Logger = options.logger
        self._underlying: Optional[asyncio.Transport] = None
        self._write: Callable[[bytes], None] = lambda data: None
        #: ``buffer_updated`` once the websocket is open (_frame_dispatcher).
        self._process_frames: Callable[[int], None] = lambda nbytes: None
        self._handshake_timer: Optional[asyncio.TimerHandle] = None
        self._close_timer: Optional[asyncio.TimerHandle] = None
        self._dropped = False  # bytes came after the connection failed (_linger)
        self._shrink_timer: Optional[asyncio.TimerHandle] = None
        self._lingering = False
        #: Resolved with (transport, listener) when the client handshake completes.
        self.handshake_done: asyncio.Future[tuple[WSTransport, WSListener]] = (
            self._loop.create_future()
        )
        self._disconnected: asyncio.Future[None] = self._loop.create_future()
        self.transport: Optional[WSTransport] = None
        self.listener: Optional[WSListener] = None
        # Auto-ping and round-trip measurement.
        self._last_data_time = 0.0
        self._track_data_time = False
        self._auto_ping_task: Optional[asyncio.Task[None]] = None
        self._pong_waiter: Optional[asyncio.Future[None]] = None
        self._rtt_running = False
        self._rtt_done: Optional[asyncio.Future[None]] = None

    # -- asyncio.BaseProtocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack alike.
        transport = cast(asyncio.Transport, transport)
        self._underlying = transport
        self._write = transport.write
        self._logger = connection_logger(self._options.logger, transport)
        set_nodelay(transport)
        timeout = self._options.websocket_handshake_timeout
        if timeout is not None:
            # The client fails ws_connect with a TimeoutError; the server quietly drops
            # a peer that does not finish the upgrade.
            self._handshake_timer = self._loop.call_later(timeout, self._handshake_timed_out)
        if self._is_client:
            transport.write(self._conn.request_bytes())
        peer = transport.get_extra_info("peername")
        self._logger.log(PICOWS_DEBUG_LL, "connection made: %s", peer)

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        self._logger.info("websocket handshake timeout: disconnecting")
        if self._is_client and not self.handshake_done.done():
            self.handshake_done.set_exception(asyncio.TimeoutError("websocket handshake timeout"))
        assert self._underlying is not None
        self._underlying.abort()

    def get_buffer(self, sizehint: int) -> memoryview:
        # Once the websocket is open, the frame reader's own get_buffer is bound on
        # the instance instead (see _start_websocket): one call less per read.
        return self._conn.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        conn = self._conn
        if conn.state is _CONNECTING:
            self._handshake_received(nbytes)
        elif self.transport is not None:
            self._process_frames(nbytes)
        else:
            self._reader.end += nbytes  # no websocket (a refused request): dropped

    def eof_received(self) -> Optional[bool]:
        try:
            self._conn.receive_eof()
        except WSHandshakeError as exc:
            if not self.handshake_done.done():
                self.handshake_done.set_exception(exc)
        return False  # let asyncio close the transport

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._conn.connection_lost()
        for timer in (self._handshake_timer, self._close_timer, self._shrink_timer):
            if timer is not None:
                timer.cancel()
        if self._auto_ping_task is not None:
            self._auto_ping_task.cancel()
        for waiter in (self._pong_waiter, self._rtt_done):
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionResetError("connection lost"))
                waiter.exception()  # retrieved: nobody may be waiting any more
        if self._is_client and not self.handshake_done.done():
            # Never a silent half-success: the caller of ws_connect gets an error.
            self.handshake_done.set_exception(
                ConnectionResetError("connection closed before the websocket handshake completed")
                if exc is None
                else exc
            )
        transport = self.transport
        if transport is None:
            return
        transport.is_disconnected = True
        self._logger.info("Disconnected")
        assert self.listener is not None
        try:
            self.listener.on_ws_disconnected(transport)
        except Exception as callback_exc:
            self._logger.exception("Unhandled exception in on_ws_disconnected")
            if self._conn.failure is None:
                self._conn.failure = callback_exc
        if not self._disconnected.done():
            self._disconnected.set_result(None)

    def pause_writing(self) -> None:
        listener = self.listener
        if listener is None or not overrides(listener, "pause_writing"):
            self._logger.warning(
                "Transport buffer is over the high watermark; override "
                "WSListener.pause_writing/resume_writing to react to backpressure"
            )
            return
        self._call_listener(listener.pause_writing)

    def resume_writing(self) -> None:
        listener = self.listener
        if listener is not None and overrides(listener, "resume_writing"):
            self._call_listener(listener.resume_writing)

    # -- the opening handshake ----------------------------------------------------

    def _handshake_received(self, nbytes: int) -> None:
        if self._lingering:
            return  # see _close_lingering
        underlying = self._underlying
        assert underlying is not None
        try:
            event = self._conn.handshake_received(nbytes)
        except RequestTooLargeError as exc:
            self._logger.info("Closing connection: %s", exc)
            self._conn.abandon()
            self._close_lingering()
            return
        except WSHandshakeError as exc:
            if self._is_client:
                if not self.handshake_done.done():
                    self.handshake_done.set_exception(exc)
                underlying.close()
            else:
                self._reject(WSUpgradeResponse.create_error_response(400, error_body(exc)))
            return
        if event is None:
            return
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        if isinstance(event, WSUpgradeResponse):
            self._client_opened(event)
        else:
            self._route_request(event)

    def _client_opened(self, response: WSUpgradeResponse) -> None:
        handshake = self._client_handshake
        assert handshake is not None and self._underlying is not None
        if self.handshake_done.done():
            return
        try:
            listener = self._make_client_listener(handshake.request, response)
        except Exception as exc:
            self.handshake_done.set_exception(exc)
            self._underlying.abort()
            return
        self._start_websocket(handshake.request, response, listener)

    def _make_client_listener(
        self, request: WSUpgradeRequest, response: WSUpgradeResponse
    ) -> WSListener:
        factory = self._client_listener_factory
        assert factory is not None
        try:
            params = inspect.signature(factory).parameters.values()
            # Only parameters that can receive (request, response) positionally count:
            # a factory with keyword-only options is a zero-argument factory.
            kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            positional = [p for p in params if p.kind in kinds]
            takes_two = len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)
        except (TypeError, ValueError):  # builtins and C callables
            takes_two = False
        listener = factory(request, response) if takes_two else factory()
        if not isinstance(listener, WSListener):
            raise TypeError(
                f"ws_listener_factory must return a WSListener, got {type(listener).__name__}"
            )
        return listener

    def _route_request(self, request: WSUpgradeRequest) -> None:
        """The factory is a router: its answer decides the HTTP response."""
        factory = self._server_listener_factory
        assert factory is not None
        try:
            routed = factory(request)
            if routed is None:
                self._reject(WSUpgradeResponse.create_error_response(404, b"404 Not Found"))
                return
            if isinstance(routed, WSUpgradeResponseWithListener):
                response, listener = routed.response, routed.listener
            elif isinstance(routed, WSListener):
                response, listener = WSUpgradeResponse.create_101_response(), routed
            else:
                raise TypeError(
                    "ws_listener_factory must return a WSListener, a "
                    f"WSUpgradeResponseWithListener or None, got {type(routed).__name__}"
                )
        except Exception as exc:
            self._logger.exception("ws_listener_factory raised an exception")
            self._reject(WSUpgradeResponse.create_error_response(500, error_body(exc)))
            return
        if response.status != 101:
            self._reject(response)
            return
        try:
            answer = self._conn.accept(request, response)
        except UnsupportedVersionError:
            self._reject(upgrade_required_response())
            return
        except WSHandshakeError as exc:
            self._reject(WSUpgradeResponse.create_error_response(400, error_body(exc)))
            return
        assert self._underlying is not None and listener is not None
        self._underlying.write(answer)
        self._start_websocket(request, response, listener)

    def _reject(self, response: WSUpgradeResponse) -> None:
        """Send a non-101 response and close: no websocket on this connection."""
        assert self._underlying is not None
        self._logger.info("Upgrade refused with %s", int(response.status))
        self._underlying.write(self._conn.reject(response))
        self._close_lingering()

    def _close_lingering(self) -> None:
        """Close a connection whose request we will not serve, without losing our answer.

        Closing a socket that still has unread input makes the kernel send a reset,
        and a reset can destroy the response (or the EOF) before the client reads
        it.  So, as RFC 9112 9.6 advises, we half-close, drop whatever the client
        still sends, and close when it does; a client that never does is cut off
        after the handshake timeout (or _LINGER_TIMEOUT, if there is none).
        """
        underlying = self._underlying
        assert underlying is not None
        self._lingering = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        if not underlying.can_write_eof():  # TLS: close_notify, then the socket
            underlying.close()
            return
        underlying.write_eof()
        timeout = self._options.websocket_handshake_timeout
        self._handshake_timer = self._loop.call_later(
            _LINGER_TIMEOUT if timeout is None else timeout, underlying.abort
        )

    def _start_websocket(
        self, request: WSUpgradeRequest, response: WSUpgradeResponse, listener: WSListener
    ) -> None:
        assert self._underlying is not None
        conn = self._conn
        options = self._options
        transport = WSTransport(
            conn,
            self,
            self._underlying,
            request,
            response,
            self._disconnected,
            self._logger,
        )
        self.transport = transport
        self.listener = listener
        self._log_established()
        if options.enable_auto_ping:
            self._track_data_time = options.auto_ping_strategy == WSAutoPingStrategy.PING_WHEN_IDLE
            self._last_data_time = self._loop.time()
            self._auto_ping_task = self._loop.create_task(self._auto_ping_loop())
        if self._is_client:
            self.handshake_done.set_result((transport, listener))
        try:
            listener.on_ws_connected(transport)
        except Exception as exc:
            self._listener_failed(exc, "on_ws_connected", always_disconnect=True)
        self._process_frames = self._frame_dispatcher()
        if conn.buffered:  # frames that came with the handshake
            self._process_frames(0)
        # The hot path from now on (asyncio looks these up on the instance; uvloop and
        # TLS keep the class methods, which lead to the same code).  asyncio's own
        # socket transports never release the view they get: they may have the
        # reader's own (get_read_buffer).
        reader = self._reader
        asyncio_owned = type(self._underlying).__module__ == "asyncio.selector_events"
        self.get_buffer = (  # type: ignore[method-assign]
            reader.get_read_buffer if asyncio_owned else reader.get_buffer
        )
        self.buffer_updated = self._process_frames  # type: ignore[method-assign, assignment]

    def _log_established(self) -> None:
        assert self._underlying is not None
        sock = self._underlying.get_extra_info("socket")
        if sock is None:
            self._logger.info("WS connection established (backend=%s)", BACKEND)
            return

        def option(level: int, name: str) -> Any:
            try:
                return sock.getsockopt(level, getattr(socket, name))
            except (AttributeError, OSError):
                return None

        details = (
            f"recvbuf={option(socket.SOL_SOCKET, 'SO_RCVBUF')}, "
            f"sendbuf={option(socket.SOL_SOCKET, 'SO_SNDBUF')}, "
            f"quickack={option(socket.IPPROTO_TCP, 'TCP_QUICKACK')}, "
            f"nodelay={option(socket.IPPROTO_TCP, 'TCP_NODELAY')}, mask_impl={BACKEND}"
        )
        if self._is_client:
            self._logger.info(
                "WS connection established: %s -> %s, %s",
                self._underlying.get_extra_info("sockname"),
                self._underlying.get_extra_info("peername"),
                details,
            )
        else:
            peer = self._underlying.get_extra_info("peername")
            self._logger.info("New connection accepted: %s, %s", peer, details)
        self._logger.debug("picows backend: %s", BACKEND)

    # -- frames -------------------------------------------------------------------

    def _frame_dispatcher(self) -> Callable[[int], None]:
        """The open websocket's ``buffer_updated(nbytes)``: ``nbytes`` more arrived;
        take every frame out and dispatch it.

        The loop is Connection.next_frame's, inline (one call less per frame on the
        hot path): the reader parses, the connection rules on control frames and,
        when asked, on data frames; tests/sansio/test_connection.py checks both
        agree.  A closure over what never changes once the websocket is open, so
        that a read looks none of it up again.
        """
        reader = self._reader
        conn = self._conn
        transport = self.transport
        listener = self.listener
        assert transport is not None and listener is not None
        next_frame = reader.next_frame
        pending = conn.pending
        checks = conn.checks_messages
        on_ws_frame = listener.on_ws_frame
        # Any received bytes count as activity for PING_WHEN_IDLE.
        track_data_time = self._track_data_time
        loop_time = self._loop.time

        def process_frames(nbytes: int = 0) -> None:
            reader.end += nbytes
            if track_data_time:
                self._last_data_time = loop_time()
            while True:
                try:
                    frame = next_frame()
                    if frame is None:
                        break
                    if frame.msg_type >= 8:
                        if not conn.control_frame(frame):
                            self._flush()  # the PONG auto-pong answered with, in order
                            continue
                    elif checks:
                        conn.check_data_frame(frame)
                except WSProtocolError as exc:
                    conn.fail(exc)
                    self._logger.info("Protocol error, disconnecting: %s", exc)
                    self._after_failure()
                    return
                if pending:
                    self._flush()
                if self._pong_waiter is not None and self._is_awaited_pong(listener, frame):
                    continue
                try:
                    on_ws_frame(transport, frame)
                except Exception as exc:
                    self._listener_failed(exc, "on_ws_frame")
                if not frame.tail_size:
                    # Nothing else buffered: spare the next_frame() call that says so
                    # (most reads hold exactly one frame).
                    break
            if reader.grown and self._shrink_timer is None:
                # The receive buffer grew for a big frame: give it back once quiet.
                self._shrink_timer = self._loop.call_later(_SHRINK_DELAY, self._shrink_when_idle)

        return process_frames

    def _is_awaited_pong(self, listener: WSListener, frame: WSFrame) -> bool:
        try:
            is_pong = listener.is_user_specific_pong(frame)
        except Exception as exc:
            self._listener_failed(exc, "is_user_specific_pong", always_disconnect=True)
            return True
        if is_pong:
            self.pong_received()
        return bool(is_pong)

    def _listener_failed(
        self, exc: Exception, callback: str, always_disconnect: bool = False
    ) -> None:
        if not (
            always_disconnect
            or self._options.disconnect_on_exception
            or isinstance(exc, WSProtocolError)
        ):
            self._logger.exception("Unhandled exception in %s", callback)
            return
        if self._is_client:
            # The client re-raises it from wait_disconnected: no traceback here.
            self._logger.info("Exception in %s, disconnecting: %r", callback, exc)
        elif isinstance(exc, WSProtocolError):
            # Raising it is the documented way to choose the CLOSE: no traceback.
            self._logger.info("%s chose to close with %s: %s", callback, exc.code, exc)
        else:
            self._logger.exception("Unhandled exception in %s, disconnecting", callback)
        self._conn.fail(exc)
        self._after_failure()

    def _after_failure(self) -> None:
        """The connection failed (7.1.7): send its CLOSE, then end TCP.

        Closing a socket that still has unread input makes the kernel send a reset,
        which can destroy our CLOSE before the peer reads it.  So, where the transport
        can, we half-close (the peer reads the CLOSE, then EOF) and drop whatever still
        arrives; we close when the peer does, or once it has sent nothing for
        _FAIL_QUIET seconds, and within _FAIL_LINGER_TIMEOUT whatever it does.
        """
        self._flush()
        underlying = self._underlying
        if underlying is None or underlying.is_closing():
            return
        if self._close_timer is not None:
            self._close_timer.cancel()
        if not underlying.can_write_eof():  # TLS: close_notify does this job there
            self._close_timer = self._loop.call_later(_FAIL_DISCONNECT_DELAY, self._close_transport)
            return
        underlying.write_eof()
        self._process_frames = self._drop  # also reached by uvloop and TLS
        self.buffer_updated = self._drop  # type: ignore[method-assign]
        deadline = self._loop.time() + _FAIL_LINGER_TIMEOUT
        self._close_timer = self._loop.call_later(_FAIL_QUIET, self._linger, deadline)

    def _drop(self, nbytes: int) -> None:
        """``buffer_updated`` once the connection failed: the bytes are dropped."""
        self._dropped = True
        self._reader.end += nbytes
        self._reader.discard_rest()

    def _linger(self, deadline: float) -> None:
        if self._dropped and self._loop.time() < deadline:
            self._dropped = False  # the peer is still sending: wait for it to stop
            self._close_timer = self._loop.call_later(_FAIL_QUIET, self._linger, deadline)
        else:
            self._close_transport()

    def _flush(self) -> None:
        """Write what the connection decided to send on its own, in order."""
        pending = self._conn.pending
        underlying = self._underlying
        if underlying is not None and not underlying.is_closing():
            for data in pending:
                self._write(data)
        pending.clear()

    def _close_transport(self) -> None:
        if self._underlying is not None:
            self._underlying.close()

    def _call_listener(self, method: Callable[[], None]) -> None:
        try:
            method()
        except Exception:
            self._logger.exception("Unhandled exception in %s", method.__name__)

    # -- timers -------------------------------------------------------------------

    def close_sent(self) -> None:
        """Our CLOSE went out: the TCP connection must end within CLOSE_TIMEOUT."""
        if self._close_timer is None and self._underlying is not None:
            self._close_timer = self._loop.call_later(CLOSE_TIMEOUT, self._close_timed_out)

    def _close_timed_out(self) -> None:
        self._logger.info(
            "No end of the connection within %gs of our CLOSE: disconnecting",
            CLOSE_TIMEOUT,
        )
        self._abort_hard()

    def _shrink_when_idle(self) -> None:
        self._shrink_timer = None
        if not self._conn.shrink_buffers():
            # Still busy with a big frame: look again later.
            self._shrink_timer = self._loop.call_later(_SHRINK_DELAY, self._shrink_when_idle)

    # -- ping / pong --------------------------------------------------------------

    def pong_received(self) -> None:
        waiter = self._pong_waiter
        if waiter is not None:
            self._pong_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _send_probe(self) -> asyncio.Future[None]:
        """Send the user-specific ping; the future resolves with its pong."""
        assert self.listener is not None and self.transport is not None
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._pong_waiter = waiter
        self.listener.send_user_specific_ping(self.transport)
        return waiter

    async def _auto_ping_loop(self) -> None:
        options = self._options
        idle_timeout = options.auto_ping_idle_timeout
        reply_timeout = options.auto_ping_reply_timeout
        when_idle = options.auto_ping_strategy == WSAutoPingStrategy.PING_WHEN_IDLE
        loop = self._loop
        try:
            while self.transport is not None and not self.transport.is_disconnected:
                if when_idle:
                    delay = self._last_data_time + idle_timeout - loop.time()
                    while delay > 0:
                        await asyncio.sleep(delay)
                        delay = self._last_data_time + idle_timeout - loop.time()
                else:
                    await asyncio.sleep(idle_timeout)
                while self._rtt_running and self._rtt_done is not None:
                    await asyncio.shield(self._rtt_done)
                if not self._conn.can_send:
                    return
                try:
                    waiter = self._send_probe()
                except Exception as exc:
                    self._listener_failed(exc, "send_user_specific_ping", always_disconnect=True)
                    return
                try:
                    await asyncio.wait_for(asyncio.shield(waiter), reply_timeout)
                except asyncio.TimeoutError:
                    self._no_pong(reply_timeout)
                    return
        except (asyncio.CancelledError, ConnectionResetError):
            pass

    def _no_pong(self, reply_timeout: float) -> None:
        self._logger.info("Disconnecting: no PONG within %s second(s)", reply_timeout)
        data = self._conn.send_close(
            WSCloseCode.GOING_AWAY,
            f"peer has not replied to ping/heartbeat request within {reply_timeout:g} second(s)",
        )
        if data is not None:
            self._write(data)
        self._loop.call_later(_FAIL_DISCONNECT_DELAY, self._abort_hard)

    def _abort_hard(self) -> None:
        if self._underlying is not None:
            self._underlying.abort()

    async def measure_roundtrip_time(self, rounds: int) -> list[float]:
        if self.transport is None or self.transport.is_disconnected:
            raise ConnectionResetError("the connection is closed")
        # An auto-ping in flight gets its pong first.
        while self._pong_waiter is not None:
            await asyncio.shield(self._pong_waiter)
        self._rtt_running = True
        self._rtt_done = self._loop.create_future()
        results: list[float] = []
        try:
            for _ in range(rounds):
                # Not loop.time(): uvloop's clock has millisecond resolution and is
                # cached per iteration, so loopback RTTs would come out as 0.0.
                started = time.perf_counter()
                await self._send_probe()
                results.append(time.perf_counter() - started)
        finally:
            self._rtt_running = False
            if not self._rtt_done.done():
                self._rtt_done.set_result(None)
        return results
