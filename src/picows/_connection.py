"""One WebSocket connection as a state machine (RFC 6455 sections 4, 5 and 7), without I/O.

The contract, as h11 words it for HTTP: a :class:`Connection` never does I/O, never
blocks, never reads a clock and never calls the application.  The asyncio layer
(``_protocol``, ``_transport``) feeds it the bytes that arrive, takes out what the
application must see, and writes the bytes it is given:

* **bytes in**: :meth:`get_buffer` / :meth:`handshake_received` and
  :meth:`frames_received` (the socket reads straight into our buffers), or
  :meth:`receive_data` with a copy;
* **events out**: the handshake's request or response, then :meth:`next_frame`, which
  returns each frame the application must see (None when it needs more bytes) and
  raises :class:`~picows.WSProtocolError` once it has failed the connection;
* **bytes out**: the ``send_*`` methods return the frame to write (None when nothing
  may be sent any more); what the connection sends on its own (a PONG, the CLOSE of a
  failure) is appended to :attr:`pending`, which the glue writes before it delivers
  the next frame, so the order on the wire is the order of the decisions.

The states (RFC 6455 4 and 7; wsproto and websockets name theirs the same)::

    CONNECTING --101 sent/received--> OPEN --CLOSE sent or received--> CLOSING
        |                              |                                 |
        |                              |  the other CLOSE                v
        +--- handshake failed ---------+--- fail() / connection lost --> CLOSED

What happens when something arrives, by state (``next_frame``):

================  ==================================================================
CONNECTING        bytes go to the opening handshake (``_handshake``); a client moves
                  to OPEN on a valid 101, a server when it :meth:`accept`\\ s
OPEN              data frames, PONGs, and PINGs (unless auto-pong answers them) are
                  delivered; a CLOSE is recorded, delivered, and moves to CLOSING;
                  everything after it is dropped unread (5.5.1)
CLOSING, we sent  frames are still delivered (the peer may not have seen our CLOSE);
a CLOSE first     its CLOSE is recorded, delivered, and moves to CLOSED
CLOSING, the      nothing: what follows a CLOSE is dropped (5.5.1); our own CLOSE
peer closed       (``send_close``) moves to CLOSED
CLOSED            nothing is read and nothing is sent
any state         a protocol violation *fails the connection* (7.1.7): CLOSE with the
                  code of :func:`~picows._close.close_frame_for` goes to ``pending``
                  (unless one was sent), then CLOSED; the glue drops TCP shortly after
================  ==================================================================

picows leaves two things to the application that stricter libraries do themselves:
it never answers a received CLOSE on its own (the application calls ``send_close``),
and it does not check messages.  The second is opt-in here (``check_messages``):
fragment order (5.4), RSV bits of data frames (5.2) and UTF-8 of text (8.1), with the
rules of :mod:`picows._messages`.
"""

from __future__ import annotations

import enum
from typing import Any, Optional, Union

from . import _backend
from ._backend import Backend
from ._close import (
    WSCloseHandshake,
    WSCloseInfo,
    build_close_payload,
    close_frame_for,
    parse_close_payload,
)
from ._exceptions import WSHandshakeError, WSProtocolError
from ._frames import FrameReader, MaskKeySource, WSFrame
from ._handshake import ClientHandshake, ServerHandshake
from ._header import MAX_CONTROL_PAYLOAD, MAX_HEADER_SIZE, first_byte
from ._http11 import WSUpgradeRequest, WSUpgradeResponse
from ._messages import MessageRules
from ._types import WSCloseCode, WSMsgType

__all__ = ["Connection", "State"]

Payload = Union[bytes, bytearray, memoryview]

_PING = WSMsgType.PING
_PONG = WSMsgType.PONG
_CLOSE = WSMsgType.CLOSE
# Byte 0 of control frames: always FIN (5.5), no RSV bits.
_PING_FIRST = first_byte(_PING)
_PONG_FIRST = first_byte(_PONG)
_CLOSE_FIRST = first_byte(_CLOSE)

