"""The receive side of :class:`~picows.websockets.asyncio.connection.Connection`.

Frames become queue items in ``on_ws_frame``: a whole message (one frame with
FIN) is queued as its data, ``str`` for TEXT and ``bytes`` for BINARY, decoded and
checked once; each frame of a fragmented message is queued as a tuple
``(data, is_text, fin)`` of raw (inflated, already UTF-8-checked) bytes.  ``recv``
takes a whole message without ever suspending when one is queued.

Flow control (``max_queue``): when the queue holds more than the high-water mark
of items, the core's transport stops reading from the socket; when ``recv`` brings
it down to the low-water mark, reading resumes.  TCP then pushes back on the peer.
"""

from __future__ import annotations

import asyncio
import codecs
import os
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Optional

from ..._exceptions import WSProtocolError
from ..._frames import WSFrame
from ..._messages import MessageRules
from ..._types import WSCloseCode, WSMsgType, decode_utf8
from ..exceptions import ConcurrencyError, ConnectionClosed, ConnectionClosedOK, TooManyFragments
from ..extensions.permessage_deflate import PerMessageDeflate
from ..typing import Data

if TYPE_CHECKING:
    from ..._transport import WSTransport

__all__ = ["Receiving"]

_CONTINUATION = WSMsgType.CONTINUATION
_utf8_decoder = codecs.getincrementaldecoder("utf-8")
# How many frames recv() reassembles into one message, as websockets: empty
# fragments cost no max_size but memory each, so they need a bound of their own.
MAX_FRAGMENTS = int(os.environ.get("WEBSOCKETS_MAX_FRAGMENTS", "4096"))


