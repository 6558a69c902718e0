"""The send side of :class:`~picows.websockets.asyncio.connection.Connection`.

A message is written to the core's transport at once (compressed first when
permessage-deflate was agreed, with RSV1 on its first frame, RFC 7692 6); ``send``
then waits only if the transport's buffer is over its high-water mark
(``write_limit``), until it drains below the low one.  A fragmented message (an
iterable or async iterable) goes out one frame per item, then an empty final frame,
as websockets does; other messages wait until it is complete (5.4: "the fragments
of one message MUST NOT be interleaved").
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Optional, Union, cast

from ..._types import WSCloseCode, WSMsgType
from ..exceptions import ConnectionClosed
from ..extensions.permessage_deflate import PerMessageDeflate
from ..typing import DataLike

if TYPE_CHECKING:
    from ..._transport import WSTransport

__all__ = ["Sending"]

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONTINUATION = WSMsgType.CONTINUATION
_BYTES_LIKE = (bytes, bytearray, memoryview)

Fragments = Union[Iterable[DataLike], AsyncIterable[DataLike]]
Message = Union[DataLike, Fragments]


class Sending:
    """Mixin: ``send`` and the machinery behind it (drain, fragment turns)."""

    # Defined by Connection.
    transport: Optional[WSTransport]
    loop: asyncio.AbstractEventLoop
    _deflate: Optional[PerMessageDeflate]
    _send_in_progress: bool
    _send_turn: deque[asyncio.Future[None]]
    _write_paused: bool
    _drain_waiters: list[asyncio.Future[None]]

    def _is_open(self) -> bool:
        raise NotImplementedError

    def _fail(self, code: int, reason: str) -> None:
        raise NotImplementedError

    async def _raise_closed(self, cause: Optional[BaseException] = None) -> Any:
        raise NotImplementedError

    def _encode_and_send(self, msg_type: int, data: DataLike, fin: bool) -> None:
        """Write one frame; ``msg_type`` is CONTINUATION for a message's later frames."""
        transport = self.transport
        assert transport is not None
        deflate = self._deflate
        if deflate is None:
            transport.send(msg_type, data, fin)
            return
        first = msg_type != _CONTINUATION
        payload = data.encode("utf-8") if isinstance(data, str) else data
        # RFC 7692 6: "the first frame of the message" carries RSV1.
        transport.send(msg_type, deflate.compress(payload, first=first, fin=fin), fin, first)

    async def _drain(self) -> None:
        waiter = self.loop.create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            self._drain_waiters.remove(waiter)
        if not self._is_open():
            await self._raise_closed()

    def _wake_senders(self) -> None:
        """The connection closed: nobody may wait for drain or a turn any more."""
        self._write_paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        for waiter in self._send_turn:
            if not waiter.done():
                waiter.set_result(None)

    async def _wait_turn(self) -> None:
        waiter = self.loop.create_future()
        self._send_turn.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._send_turn:
                self._send_turn.remove(waiter)

    def _next_turn(self) -> None:
        self._send_in_progress = False
        for waiter in self._send_turn:
            if not waiter.done():
                waiter.set_result(None)
                return

    async def send(self, message: Message, text: Optional[bool] = None) -> None:
        """Send a message: ``str`` as TEXT, bytes-like as BINARY (``text`` overrides).

        An iterable or async iterable of str (or of bytes-like) is sent as one
        fragmented message.  Raises ConnectionClosed when the connection is closed,
        TypeError for anything else (a dict is refused: a common mistake).
        """
        while self._send_in_progress:
            await self._wait_turn()
            if not self._is_open():
                await self._raise_closed()
        if isinstance(message, str):
            opcode = _BINARY if text is False else _TEXT
        elif isinstance(message, _BYTES_LIKE):
            opcode = _TEXT if text else _BINARY
        elif isinstance(message, Mapping):
            raise TypeError("data is a dict-like object")
        elif isinstance(message, (Iterable, AsyncIterable)):
            await self._send_fragments(cast(Fragments, message), text)
            return
        else:
            raise TypeError(
                f"message has unsupported type {type(message).__name__}: data must be "
                "str, bytes, iterable, or async iterable"
            )
        transport = self.transport  # _is_open(), inlined: this is the per-message path
        if transport is None or transport.close_handshake is not None or transport.is_disconnected:
            await self._raise_closed()
        self._encode_and_send(opcode, message, True)
        if self._write_paused:
            await self._drain()

    async def _send_fragments(self, message: Fragments, text: Optional[bool]) -> None:
        if isinstance(message, AsyncIterable):
            chunks: Any = message.__aiter__()
            is_async = True
        else:
            chunks = iter(message)
            is_async = False
        try:
            chunk = await chunks.__anext__() if is_async else next(chunks)
        except (StopIteration, StopAsyncIteration):
            return  # an empty iterable sends nothing
        if not self._is_open():
            await self._raise_closed()
        self._send_in_progress = True
        try:
            kind: Any
            if isinstance(chunk, str):
                opcode, kind = (_BINARY if text is False else _TEXT), str
            elif isinstance(chunk, _BYTES_LIKE):
                opcode, kind = (_TEXT if text else _BINARY), _BYTES_LIKE
            else:
                raise TypeError(
                    "iterable message must contain str or bytes-like objects, "
                    f"not {type(chunk).__name__}"
                )
            while True:
                self._encode_and_send(opcode, chunk, False)
                opcode = _CONTINUATION
                if self._write_paused:
                    await self._drain()
                try:
                    chunk = await chunks.__anext__() if is_async else next(chunks)
                except (StopIteration, StopAsyncIteration):
                    break
                if not self._is_open():
                    await self._raise_closed()
                if not isinstance(chunk, kind):
                    raise TypeError(
                        "all fragments must be of the same category, str or bytes-like: "
                        "iterable must contain uniform types"
                    )
            self._encode_and_send(_CONTINUATION, b"", True)
            if self._write_paused:
                await self._drain()
        except ConnectionClosed:
            raise
        except BaseException:
            # Half a message can't be finished: the connection is unusable.
            if self._is_open():
                self._fail(WSCloseCode.INTERNAL_ERROR, "error in fragmented message")
            raise
        finally:
            self._next_turn()