# The handshake is read into a small buffer of its own; frames get the big one.
_HANDSHAKE_READ_SIZE = 4096


class State(enum.Enum):
    """Where a connection is in its life (RFC 6455 4, 7)."""

    #: The opening handshake is under way (4.1, 4.2).
    CONNECTING = 0
    #: The handshake succeeded: frames flow both ways (4.1: "Established").
    OPEN = 1
    #: One CLOSE was sent or received, not both (7.1.2, 7.1.3).
    CLOSING = 2
    #: Both CLOSEs went across, or the connection failed or was lost (7.1.4, 7.1.7).
    CLOSED = 3


_CONNECTING = State.CONNECTING
_OPEN = State.OPEN
_CLOSING = State.CLOSING
_CLOSED = State.CLOSED


class Connection:
    """The rules of one WebSocket connection, client or server side.

    ``handshake`` is the :class:`~picows._handshake.ClientHandshake` of a client (its
    request is :meth:`request_bytes`) or a :class:`~picows._handshake.ServerHandshake`.
    ``auto_pong`` answers PINGs itself (5.5.2); ``check_messages`` turns on the message
    rules picows otherwise leaves to the application.  ``backend`` (default: the
    active one) masks, decodes and builds frames.
    """

    __slots__ = (
        "_auto_pong",
        "_build",
        "_handshake",
        "_handshake_buffer",
        "_next",
        "_reader",
        "_rules",
        "_send_buffer",
        "backend",
        "checks_messages",
        "close_handshake",
        "close_sent",
        "failure",
        "frames_received",
        "get_frames_buffer",
        "is_client",
        "mask_keys",
        "pending",
        "reader",
        "state",
    )

    def __init__(
        self,
        handshake: Union[ClientHandshake, ServerHandshake],
        *,
        max_frame_size: int = 10 * 1024 * 1024,
        read_buffer_init_size: int = 16 * 1024,
        auto_pong: bool = True,
        check_messages: bool = False,
        backend: Optional[Backend] = None,
    ) -> None:
        if max_frame_size < 0:
            raise ValueError("max_frame_size must not be negative")
        backend = backend or _backend.ACTIVE
        self.backend = backend
        self.is_client = isinstance(handshake, ClientHandshake)
        self.state = _CONNECTING
        #: The closing handshake so far: None until a CLOSE is sent or received.
        self.close_handshake: Optional[WSCloseHandshake] = None
        #: Whether our CLOSE went out (after it, nothing more may be sent, 5.5.1).
        self.close_sent = False
        #: The first local failure: a protocol violation of the peer, or what the
        #: application reported through :meth:`fail`.
        self.failure: Optional[BaseException] = None
        #: Bytes the connection decided to send on its own, in order.
        self.pending: list[bytes] = []
        self._handshake: Optional[Union[ClientHandshake, ServerHandshake]] = handshake
        self._handshake_buffer = bytearray(_HANDSHAKE_READ_SIZE)
        self._auto_pong = auto_pong
        # RSV bits of data frames are the application's unless it asked for checks.
        self._reader = FrameReader(
            is_client=self.is_client,
            max_frame_size=max_frame_size,
            read_buffer_init_size=read_buffer_init_size,
            allow_rsv=not check_messages,
            backend=backend,
        )
        #: The frame parser (the zero-copy receive path, and its ``grown`` flag).
        self.reader = self._reader
        self._next = self._reader.next_frame
        #: Zero-copy receiving once OPEN: the reader's own ``get_buffer(sizehint)`` and
        #: ``buffer_updated(nbytes)``, bound, so the hot path makes no extra call.
        self.get_frames_buffer = self._reader.get_buffer
        self.frames_received = self._reader.buffer_updated
        self._rules = MessageRules() if check_messages else None
        #: Whether :meth:`check_data_frame` must see every data frame.
        self.checks_messages = check_messages
        #: 5.3: only the client masks, with a fresh unpredictable key per frame.
        self.mask_keys = MaskKeySource() if self.is_client else None
        self._build = backend.build_frame
        self._send_buffer: Optional[object] = None

    # -- the opening handshake (CONNECTING) ---------------------------------------

    def request_bytes(self) -> bytes:
        """The client's upgrade request (4.1), to send first."""
        assert isinstance(self._handshake, ClientHandshake)
        return self._handshake.request_bytes()

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Where the next read goes: the handshake's buffer, then the frames' one."""
        if self.state is _CONNECTING:
            return memoryview(self._handshake_buffer)
        return self._reader.get_buffer(sizehint)

    def handshake_received(self, nbytes: int) -> Union[WSUpgradeRequest, WSUpgradeResponse, None]:
        """``nbytes`` of the handshake arrived in :meth:`get_buffer`'s buffer.

        A client gets the 101 response once it is complete and valid (the connection
        is then OPEN); a server gets the request, and answers with :meth:`accept` or
        :meth:`reject`.  None while more bytes are needed.  A failure is a
        :class:`~picows.WSHandshakeError`: a client's connection is then CLOSED; a
        server answers it with :meth:`reject` (400), or, for a
        ``RequestTooLargeError``, closes without an answer (:meth:`abandon`).
        """
        handshake = self._handshake
        assert self.state is _CONNECTING and handshake is not None
        data = bytes(self._handshake_buffer[:nbytes])
        try:
            event = handshake.receive_data(data)
        except WSHandshakeError as exc:
            if self.is_client:
                self._lose(exc)
            raise
        if isinstance(event, WSUpgradeResponse):
            assert isinstance(handshake, ClientHandshake)
            self._open(handshake.leftover)
        return event

    def accept(self, request: WSUpgradeRequest, response: WSUpgradeResponse) -> bytes:
        """The server's 101 for ``request`` with the headers of ``response`` (4.2.2).

        Raises :class:`~picows._handshake.UnsupportedVersionError` (answer 426) or
        another :class:`~picows.WSHandshakeError` (answer 400) when the request is no
        valid upgrade; then :meth:`reject` it.
        """
        handshake = self._handshake
        assert self.state is _CONNECTING and isinstance(handshake, ServerHandshake)
        key = handshake.validate_upgrade(request)
        answer = handshake.build_101_response_bytes(key, response)
        self._open(handshake.leftover)
        return answer

    def reject(self, response: WSUpgradeResponse) -> bytes:
        """The server's non-101 answer; the connection is then over (``CLOSED``)."""
        assert self.state is _CONNECTING and not self.is_client
        self._lose(None)
        return ServerHandshake.error_response_bytes(response)

    def abandon(self) -> None:
        """The server closes without answering (a request over the limits)."""
        self._lose(None)

    def _open(self, leftover: bytes) -> None:
        self.state = _OPEN
        self._handshake = None
        self._handshake_buffer = bytearray()
        if leftover:  # frames that came in the same read as the handshake
            self._reader.feed_data(leftover)

    # -- receiving frames (OPEN, CLOSING) ------------------------------------------

    def receive_data(self, data: Payload) -> None:
        """``data`` arrived (a copy; the glue uses :meth:`get_buffer` instead)."""
        if self.state is _CONNECTING:
            raise RuntimeError("receive_data() is for frames; the handshake is not done")
        self._reader.feed_data(data)

    def next_frame(self) -> Optional[WSFrame]:
        """The next frame the application must see, or None until more bytes arrive.

        The frame is a view into the receive buffer, valid until the next call.
        Raises :class:`~picows.WSProtocolError` when the bytes break the protocol,
        after failing the connection (:meth:`fail`); frames before the violation
        were returned by earlier calls.

        (``WSProtocol._frame_dispatcher`` runs this loop inline, calling the reader
        and :meth:`control_frame` / :meth:`check_data_frame` itself; the tests check
        that both deliver the same frames.)
        """
        try:
            while True:
                frame = self._next()
                if frame is None:
                    return None
                if frame.msg_type >= 8:
                    if not self.control_frame(frame):
                        continue  # answered here: the application does not see it
                elif self._rules is not None:
                    self.check_data_frame(frame)
                return frame
        except WSProtocolError as exc:
            self.fail(exc)
            raise

    def control_frame(self, frame: WSFrame) -> bool:
        """Apply the rules for a received PING, PONG or CLOSE; False when the frame
        was answered here and is not for the application (auto-pong)."""
        msg_type = frame.msg_type
        if msg_type is _PING:
            if self._auto_pong:
                # 5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong
                # frame in response" with "identical Application data".
                if not self.close_sent:
                    self.pending.append(self._frame(_PONG_FIRST, frame.get_payload_as_memoryview()))
                return False
        elif msg_type is _CLOSE:
            self._close_received(frame)
        return True

    def check_data_frame(self, frame: WSFrame) -> None:
        """The opt-in message rules (5.2, 5.4, 8.1) for a received data frame."""
        rules = self._rules
        if rules is not None:
            rules.feed(
                frame.msg_type,
                frame.fin,
                frame.rsv1,
                frame.rsv2,
                frame.rsv3,
                frame.get_payload_as_memoryview(),
            )

    def _close_received(self, frame: WSFrame) -> None:
        # 5.5.1: the body is empty, or a code (7.4) and a UTF-8 reason.
        info = parse_close_payload(frame.get_payload_as_memoryview())
        # 5.5.1: the peer sends nothing after its CLOSE: drop whatever it does send,
        # unread, so that it cannot fill the buffer while the application answers.
        self._reader.discard_rest()
        record = self.close_handshake
        if record is None:
            # The peer closed first: whatever we send now answers it.
            self.close_handshake = WSCloseHandshake(recv=info, recv_then_sent=True)
            self.state = _CLOSING
        else:
            record.recv = info
            self.state = _CLOSED  # 7.1.4: both CLOSEs went across

    def receive_eof(self) -> None:
        """The peer closed its side of the TCP connection."""
        if self.state is _CONNECTING and isinstance(self._handshake, ClientHandshake):
            try:
                self._handshake.receive_eof()  # raises unless the handshake was done
            except WSHandshakeError as exc:
                self._lose(exc)
                raise
        self._lose(None)

    def connection_lost(self) -> None:
        """The TCP connection is gone: nothing more can be read or sent."""
        self._lose(None)

    def _lose(self, exc: Optional[BaseException]) -> None:
        if exc is not None and self.failure is None:
            self.failure = exc
        self.state = _CLOSED
        self._reader.discard_rest()

    # -- sending -------------------------------------------------------------------

    @property
    def can_send(self) -> bool:
        """Frames may be sent: the connection is open and our CLOSE is not out (5.5.1)."""
        return not self.close_sent and (self.state is _OPEN or self.state is _CLOSING)

    def _frame(self, first: int, payload: Payload) -> bytes:
        keys = self.mask_keys
        return self._build(first, payload, keys.next_key() if keys is not None else None)

    def build_in_buffer(self, first: int, payload: Payload, size: int, busy: bool) -> memoryview:
        """A big frame, built in the send buffer the connection keeps (no checks:
        the caller checked :attr:`can_send` and the opcode).

        A fresh megabyte comes from mmap() or a trimmed heap, and its first touch
        page-faults every 4 KiB: that held 1 MiB echoes to 0.48 of the raw ceiling on
        CPython, where reused (warm) memory reaches 0.97 (benchmarks/README.md).
        ``busy`` says the transport may still hold the previous frame (asyncio 3.12+,
        uvloop and TLS keep a reference to what they could not send at once): then
        the frame gets a fresh buffer, which becomes the one kept.
        """
        buffer: Any = self._send_buffer
        needed = size + MAX_HEADER_SIZE
        if buffer is None or buffer.capacity < needed or busy:
            self._send_buffer = buffer = self.backend.SendBuffer(needed)
        keys = self.mask_keys
        view: memoryview = buffer.build(first, payload, keys.next_key() if keys else None)
        return view

    def send_frame(self, first: int, payload: Payload) -> Optional[bytes]:
        """The frame whose byte 0 is ``first`` (FIN, RSV bits, opcode), or None when
        nothing may be sent.  A CLOSE must go through :meth:`send_close`."""
        if not self.can_send:
            return None
        if first & 0x0F == _CLOSE:
            raise ValueError("a CLOSE frame must be sent with send_close()")
        if first & 0x08 and len(payload) > MAX_CONTROL_PAYLOAD:
            # 5.5: "All control frames MUST have a payload length of 125 bytes or less"
            raise ValueError(
                f"a control frame's payload is at most {MAX_CONTROL_PAYLOAD} bytes, "
                f"got {len(payload)}"
            )
        return self._frame(first, payload)

    def send_ping(self, payload: Payload = b"") -> Optional[bytes]:
        """A PING (5.5.2), or None when nothing may be sent."""
        return self.send_frame(_PING_FIRST, payload)

    def send_pong(self, payload: Payload = b"") -> Optional[bytes]:
        """A PONG (5.5.3), or None when nothing may be sent."""
        return self.send_frame(_PONG_FIRST, payload)

    def send_close(
        self, code: int = WSCloseCode.NO_INFO, reason: Union[str, Payload, None] = None
    ) -> Optional[bytes]:
        """Our CLOSE (5.5.1), recorded in :attr:`close_handshake`; None when it may not
        be sent (already sent, or the connection is over).

        ``NO_INFO`` sends no code (an empty body).  Raises ValueError, before anything
        is recorded, for a code that must never be sent (7.4) or a reason that does
        not fit a control frame.
        """
        payload = build_close_payload(code, reason)
        if not self.can_send:
            return None
        return self._close(payload)

    def _close(self, payload: bytes) -> bytes:
        data = self._frame(_CLOSE_FIRST, payload)
        self.close_sent = True
        info = WSCloseInfo(
            WSCloseCode((payload[0] << 8) | payload[1]) if payload else WSCloseCode.NO_INFO,
            str(payload[2:], "utf-8", "replace"),
        )
        record = self.close_handshake
        if record is None:
            self.close_handshake = WSCloseHandshake(sent=info)
            self.state = _CLOSING
        else:
            record.sent = info
            self.state = _CLOSED  # 7.1.4: both CLOSEs went across
        return data

    def fail(self, exc: BaseException) -> None:
        """*Fail the WebSocket Connection* because of ``exc`` (7.1.7).

        Sends a CLOSE with the code for ``exc`` (``pending``) unless ours is out, and
        ends the connection: nothing more is read or sent; the glue closes TCP.  A
        :class:`~picows.WSProtocolError` carries its own code; anything else is an
        INTERNAL_ERROR (``picows._close.close_frame_for``).
        """
        if self.failure is None:
            self.failure = exc
        if self.state is _CLOSED:
            return
        if not self.close_sent and self.state is not _CONNECTING:
            code, reason = close_frame_for(exc)
            self.pending.append(self._close(build_close_payload(code, reason)))
        self._lose(None)

    # -- memory ----------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Received bytes not taken out as frames yet."""
        return self._reader.buffered

    @property
    def buffer_capacity(self) -> int:
        return self._reader.buffer_capacity

    def shrink_buffers(self) -> bool:
        """Give back grown buffers when idle: the receive buffer if it is empty, and
        the send buffer (the transport must not hold its last frame any more).
        True when the receive buffer is back to its initial size."""
        self._send_buffer = None
        self._reader.shrink()
        return self._reader.buffer_capacity <= self._reader.initial_size