class Receiving:
    """Mixin: frames in, messages out (``recv``, ``recv_streaming``, ``async for``)."""

    # Defined by Connection.
    transport: Optional[WSTransport]
    loop: asyncio.AbstractEventLoop
    _deflate: Optional[PerMessageDeflate]
    _rules: MessageRules
    _max_message_size: Optional[int]
    _max_frame_size: Optional[int]
    _message_size: int
    _queue: deque[Any]
    _queue_high: int
    _queue_low: int
    _reading_paused: bool
    _recv_waiter: Optional[asyncio.Future[None]]
    _recv_busy: bool
    _close_exc: Optional[ConnectionClosed]

    def _fail(self, code: int, reason: str) -> None:
        raise NotImplementedError

    async def _raise_closed(self, cause: Optional[BaseException] = None) -> Any:
        raise NotImplementedError

    # -- frames in (called by on_ws_frame) -------------------------------------------

    def _data_frame(self, frame: WSFrame, msg_type: WSMsgType) -> None:
        rules = self._rules
        fin = frame.fin
        compressed = rules.frame(msg_type, fin, frame.rsv1, frame.rsv2, frame.rsv3)
        first = msg_type is not _CONTINUATION
        if first:
            self._message_size = 0
        limit = self._max_message_size
        if limit is not None:
            limit -= self._message_size
        if self._max_frame_size is not None and (limit is None or limit > self._max_frame_size):
            limit = self._max_frame_size
        if compressed:
            assert self._deflate is not None
            # RFC 7692 7.2.2, inflating at most limit + 1 bytes (a bomb stops there).
            data: Any = self._deflate.decompress(
                frame.get_payload_as_memoryview(), first=first, fin=bool(fin), max_length=limit
            )
            size = len(data)
        else:
            size = frame.payload_size
            if limit is not None and size > limit:
                raise WSProtocolError(WSCloseCode.MESSAGE_TOO_BIG, "message too big")
            data = frame.get_payload_as_memoryview()
        self._message_size += size
        is_text = rules.is_text
        if first and fin:
            # A whole message: queue its final form, decoded (and checked) once.
            item: Any = rules.text(data, fin) if is_text else bytes(data)
        else:
            if is_text:
                rules.text(data, fin)  # 8.1: fails at the first invalid byte
            item = (bytes(data), is_text, fin)
        self._queue.append(item)
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._queue_high and len(self._queue) > self._queue_high and not self._reading_paused:
            self._reading_paused = True
            assert self.transport is not None
            self.transport.underlying_transport.pause_reading()

    def _wake_receiver(self) -> None:
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- messages out ----------------------------------------------------------------

    def _took(self) -> None:
        """An item left the queue: resume reading once it is down to the low mark."""
        if self._reading_paused and len(self._queue) <= self._queue_low:
            self._reading_paused = False
            transport = self.transport
            if transport is not None and not transport.is_disconnected:
                transport.underlying_transport.resume_reading()

    async def _next_item(self) -> Any:
        """The next queue item; ConnectionClosed once closed and drained."""
        queue = self._queue
        while not queue:
            if self._close_exc is not None:
                await self._raise_closed()
            waiter = self._recv_waiter = self.loop.create_future()
            try:
                await waiter
            finally:
                self._recv_waiter = None
        item = queue.popleft()
        if self._reading_paused:
            self._took()
        return item

    async def _decode_failed(self, exc: UnicodeDecodeError) -> Any:
        # 8.1 (decode=True on a BINARY message that isn't UTF-8): 1007, as websockets.
        self._fail(WSCloseCode.INVALID_TEXT, f"{exc.reason} at position {exc.start}")
        await self._raise_closed(exc)

    async def recv(self, decode: Optional[bool] = None) -> Data:
        """The next message: ``str`` for TEXT, ``bytes`` for BINARY.

        ``decode=False`` returns TEXT as bytes, ``decode=True`` decodes BINARY.
        Fragmented messages are reassembled.  Cancelling is safe: nothing is lost.
        Raises ConnectionClosed once the connection is closed and every message
        received before was returned.
        """
        if self._recv_busy:
            raise ConcurrencyError(
                "cannot call recv while another coroutine is already running recv or recv_streaming"
            )
        queue = self._queue
        if queue and type(queue[0]) is not tuple:
            # Fast path: a whole message is waiting; no suspension at all.
            item = queue.popleft()
            if self._reading_paused:
                self._took()
            if decode is None:
                return item  # type: ignore[no-any-return]
            return await self._convert(item, decode)
        self._recv_busy = True
        try:
            item = await self._next_item()
            if type(item) is not tuple:
                return await self._convert(item, decode)
            taken = [item]
            try:
                while not item[2]:
                    item = await self._next_item()
                    if len(taken) >= MAX_FRAGMENTS:
                        self._fail(WSCloseCode.MESSAGE_TOO_BIG, "too many fragments")
                        await self._raise_closed(TooManyFragments(MAX_FRAGMENTS))
                    taken.append(item)
            except asyncio.CancelledError:
                queue.extendleft(reversed(taken))  # as if never received
                raise
        finally:
            self._recv_busy = False
        data = b"".join([piece[0] for piece in taken])
        is_text = taken[0][1]
        if decode is False or (decode is None and not is_text):
            return data
        if is_text:
            return decode_utf8(data)  # checked on arrival: can't fail
        try:
            return decode_utf8(data)
        except UnicodeDecodeError as exc:
            return await self._decode_failed(exc)  # type: ignore[no-any-return]

    async def _convert(self, item: Any, decode: Optional[bool]) -> Data:
        if type(item) is str:
            return item.encode("utf-8") if decode is False else item
        if decode:
            try:
                return decode_utf8(item)
            except UnicodeDecodeError as exc:
                return await self._decode_failed(exc)  # type: ignore[no-any-return]
        return item  # type: ignore[no-any-return]

    async def recv_streaming(self, decode: Optional[bool] = None) -> AsyncIterator[Data]:
        """The next message, one piece per frame, as the frames arrive.

        Must be consumed to the end: until then, ``recv`` and ``recv_streaming``
        raise ConcurrencyError.  Cancelling before the first piece is safe.
        """
        if self._recv_busy:
            raise ConcurrencyError(
                "cannot call recv_streaming while another coroutine is already running "
                "recv or recv_streaming"
            )
        self._recv_busy = True
        try:
            item = await self._next_item()
        except BaseException:
            self._recv_busy = False
            raise
        if type(item) is not tuple:
            self._recv_busy = False
            yield await self._convert(item, decode)
            return
        is_text = item[1]
        if decode is None:
            decode = is_text
        decoder = _utf8_decoder() if decode else None
        while True:
            data, _, fin = item
            if decoder is None:
                yield data
            else:
                try:
                    text = decoder.decode(data, fin)
                except UnicodeDecodeError as exc:
                    await self._decode_failed(exc)
                yield text
            if fin:
                break
            item = await self._next_item()
        self._recv_busy = False

    async def __aiter__(self) -> AsyncIterator[Data]:
        """Receive messages until the connection closes normally (then stop) or
        with an error (then raise ConnectionClosedError)."""
        try:
            while True:
                yield await self.recv()
        except ConnectionClosedOK:
            return
