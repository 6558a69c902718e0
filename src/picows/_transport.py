"""``WSTransport``: the user's handle on one connection, and the send path.

Every send method encodes a frame with the Sans-I/O encoder (``_frames``) and hands
the bytes to the asyncio transport, which never blocks: what the socket cannot
take now is queued by asyncio and written later.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from threading import get_ident
from typing import TYPE_CHECKING, Any, Optional, Union

from ._backend import (
    BUILD_UNMASKED_IN_C,
    SEND_BUFFER_MIN,
    WRITELINES_MIN,
    SendBuffer,
    apply_mask_inplace,
    build_frame,
)
from ._close import WSCloseHandshake, WSCloseInfo, build_close_payload
from ._frames import MaskKeySource
from ._header import FIN_BIT, MAX_HEADER_SIZE, OPCODE_BITS, encode_header, first_byte
from ._http11 import WSUpgradeRequest, WSUpgradeResponse
from ._types import PICOWS_DEBUG_LL, WSCloseCode, WSMsgType

if TYPE_CHECKING:
    from ._protocol import WSProtocol

__all__ = ["WSTransport"]

Message = Union[str, bytes, bytearray, memoryview, None]

_CLOSE = WSMsgType.CLOSE
# Byte 0 of control frames: always FIN (5.5), no RSV bits.
_PING_FIRST = first_byte(WSMsgType.PING)
_PONG_FIRST = first_byte(WSMsgType.PONG)
_CLOSE_FIRST = first_byte(WSMsgType.CLOSE)


def _as_payload(message: Any) -> Union[bytes, bytearray, memoryview]:
    """The bytes to send for ``message`` (5.6: TEXT payloads are UTF-8)."""
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
        "_disconnected_future",
        "_failure",
        "_is_closing",
        "_logger",
        "_loop",
        "_mask_keys",
        "_protocol",
        "_send_buffer",
        "_send_buffer_lent",
        "_thread_id",
        "_write",
        "_write_buffer_size",
        "close_handshake",
        "is_client_side",
        "is_close_frame_sent",
        "is_disconnected",
        "is_secure",
        "request",
        "response",
        "underlying_transport",
    )

    underlying_transport: asyncio.Transport
    request: WSUpgradeRequest
    response: WSUpgradeResponse
    close_handshake: Optional[WSCloseHandshake]
    is_client_side: bool
    is_secure: bool
    is_close_frame_sent: bool
    is_disconnected: bool

    def __init__(
        self,
        protocol: WSProtocol,
        underlying_transport: asyncio.Transport,
        request: WSUpgradeRequest,
        response: WSUpgradeResponse,
        is_client_side: bool,
        logger: Union[logging.Logger, logging.LoggerAdapter[Any]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._protocol = protocol
        self.underlying_transport = underlying_transport
        self._write = underlying_transport.write
        self._is_closing = underlying_transport.is_closing
        self._write_buffer_size = underlying_transport.get_write_buffer_size
        # The reusable buffer for big frames (SEND_BUFFER_MIN), and whether the
        # asyncio transport may still hold a reference into it.
        self._send_buffer: Optional[SendBuffer] = None
        self._send_buffer_lent = False
        self.request = request
        self.response = response
        self.is_client_side = is_client_side
        self.is_secure = underlying_transport.get_extra_info("ssl_object") is not None
        self.is_close_frame_sent = False
        self.is_disconnected = False
        self.close_handshake = None
        self._logger = logger
        self._loop = loop
        self._thread_id = threading.get_ident()
        # 5.3: only the client masks, with a fresh unpredictable key per frame.
        self._mask_keys = MaskKeySource() if is_client_side else None
        self._disconnected_future: asyncio.Future[None] = loop.create_future()
        # The first local failure that caused the disconnect (client re-raises it).
        self._failure: Optional[BaseException] = None

    # -- thread ownership ---------------------------------------------------------

    def _check_thread(self, method: str) -> None:
        if get_ident() != self._thread_id:
            raise RuntimeError(
                f"WSTransport.{method} called from a wrong thread: the transport belongs "
                f"to thread {self._thread_id}, called from {threading.get_ident()}"
            )

    # -- sending ------------------------------------------------------------------

    def _can_send(self, what: str) -> bool:
        # is_closing(): after disconnect() asyncio still flushes what it holds, and
        # would append anything written meanwhile; that must not reach the peer.
        # (send() inlines this test.)
        if self.is_close_frame_sent or self.is_disconnected or self._is_closing():
            self._log_ignored(what)
            return False
        return True

    def _log_ignored(self, what: str) -> None:
        if self._logger.isEnabledFor(PICOWS_DEBUG_LL):
            self._logger.log(
                PICOWS_DEBUG_LL, "%s ignored: CLOSE already sent or disconnected", what
            )

    def _send_frame(self, first: int, payload: Union[bytes, bytearray, memoryview]) -> None:
        """Send one frame whose header starts with byte ``first`` (FIN, RSV, opcode).

        How depends on the size and the interpreter (``picows._backend``).
        """
        size = len(payload) if not isinstance(payload, memoryview) else payload.nbytes
        mask_keys = self._mask_keys
        if size >= SEND_BUFFER_MIN:
            key = mask_keys.next_key() if mask_keys is not None else None
            self._send_in_buffer(first, payload, size, key)
        elif mask_keys is not None:
            # 5.3: the client masks every frame with a fresh key.
            self._write(build_frame(first, payload, mask_keys.next_key()))
        elif size >= WRITELINES_MIN and type(payload) is bytes:
            # Immutable payload: asyncio may keep a reference instead of a copy.
            self.underlying_transport.writelines((encode_header(first, size), payload))
        elif BUILD_UNMASKED_IN_C:
            self._write(build_frame(first, payload))
        else:
            self._write(encode_header(first, size) + payload)

    def _send_in_buffer(
        self,
        first: int,
        payload: Union[bytes, bytearray, memoryview],
        size: int,
        key: Optional[bytes],
    ) -> None:
        """Write a big frame from the reusable send buffer.

        A fresh megabyte comes from mmap() or a trimmed heap, and its first touch
        page-faults every 4 KiB: that held 1 MiB echoes to 0.48 of the raw ceiling
        on CPython, where reused (warm) memory reaches 0.97 (benchmarks/README.md).

        asyncio (3.12+), uvloop and TLS transports keep a reference to what they
        could not send at once, so the buffer is reused only once the transport
        has nothing pending: until then each frame gets a fresh buffer, which
        becomes the one kept.
        """
        buffer = self._send_buffer
        needed = size + MAX_HEADER_SIZE
        if (
            buffer is None
            or buffer.capacity < needed
            or (self._send_buffer_lent and self._write_buffer_size())
        ):
            self._send_buffer = buffer = SendBuffer(needed)
        self._write(buffer.build(first, payload, key))
        self._send_buffer_lent = self._write_buffer_size() > 0

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
        # The per-message path: the tests of _check_thread and _can_send are inlined
        # and bytes skip _as_payload, which saves three Python calls per send
        # (about 0.15 us of 0.8 us on CPython 3.11, benchmarks/README.md).
        if get_ident() != self._thread_id:
            self._check_thread("send")
        if msg_type == _CLOSE:
            raise ValueError(
                "WSTransport.send cannot send CLOSE frames: use send_close(), which also "
                "keeps the closing handshake state"
            )
        if self.is_close_frame_sent or self.is_disconnected or self._is_closing():
            self._log_ignored("send")
            return
        payload = message if type(message) is bytes else _as_payload(message)
        if rsv1 or rsv2 or rsv3:
            first = first_byte(msg_type, fin, rsv1, rsv2, rsv3)
        else:
            first = (FIN_BIT | (msg_type & OPCODE_BITS)) if fin else msg_type & OPCODE_BITS
        self._send_frame(first, payload)

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
        if not self._can_send("send_reuse_external_bytearray"):
            return
        size = len(buffer) - msg_offset
        key = self._mask_keys.next_key() if self._mask_keys is not None else None
        header = encode_header(first_byte(msg_type, fin, rsv1, rsv2, rsv3), size, key)
        frame_start = msg_offset - len(header)
        buffer[frame_start:msg_offset] = header
        if key is not None:
            apply_mask_inplace(buffer, msg_offset, len(buffer), key)
        self._write(memoryview(buffer)[frame_start:])

    def send_ping(self, message: Message = None) -> None:
        """Send a PING control frame (5.5.2)."""
        self._check_thread("send_ping")
        if self._can_send("send_ping"):
            self._send_frame(_PING_FIRST, _as_payload(message))

    def send_pong(self, message: Message = None) -> None:
        """Send a PONG control frame (5.5.3)."""
        self._check_thread("send_pong")
        if self._can_send("send_pong"):
            self._send_frame(_PONG_FIRST, _as_payload(message))

    def send_close(
        self,
        close_code: int = WSCloseCode.NO_INFO,
        close_message: Message = None,
    ) -> None:
        """Send a CLOSE frame (5.5.1); does not disconnect.

        With the default ``NO_INFO`` the frame has an empty payload (no status
        code on the wire).  After this call every send method is a no-op.
        """
        self._check_thread("send_close")
        if not self._can_send("send_close"):
            return
        payload = build_close_payload(close_code, close_message)
        self._send_frame(_CLOSE_FIRST, payload)
        self.is_close_frame_sent = True
        reason = str(payload[2:], "utf-8", "replace")
        sent = WSCloseInfo(WSCloseCode(close_code), reason)
        if self.close_handshake is None:
            self.close_handshake = WSCloseHandshake(sent=sent)
        else:
            self.close_handshake.sent = sent
            self.close_handshake.recv_then_sent = self.close_handshake.recv is not None

    # -- connection ---------------------------------------------------------------

    def disconnect(self, graceful: bool = True) -> None:
        """Close the connection; ``graceful`` first flushes what is queued.

        Safe to call repeatedly.  Does not send CLOSE: call ``send_close`` first
        for a clean closing handshake.
        """
        self._check_thread("disconnect")
        if self.is_disconnected:
            return
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
        await asyncio.shield(self._disconnected_future)
        if self.is_client_side and self._failure is not None:
            raise self._failure

    async def measure_roundtrip_time(self, rounds: int) -> list[float]:
        """Ping ``rounds`` times, one after another; the round-trip times in seconds."""
        self._check_thread("measure_roundtrip_time")
        return await self._protocol.measure_roundtrip_time(rounds)

    def notify_user_specific_pong_received(self) -> None:
        """Tell the auto-ping / round-trip logic that the awaited pong arrived.

        For listeners that recognise pongs in ``on_ws_frame``.  Does nothing when
        no pong is awaited.
        """
        self._check_thread("notify_user_specific_pong_received")
        self._protocol.pong_received()

    def __repr__(self) -> str:
        side = "client" if self.is_client_side else "server"
        state = "disconnected" if self.is_disconnected else "connected"
        return f"<WSTransport {side} {state} close_frame_sent={self.is_close_frame_sent}>"
