"""``WSTransport``: the user's handle on one connection, and the send path.

Every send method asks the connection (``_connection``, Sans-I/O) for the frame, which
also applies its rules (nothing after our CLOSE, control frames of 125 bytes at most,
close codes that may be sent), and hands the bytes to the asyncio transport, which
never blocks: what the socket cannot take now is queued by asyncio and written later.
``send`` inlines the connection's checks and frame building for data frames, the one
hot path; ``tests/asyncio/test_send_inline.py`` checks that it sends what the
connection would.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import struct
import threading
from threading import get_ident
from typing import Any, Optional, Protocol, Union

from ._backend import SEND_BUFFER_MIN, WRITELINES_MIN
from ._close import WSCloseHandshake
from ._connection import Connection, State
from ._header import (
    FIN_BIT,
    LENGTH_16,
    MAX_HEADER_SIZE,
    MAX_LENGTH_16,
    OPCODE_BITS,
    encode_header,
    first_byte,
)
from ._http11 import WSUpgradeRequest, WSUpgradeResponse
from ._types import PICOWS_DEBUG_LL, WSCloseCode, WSMsgType

__all__ = ["WSTransport"]

_os_write = os.write
# Byte 0, then the 7-bit length (5.2): the header of an unmasked frame under 126 bytes;
# and with the 16-bit length, under 64 KiB.
_PACK_7 = struct.Struct("!BB").pack
_PACK_16 = struct.Struct("!BBH").pack

# send() builds frames whose payload is under this size itself, inline (the 7- and
# 16-bit lengths, below the reused send buffer); bigger ones go to _send_data.
_INLINE_MAX = min(MAX_LENGTH_16 + 1, SEND_BUFFER_MIN)


def _direct_fd(transport: Any) -> tuple[int, Any]:
    """The descriptor frames may be written to directly, and the transport's queue of
    unsent data; (-1, None) where frames must go through ``transport.write``.

    Only asyncio's own plain socket transports (not TLS, uvloop, aiofastnet or
    Windows' proactor) qualify.  Their ``_buffer`` (a bytearray up to 3.11, a deque
    since 3.12) is created once and never replaced, and is empty exactly when
    ``get_write_buffer_size()`` is 0: testing it spares a Python call per send.
    """
    if type(transport).__module__ != "asyncio.selector_events":
        return -1, None
    if transport.get_extra_info("sslcontext") is not None:
        return -1, None
    queue = getattr(transport, "_buffer", None)
    if type(queue) not in (bytearray, collections.deque):
        return -1, None
    sock = transport.get_extra_info("socket")
    return (-1, None) if sock is None else (int(sock.fileno()), queue)


Message = Union[str, bytes, bytearray, memoryview, None]

_CLOSE = WSMsgType.CLOSE
_CLOSED = State.CLOSED


class ConnectionHost(Protocol):
    """What the transport needs from the protocol that owns the connection."""

    async def measure_roundtrip_time(self, rounds: int) -> list[float]: ...

    def pong_received(self) -> None: ...

    def close_sent(self) -> None: ...


def _as_payload(message: Any) -> Union[bytes, bytearray, memoryview]:
    """The bytes to send for ``message`` (5.6: TEXT payloads are UTF-8)."""
    if type(message) is memoryview and message.c_contiguous and message.format == "B":
        return message  # what get_payload_as_memoryview() gives: an echo's payload
    if message is None:
        return b""
    if isinstance(message, (bytes, bytearray)):
        return message
    if isinstance(message, str):
        return message.encode("utf-8")
    try:
        view = memoryview(message)
    except TypeError:
        raise TypeError(
            f"message must be bytes, bytearray, memoryview, str or None, "
            f"not {type(message).__name__}"
        ) from None
    return view if view.c_contiguous and view.format == "B" else view.tobytes()


class WSTransport:
    """One WebSocket connection, as seen by the user.

    Sends never block and become no-ops once a CLOSE was sent or the connection
    is gone.  Every public method must be called from the thread that owns the
    connection's event loop.
    """

    __slots__ = (
        "__weakref__",
        "_build",
        "_build_unmasked",
        "_closing",
        "_conn",
        "_disconnected",
        "_fd",
        "_host",
        "_logger",
        "_mask_inplace",
        "_next_key",
        "_queued",
        "_send_buffer_lent",
        "_send_frame",
        "_thread_id",
        "_unmasked_inline_max",
        "_write",
        "_write_buffer_size",
        "_write_frame",
        "is_client_side",
        "is_disconnected",
        "is_secure",
        "request",
        "response",
        "underlying_transport",
    )

    underlying_transport: asyncio.Transport
    request: WSUpgradeRequest
    response: WSUpgradeResponse
    is_client_side: bool
    is_secure: bool
    is_disconnected: bool

    def __init__(
        self,
        connection: Connection,
        host: ConnectionHost,
        underlying_transport: asyncio.Transport,
        request: WSUpgradeRequest,
        response: WSUpgradeResponse,
        disconnected: asyncio.Future[None],
        logger: Union[logging.Logger, logging.LoggerAdapter[Any]],
    ) -> None:
        self._conn = connection
        self._host = host
        self.underlying_transport = underlying_transport
        self._write = underlying_transport.write
        self._write_buffer_size = underlying_transport.get_write_buffer_size
        # Set by disconnect(): asyncio still flushes what it holds, and would append
        # anything written meanwhile; that must not reach the peer.
        self._closing = False
        # The socket's descriptor where frames may be written straight to it, and
        # asyncio's queue of unsent bytes (see _fast_write); else -1 and None.
        self._fd, self._queued = _direct_fd(underlying_transport)
        # Whether the asyncio transport may still hold a reference into the
        # connection's send buffer (see Connection.build_in_buffer).
        self._send_buffer_lent = False
        backend = connection.backend
        self._build = backend.build_frame
        self._build_unmasked = backend.build_unmasked
        self._mask_inplace = backend.apply_mask_inplace
        # The accelerator's build-and-write of masked frames, where frames may go
        # straight to the socket.
        self._send_frame = backend.send_frame if self._fd >= 0 else None
        self._write_frame = backend.write_frame if self._fd >= 0 else None
        # send() builds unmasked frames under this size inline (header + payload); the
        # bytes payloads from WRITELINES_MIN on go to writelines() (_send_data).
        self._unmasked_inline_max = (
            0 if backend.build_unmasked else min(_INLINE_MAX, WRITELINES_MIN)
        )
        keys = connection.mask_keys
        self._next_key = keys.next_key if keys is not None else None
        self.request = request
        self.response = response
        self.is_client_side = connection.is_client
        self.is_secure = underlying_transport.get_extra_info("ssl_object") is not None
        #: Set by the protocol when the TCP connection is gone.
        self.is_disconnected = False
        self._disconnected = disconnected
        self._logger = logger
        self._thread_id = threading.get_ident()

    @property
    def close_handshake(self) -> Optional[WSCloseHandshake]:
        """What was sent and received in the closing handshake; None before any CLOSE."""
        return self._conn.close_handshake

    @property
    def is_close_frame_sent(self) -> bool:
        return self._conn.close_sent

    # -- thread ownership ---------------------------------------------------------

    def _check_thread(self, method: str) -> None:
        if get_ident() != self._thread_id:
            raise RuntimeError(
                f"WSTransport.{method} called from a wrong thread: the transport belongs "
                f"to thread {self._thread_id}, called from {threading.get_ident()}"
            )

    # -- sending ------------------------------------------------------------------

    def _ignored(self, what: str) -> None:
        if self._logger.isEnabledFor(PICOWS_DEBUG_LL):
            self._logger.log(
                PICOWS_DEBUG_LL, "%s ignored: CLOSE already sent or disconnected", what
            )

    def _out(self, data: Optional[bytes], what: str) -> None:
        if data is None or self._closing:
            self._ignored(what)
        else:
            self._fast_write(data)

    def _fast_write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """``transport.write(data)``, skipping asyncio's Python write path when it can.

        On asyncio's own socket transports (no TLS), with nothing queued, the frame
        goes to the socket at once, as asyncio's write would do, minus its checks
        (upstream picows does the same); what the socket does not take, and every
        other case, goes through ``transport.write``.  The descriptor is never used
        after connection_lost: by then the connection is CLOSED and nothing is sent.
        """
        fd = self._fd
        if fd >= 0 and not self._queued:
            try:
                sent = _os_write(fd, data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._write(data)  # asyncio reports the error its own way
                return
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
        self._write(data)

    def _send_data(
        self, first: int, payload: Union[bytes, bytearray, memoryview], size: int
    ) -> None:
        """Write the data frame whose byte 0 is ``first``; the connection allowed it.

        How depends on the size and the interpreter (``picows._backend``).  ``send``
        builds the frames under _INLINE_MAX itself; this is the reference for them.
        """
        next_key = self._next_key
        write_frame = self._write_frame
        if write_frame is not None and size >= _INLINE_MAX and not self._queued:
            # A big frame: the accelerator writes it from C, with no bytes object for
            # asyncio, and an unmasked payload is not even copied (1 MiB echo on PyPy:
            # 0.6 -> 0.87 of the raw ceiling).  asyncio queues what is left.
            rest = write_frame(self._fd, first, payload, next_key() if next_key else None)
            if rest:
                self._write(rest)
            return
        if size >= SEND_BUFFER_MIN:
            busy = self._send_buffer_lent and self._write_buffer_size() > 0
            self._fast_write(self._conn.build_in_buffer(first, payload, size, busy))
            self._send_buffer_lent = self._write_buffer_size() > 0
        elif next_key is not None:
            # 5.3: the client masks every frame with a fresh key.
            self._fast_write(self._build(first, payload, next_key()))
        elif size >= WRITELINES_MIN and type(payload) is bytes:
            # Immutable payload: asyncio may keep a reference instead of a copy.
            self.underlying_transport.writelines((encode_header(first, size), payload))
        elif self._build_unmasked:
            self._fast_write(self._build(first, payload))
        elif size < 126:  # 5.2: the 7-bit length, inline
            self._fast_write(_PACK_7(first, size) + payload)
        else:
            self._fast_write(encode_header(first, size) + payload)

    def send(
        self,
        msg_type: int,
        message: Message,
        fin: bool = True,
        rsv1: bool = False,
        rsv2: bool = False,
        rsv3: bool = False,
    ) -> None:
        """Send one frame with ``message`` as payload (str is sent as UTF-8)."""
        # The per-message path: Connection.send_frame's checks are inlined for data
        # frames, and so are, for frames under 64 KiB, _as_payload for bytes and the
        # views get_payload_as_memoryview() gives, _send_data and _fast_write: about
        # 1k CPU instructions less per Python call spared (benchmarks/README.md).
        # tests/asyncio/test_send_inline.py checks that it sends what the
        # connection's send_frame would.
        if get_ident() != self._thread_id:
            self._check_thread("send")
        if msg_type == _CLOSE:
            raise ValueError(
                "WSTransport.send cannot send CLOSE frames: use send_close(), which also "
                "keeps the closing handshake state"
            )
        if type(message) is bytes:
            payload: Union[bytes, bytearray, memoryview] = message
            size = len(message)
        elif type(message) is memoryview and message.c_contiguous:
            # An echo's payload.  Any format: every frame builder copies the raw bytes
            # of a contiguous view (what _as_payload's tobytes() would give).
            payload = message
            size = message.nbytes
        else:
            payload = _as_payload(message)
            size = len(payload) if type(payload) is not memoryview else payload.nbytes
        if rsv1 or rsv2 or rsv3:
            first = first_byte(msg_type, fin, rsv1, rsv2, rsv3)
        else:
            first = (FIN_BIT | (msg_type & OPCODE_BITS)) if fin else msg_type & OPCODE_BITS
        conn = self._conn
        if first & 0x08:  # a control frame: the connection checks its size
            self._out(conn.send_frame(first, payload), "send")
            return
        if conn.close_sent or conn.state is _CLOSED or self._closing:
            self._ignored("send")
            return
        # _send_data's branches for frames under 64 KiB, inline.
        next_key = self._next_key
        if next_key is not None:
            if size >= _INLINE_MAX:
                self._send_data(first, payload, size)
                return
            key = next_key()  # 5.3: a fresh key
            send_frame = self._send_frame  # None unless frames may go to the socket
            if send_frame is not None and not self._queued and type(payload) is bytes:
                # The accelerator builds the masked frame and writes it in one C call.
                left = send_frame(self._fd, first, payload, size, key)
                if not left:
                    return
                # Not all of it (or an error, which asyncio's write reports): the rest
                # of the same frame goes through asyncio.
                data = self._build(first, payload, key)
                self._write(data[len(data) - left :] if left > 0 else data)
                return
            data = self._build(first, payload, key)
        elif size < self._unmasked_inline_max or (
            # A view is never handed to writelines(): inline up to 64 KiB.
            size < _INLINE_MAX and type(payload) is not bytes and not self._build_unmasked
        ):
            if size < 126:
                data = _PACK_7(first, size) + payload
            else:
                data = _PACK_16(first, LENGTH_16, size) + payload
        else:
            self._send_data(first, payload, size)
            return
        # _fast_write, inline.
        fd = self._fd
        if fd >= 0 and not self._queued:
            try:
                sent = _os_write(fd, data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = -1  # asyncio's write reports the error its own way
            if sent == len(data):
                return
            if sent > 0:
                data = data[sent:]
        self._write(data)

    def send_reuse_external_bytearray(
        self,
        msg_type: int,
        buffer: bytearray,
        msg_offset: int,
        fin: bool = True,
        rsv1: bool = False,
        rsv2: bool = False,
        rsv3: bool = False,
    ) -> None:
        """Send ``buffer[msg_offset:]`` without copying it.

        The frame header is written into ``buffer`` just before ``msg_offset``,
        which must therefore be at least 14; on the client the payload is masked in
        place.  The buffer must not be modified until it has been written out.
        """
        self._check_thread("send_reuse_external_bytearray")
        if buffer is None:
            raise ValueError("buffer must be a bytearray, not None")
        if not isinstance(buffer, bytearray):
            raise TypeError(f"buffer must be a bytearray, not {type(buffer).__name__}")
        if msg_type == _CLOSE:
            raise ValueError("send_reuse_external_bytearray cannot send CLOSE: use send_close()")
        if msg_offset < MAX_HEADER_SIZE:
            raise ValueError(
                f"msg_offset must be at least {MAX_HEADER_SIZE} to leave room for the "
                f"frame header, got {msg_offset}"
            )
        if msg_offset > len(buffer):
            raise ValueError(f"msg_offset {msg_offset} is beyond the buffer ({len(buffer)})")
        if not self._conn.can_send or self._closing:
            self._ignored("send_reuse_external_bytearray")
            return
        size = len(buffer) - msg_offset
        key = self._next_key() if self._next_key is not None else None
        header = encode_header(first_byte(msg_type, fin, rsv1, rsv2, rsv3), size, key)
        frame_start = msg_offset - len(header)
        buffer[frame_start:msg_offset] = header
        if key is not None:
            self._mask_inplace(buffer, msg_offset, len(buffer), key)
        self._fast_write(memoryview(buffer)[frame_start:])

    def send_ping(self, message: Message = None) -> None:
        """Send a PING control frame (5.5.2); at most 125 bytes (ValueError)."""
        self._check_thread("send_ping")
        self._out(self._conn.send_ping(_as_payload(message)), "send_ping")

    def send_pong(self, message: Message = None) -> None:
        """Send a PONG control frame (5.5.3); at most 125 bytes (ValueError)."""
        self._check_thread("send_pong")
        self._out(self._conn.send_pong(_as_payload(message)), "send_pong")

    def send_close(
        self,
        close_code: int = WSCloseCode.NO_INFO,
        close_message: Message = None,
    ) -> None:
        """Send a CLOSE frame (5.5.1); does not disconnect.

        With the default ``NO_INFO`` the frame has an empty payload (no status
        code on the wire).  After this call every send method is a no-op.  A code
        that must never be sent (1005, 1006, 1015, reserved ranges, 7.4) or a reason
        over 123 bytes raises ValueError, and nothing is sent.  If the peer does not
        end the connection within the close timeout, picows does
        (``picows._protocol.CLOSE_TIMEOUT``).
        """
        self._check_thread("send_close")
        if self._closing:
            self._ignored("send_close")
            return
        data = self._conn.send_close(close_code, close_message)
        self._out(data, "send_close")
        if data is not None:
            self._host.close_sent()

    # -- connection ---------------------------------------------------------------

    def disconnect(self, graceful: bool = True) -> None:
        """Close the connection; ``graceful`` first flushes what is queued.

        Safe to call repeatedly.  Does not send CLOSE: call ``send_close`` first
        for a clean closing handshake.
        """
        self._check_thread("disconnect")
        if self.is_disconnected:
            return
        self._closing = True
        if graceful:
            self.underlying_transport.close()
        else:
            self.underlying_transport.abort()

    async def wait_disconnected(self) -> None:
        """Wait until the connection is closed and ``on_ws_disconnected`` ran.

        On the client, re-raises the local failure that caused the disconnect: an
        exception from a listener callback, or the protocol error picows detected.
        A peer that closes, cleanly or not, does not make this raise.
        """
        self._check_thread("wait_disconnected")
        await asyncio.shield(self._disconnected)
        failure = self._conn.failure
        if self.is_client_side and failure is not None:
            raise failure

    async def measure_roundtrip_time(self, rounds: int) -> list[float]:
        """Ping ``rounds`` times, one after another; the round-trip times in seconds."""
        self._check_thread("measure_roundtrip_time")
        return await self._host.measure_roundtrip_time(rounds)

    def notify_user_specific_pong_received(self) -> None:
        """Tell the auto-ping / round-trip logic that the awaited pong arrived.

        For listeners that recognise pongs in ``on_ws_frame``.  Does nothing when
        no pong is awaited.
        """
        self._check_thread("notify_user_specific_pong_received")
        self._host.pong_received()

    def __repr__(self) -> str:
        side = "client" if self.is_client_side else "server"
        state = "disconnected" if self.is_disconnected else "connected"
        return f"<WSTransport {side} {state} close_frame_sent={self._conn.close_sent}>"
