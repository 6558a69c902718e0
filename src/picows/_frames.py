"""Frames, RFC 6455 section 5: the incremental parser and the encoder.

Base framing protocol (5.2)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-------+-+-------------+-------------------------------+
    |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
    |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
    |N|V|V|V|       |S|             |   (if payload len==126/127)   |
    | |1|2|3|       |K|             |                               |
    +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
    |     Extended payload length continued, if payload len == 127  |
    + - - - - - - - - - - - - - - - +-------------------------------+
    |                               |Masking-key, if MASK set to 1  |
    +-------------------------------+-------------------------------+
    | Masking-key (continued)       |          Payload Data         |
    +-------------------------------- - - - - - - - - - - - - - - - +

:class:`FrameReader` owns one receive buffer.  The I/O layer asks it for free space
(``get_buffer``), reports how many bytes arrived (``buffer_updated``) and then takes
frames out (``next_frame``) until none is complete.  A frame is a view into that
buffer, unmasked in place: no payload is copied on the way in.  Nothing here knows
about sockets or asyncio.
"""

from __future__ import annotations

import functools
import itertools
import os
import struct
import sys
from typing import Callable, Optional, Union

from . import _backend
from ._backend import BATCH_MIN_FRAMES, PYPY, Backend
from ._header import (
    LENGTH_16,
    LENGTH_64,
    LENGTH_BITS,
    MASK_BIT,
    MAX_HEADER_SIZE,
    OPCODE_BITS,
    RSV_BITS,
    encode_header,
    first_byte,
)
from ._types import WSCloseCode, WSMsgType, decode_utf8

__all__ = [
    "MAX_HEADER_SIZE",
    "UNMASK_AHEAD_FRAME",
    "UNMASK_AHEAD_STEP",
    "FrameReader",
    "MaskKeySource",
    "WSFrame",
    "encode_frame",
    "encode_frame_header",
]

# The 5.2 bit-layout constants (FIN_BIT, MASK_BIT, LENGTH_16, ...) live in _header,
# beside the header decoder and encoder that use them.

_UNPACK_16 = struct.Struct("!H").unpack_from
_UNPACK_64 = struct.Struct("!Q").unpack_from

# Opcode -> WSMsgType member, indexed instead of calling WSMsgType(opcode) on every
# frame.  The reserved opcodes of 5.2 get pseudo-members, but never reach the
# lookup: the header decoders reject them.
_MSG_TYPES: tuple[WSMsgType, ...] = tuple(WSMsgType(op) for op in range(16))
_CLOSE = WSMsgType.CLOSE

# When the batch decoder is in use, FrameReader hands it a read that starts with a
# small frame (7-bit length) and holds at least BATCH_MIN_FRAMES times that frame's
# size: likely many small frames, where its fixed cost pays off (a read of one or two
# frames is decoded faster in Python).  Indexed by the second header byte: the
# number of unread bytes that takes.
_BATCH_AT: tuple[int, ...] = tuple(
    BATCH_MIN_FRAMES * (2 + (second & LENGTH_BITS) + (4 if second & MASK_BIT else 0))
    if second & LENGTH_BITS < LENGTH_16
    else sys.maxsize
    for second in range(256)
)

# next_frame's fast path, by byte 0 and by byte 1 of a header: whether byte 0 is a
# data frame's (CONTINUATION, TEXT or BINARY) with no RSV bit, or any (allow_rsv);
# the 7-bit length field, or 127 (never a fast frame) when the MASK bit is not what
# the reader expects (5.1); and the frame's WSMsgType and FIN bit.
_FAST_FIRST: dict[bool, tuple[bool, ...]] = {
    allow_rsv: tuple(
        b & (OPCODE_BITS if allow_rsv else OPCODE_BITS | RSV_BITS) <= 2 for b in range(256)
    )
    for allow_rsv in (False, True)
}
_FAST_LENGTH: dict[bool, tuple[int, ...]] = {
    masked: tuple(
        b & LENGTH_BITS if bool(b & MASK_BIT) == masked else LENGTH_64 for b in range(256)
    )
    for masked in (False, True)
}
_MSG_TYPE_OF: tuple[WSMsgType, ...] = tuple(_MSG_TYPES[b & OPCODE_BITS] for b in range(256))
_FIN_OF: tuple[int, ...] = tuple(b >> 7 for b in range(256))
# No batch decoder: no read is ever big enough.
_NO_BATCH: tuple[int, ...] = (sys.maxsize,) * 256

#: Masked frames of this size and more are unmasked read by read as they arrive
#: (FrameReader._unmask_ahead), in steps of at least UNMASK_AHEAD_STEP bytes.
UNMASK_AHEAD_FRAME = 65536
UNMASK_AHEAD_STEP = 16384

ReadableBuffer = Union[bytes, bytearray, memoryview]

# A WSFrame slices a read-only view of the receive buffer, so that its payload views
# are read-only at no cost per frame (on CPython; get_payload_as_memoryview says why not on PyPy).
_SLICE_READONLY = PYPY


def _frame_view(view: memoryview) -> memoryview:
    """The view of the receive buffer a WSFrame keeps."""
    return view if _SLICE_READONLY or view.readonly else view.toreadonly()


# MaskKeySource: masking keys per os.urandom() call, and the unpacker that cuts one
# batch of random bytes into a tuple of 4-byte keys.
_KEY_BATCH = 64
_SPLIT_KEYS = struct.Struct("4s" * _KEY_BATCH)


class WSFrame:
    """A received frame: a view into the receive buffer.

    Only valid during ``WSListener.on_ws_frame``: after the callback returns, the
    buffer is reused for the next data.  Copy the payload with one of the
    ``get_payload_as_*`` methods if you need it later.
    """

    __slots__ = (
        "_first",
        "_reader",
        "_start",
        "_view",
        "fin",
        "msg_type",
        "payload_size",
        "tail_size",
    )

    msg_type: WSMsgType
    #: 1 if this is the last frame of a message (0/1 ints, as upstream).
    fin: int
    payload_size: int
    #: How many bytes are buffered after this frame, complete frames or not.
    tail_size: int

    def __init__(
        self,
        reader: Optional[FrameReader],
        view: memoryview,
        msg_type: WSMsgType,
        first_byte: int,
        start: int,
        payload_size: int,
        tail_size: int,
    ) -> None:
        self._reader = reader
        self._view = _frame_view(view)  # of the whole receive buffer
        self._start = start
        self._first = first_byte
        self.msg_type = msg_type
        self.fin = first_byte >> 7
        self.payload_size = payload_size
        self.tail_size = tail_size

    # The RSV bits (0/1 ints, as upstream), from byte 0 when asked: rarely read.
    @property
    def rsv1(self) -> int:
        return (self._first >> 6) & 1

    @property
    def rsv2(self) -> int:
        return (self._first >> 5) & 1

    @property
    def rsv3(self) -> int:
        return (self._first >> 4) & 1

    @property
    def last_in_buffer(self) -> int:
        """1 if no further *complete* frame is buffered behind this one."""
        if self.tail_size == 0 or self._reader is None:
            return 1
        end = self._start + self.payload_size
        return 0 if self._reader.has_complete_frame_at(end) else 1

    def get_payload_as_memoryview(self) -> memoryview:
        """A read-only, zero-copy view of the payload in the receive buffer."""
        start = self._start
        if _SLICE_READONLY:
            # PyPy: made read-only per slice, as slices of a read-only view of the
            # whole buffer copy ~1000x slower there than slices of a plain view.
            return self._view[start : start + self.payload_size].toreadonly()
        return self._view[start : start + self.payload_size]  # of a read-only view

    def get_payload_as_bytes(self) -> bytes:
        start = self._start
        return self._view[start : start + self.payload_size].tobytes()

    def get_payload_as_utf8_text(self) -> str:
        """Decode the payload as UTF-8; raises UnicodeDecodeError on bad input."""
        start = self._start
        return decode_utf8(self._view[start : start + self.payload_size])

    def get_payload_as_ascii_text(self) -> str:
        """Decode the payload as 7-bit ASCII; raises UnicodeDecodeError on bad input."""
        start = self._start
        return str(self._view[start : start + self.payload_size], "ascii")

    def _check_close(self, method: str) -> None:
        if self.msg_type != _CLOSE:
            raise AssertionError(f"WSFrame.{method} is only valid for CLOSE frames")

    def get_close_code(self) -> WSCloseCode:
        """The status code of a CLOSE frame, ``NO_INFO`` when it has none."""
        self._check_close("get_close_code")
        if self.payload_size < 2:
            return WSCloseCode.NO_INFO
        view, start = self._view, self._start
        return WSCloseCode((view[start] << 8) | view[start + 1])

    def get_close_message(self) -> Optional[bytes]:
        """The reason bytes of a CLOSE frame, or None when there are none."""
        self._check_close("get_close_message")
        if self.payload_size <= 2:
            return None
        start = self._start
        return self._view[start + 2 : start + self.payload_size].tobytes()

    def get_close_reason(self) -> Optional[str]:
        """The reason of a CLOSE frame as text, or None when there is none."""
        message = self.get_close_message()
        return None if message is None else decode_utf8(message)

    def __str__(self) -> str:
        return (
            f"WSFrame({self.msg_type.name}, fin={bool(self.fin)}, rsv1={bool(self.rsv1)}, "
            f"rsv2={bool(self.rsv2)}, rsv3={bool(self.rsv3)}, "
            f"last_in_buffer={bool(self.last_in_buffer)}, "
            f"payload_sz={self.payload_size}, tail_sz={self.tail_size})"
        )

    __repr__ = __str__


class FrameReader:
    """Incremental frame parser over one growable receive buffer.

    States follow the wire layout: the fixed 2-byte header, the extended length, the
    masking key, the payload.  Rather than storing the state between calls, the
    reader re-reads the (at most 14-byte) header of an incomplete frame when more
    data arrives: that is cheaper in Python than a state variable per field, and it
    means every way of splitting the input gives the same frames.

    Headers are decoded by the functions of the reader's :class:`~picows._backend.Backend`
    (``benchmarks/header_results.md``): one header at a time in Python, and, where
    the cffi batch decoder is faster, all the complete headers of a read in one C
    call, kept in a small cache (``_batch``) that ``next_frame`` consumes in order.
    The cache holds only (byte 0, header size, payload length) of frames that follow
    each other from ``_start``, so moving the unread bytes to the front of the
    buffer, or into a bigger one, leaves it valid.

    Memory follows the bytes that arrived, never the length a header announces: the
    buffer doubles only when received bytes fill it (up to the size of the frame
    being received), so a peer that announces 8 MiB and sends 2 bytes costs nothing
    more.  :meth:`shrink` gives a grown buffer back once it is empty.
    """

    __slots__ = (
        "_allow_rsv",
        "_batch",
        "_batch_at",
        "_batch_next",
        "_batch_stop",
        "_bind_unmask",
        "_buffer",
        "_close_received",
        "_decode_header",
        "_decode_headers",
        "_expect_masked",
        "_fast_first",
        "_fast_length",
        "_frame",
        "_mask_inplace",
        "_max_frame_size",
        "_needed",
        "_short_header",
        "_start",
        "_unmask",
        "_unmasked_to",
        "_view",
        "end",
        "grown",
        "initial_size",
    )

    def __init__(
        self,
        *,
        is_client: bool,
        max_frame_size: int = 10 * 1024 * 1024,
        read_buffer_init_size: int = 16 * 1024,
        allow_rsv: bool = False,
        backend: Optional[Backend] = None,
    ) -> None:
        # 5.1: "a client MUST mask all frames that it sends to the server" and "a
        # server MUST NOT mask any frames that it sends to the client".
        self._expect_masked = not is_client
        self._max_frame_size = max_frame_size
        # 5.2 RSV1-3: "MUST be 0 unless an extension is negotiated".
        self._allow_rsv = allow_rsv
        backend = backend or _backend.ACTIVE
        # The tables of next_frame's inline fast path (see there).
        self._fast_first = _FAST_FIRST[allow_rsv]
        self._fast_length = _FAST_LENGTH[self._expect_masked]
        self._short_header = 6 if self._expect_masked else 2
        self._decode_header = backend.decode_header
        self._decode_headers = backend.decode_headers
        self._batch_at = _BATCH_AT if backend.decode_headers is not None else _NO_BATCH
        self._bind_unmask = backend.bind_unmask
        self._mask_inplace = backend.apply_mask_inplace
        self.initial_size = max(read_buffer_init_size, 2048)
        #: Whether the buffer grew past its initial size (the owner may call shrink()).
        self.grown = False
        self._set_buffer(bytearray(self.initial_size))
        # The one WSFrame this reader hands out, refilled for every frame: a frame is
        # only valid until the next call (and during on_ws_frame), as upstream says.
        self._frame = WSFrame(self, self._view, _MSG_TYPES[0], 0, 0, 0, 0)
        self._start = 0  # first byte not yet parsed
        #: Where the received bytes end: ``buffer_updated`` (or the glue, inline) adds
        #: the size of each read to it.
        self.end = 0
        self._needed = 0  # total size of the incomplete frame at _start, if known
        # Where the part of the incomplete frame at _start that is already unmasked
        # ends (see _unmask_ahead); 0 when none is.
        self._unmasked_to = 0
        self._close_received = False
        # Batch cache: _batch[_batch_next : _batch_stop] are the headers, three
        # numbers each, of the complete frames that follow one another from _start.
        self._batch: list[int] = []
        self._batch_next = 0
        self._batch_stop = 0

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet taken out as frames."""
        return self.end - self._start

    @property
    def buffer_capacity(self) -> int:
        return len(self._buffer)

    def _set_buffer(self, buffer: bytearray) -> None:
        # Views and the unmasker are made once per buffer, not per read or frame.
        # They pin the bytearray's size, so a bigger buffer is a new bytearray.
        self._buffer = buffer
        self._view = memoryview(buffer)  # the event loop reads into it, frames slice it
        self._unmask: Callable[[int, int], int] = self._bind_unmask(buffer)
        frame = getattr(self, "_frame", None)
        if frame is not None:
            frame._view = _frame_view(self._view)

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Free space at the end of the buffer, for the next read to fill."""
        start, end = self._start, self.end
        if start == end:
            # Everything was consumed: start over at the front (the common case).
            # A slice, never _view itself: the caller may release() what it gets.
            self._start = self.end = 0
            return self._view[0:]
        buffer = self._buffer
        capacity = len(buffer)
        # Room is short when the buffer is 90 % full or has 256 bytes or fewer left
        # (upstream's rule): first move the unread bytes to the front, then grow.
        if capacity - end <= max(256, capacity // 10):
            pending = end - start
            if end < capacity and start + self._needed <= capacity < 2 * pending:
                # A big frame that fits where it is: its last bytes go to the end.
                # (Moving it would copy nearly the whole buffer on every read.)
                return self._view[end:]
            if start > 0 and pending <= capacity // 2:
                buffer[:pending] = buffer[start:end]  # same-size slice assignment
            else:
                # Double, but never past the frame being received (when its header
                # is known, rounded up to 4 KiB): growth is paid for with bytes.
                new_capacity = capacity * 2
                if self._needed > pending:
                    new_capacity = min(new_capacity, (self._needed + 4095) & -4096)
                new_buffer = bytearray(max(new_capacity, pending + 257))
                new_buffer[:pending] = buffer[start:end]
                self._set_buffer(new_buffer)
                self.grown = True
            self._start, self.end = 0, pending
            if self._unmasked_to:
                self._unmasked_to -= start
            end = pending
        return self._view[end:]

    def get_read_buffer(self, sizehint: int = -1) -> memoryview:
        """:meth:`get_buffer` for an event loop that never releases what it gets
        (asyncio's selector loop): when the buffer is empty, the reader's own view of
        it, which spares a new memoryview per read."""
        if self._start == self.end:
            self._start = self.end = 0
            return self._view
        return self.get_buffer(sizehint)

    def shrink(self) -> bool:
        """Go back to the initial buffer size if the buffer grew and holds nothing.

        Called when the connection has been idle for a while, so that connections
        that once received a big frame do not keep its buffer.  True if it shrank.
        """
        if self._start != self.end or len(self._buffer) <= self.initial_size:
            return False
        self._start = self.end = 0
        self._set_buffer(bytearray(self.initial_size))
        self.grown = False
        return True

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were written into the memoryview from :meth:`get_buffer`."""
        self.end += nbytes

    def feed_data(self, data: ReadableBuffer) -> None:
        """Copy ``data`` into the buffer (for bytes that arrived some other way)."""
        size = len(data)
        while size:
            view = self.get_buffer(size)
            chunk = min(size, len(view))
            view[:chunk] = data[:chunk]
            self.buffer_updated(chunk)
            data = data[chunk:]
            size -= chunk

    def has_complete_frame_at(self, pos: int) -> bool:
        """Whether a whole frame is buffered at ``pos`` (lengths only, no checks)."""
        buffer = self._buffer
        available = self.end - pos
        if available < 2:
            return False
        second = buffer[pos + 1]
        length = second & LENGTH_BITS
        header_size = 2
        if length == LENGTH_16:
            if available < 4:
                return False
            length = _UNPACK_16(buffer, pos + 2)[0]
            header_size = 4
        elif length == LENGTH_64:
            if available < 10:
                return False
            length = _UNPACK_64(buffer, pos + 2)[0]
            header_size = 10
        if second & MASK_BIT:
            header_size += 4
        return available >= header_size + length

    def next_frame(self) -> Optional[WSFrame]:
        """The next complete frame, or None until more data arrives.

        Raises :class:`WSProtocolError` at the first frame that breaks section 5.
        Frames before it have already been returned by earlier calls.  After
        :meth:`discard_rest`, every byte is dropped unread.
        """
        if self._close_received:
            self._start = self.end
            return None
        buffer = self._buffer
        start = self._start
        end = self.end
        i = self._batch_next
        if i < self._batch_stop:
            # Decoded by the last batch call: a complete frame starts at _start.
            batch = self._batch
            first = batch[i]
            header_size = batch[i + 1]
            length = batch[i + 2]
            self._batch_next = i + 3
        elif end - start < 2:
            return None
        elif end - start >= self._batch_at[(second := buffer[start + 1])]:
            # Room for many frames like the first: one C call that decodes every
            # complete header costs less than a Python decode per frame.  (It raises
            # for a bad first header; a later one ends the batch and is raised when
            # its turn comes.)
            assert self._decode_headers is not None
            batch = self._decode_headers(
                buffer, start, end, self._expect_masked, self._allow_rsv, self._max_frame_size
            )
            stop = len(batch) - 1
            if stop == 0:
                # No complete frame: batch[0] is the size of the incomplete one, if
                # its header is complete (0 otherwise).
                if batch[0] > 0:
                    self._needed = batch[0]
                return None
            first = batch[0]
            header_size = batch[1]
            length = batch[2]
            self._batch = batch
            self._batch_next = 3
            self._batch_stop = stop
        else:
            # The common case first, decoded inline instead of by decode_header: a
            # CONTINUATION, TEXT or BINARY frame (RSV bits only where allowed), masked
            # as 5.1 demands, with a 7-bit or a minimal 16-bit length within
            # max_frame_size.  Anything else goes to decode_header, the reference,
            # which reports every violation; test_header checks both agree.  Tables
            # indexed by the header bytes stand for the bit tests: a subscript costs
            # CPython less than an `&`.
            first = buffer[start]
            length = self._fast_length[second]  # 127 if the MASK bit is wrong
            if length < LENGTH_16:
                header_size = self._short_header
            elif length == LENGTH_16 and end - start >= 4:
                length = (buffer[start + 2] << 8) | buffer[start + 3]
                header_size = self._short_header + 2 if length >= LENGTH_16 else 0
            else:
                header_size = 0
            if not (header_size and self._fast_first[first] and length <= self._max_frame_size):
                header = self._decode_header(
                    buffer, start, end, self._expect_masked, self._allow_rsv, self._max_frame_size
                )
                if header is None:
                    return None
                first, header_size, length = header
            if start + header_size + length > end:
                self._needed = header_size + length
                if length >= UNMASK_AHEAD_FRAME and self._expect_masked:
                    self._unmask_ahead(start + header_size, end)
                return None

        self._needed = 0
        payload_start = start + header_size
        frame_end = payload_start + length
        if self._unmasked_to:
            self._unmask_ahead(payload_start, frame_end, complete=True)
            self._unmasked_to = 0
        elif self._expect_masked and length and self._unmask(payload_start, frame_end):
            # 5.3: unmasked in place, so the frame is a plain view of the buffer.
            raise ValueError(f"frame [{payload_start}:{frame_end}] outside the buffer")
        self._start = frame_end
        frame = self._frame  # its _view is set with the buffer (_set_buffer)
        frame._start = payload_start
        frame._first = first
        frame.msg_type = _MSG_TYPE_OF[first]
        frame.fin = _FIN_OF[first]
        frame.payload_size = length
        frame.tail_size = end - frame_end
        return frame

    def _unmask_ahead(self, payload_start: int, end: int, complete: bool = False) -> None:
        """Unmask the payload of a big frame up to ``end`` as it arrives (5.3; the key
        is in the 4 bytes before the payload), in steps of UNMASK_AHEAD_STEP bytes or
        more, and the rest once the frame is ``complete``.

        The reads of a big frame are unmasked while the peer is still sending the
        next ones: only the last is left between the frame's last byte and the
        frame, instead of the whole payload (1 MiB: ~20 us).
        """
        done = max(self._unmasked_to, payload_start)
        if complete or end - done >= UNMASK_AHEAD_STEP:
            buffer = self._buffer
            key = bytes(buffer[payload_start - 4 : payload_start])
            self._mask_inplace(buffer, done, end, key, (done - payload_start) & 3)
            self._unmasked_to = end

    def discard_rest(self) -> None:
        """Drop every byte from now on: what follows a CLOSE is never read (5.5.1)."""
        self._close_received = True
        self._start = self.end
        self._batch_next = self._batch_stop = 0


class MaskKeySource:
    """Masking keys from a strong source (RFC 6455 10.3), drawn in batches.

    "The masking key needs to be unpredictable; thus, the masking key MUST be
    derived from a strong source of entropy".  One ``os.urandom`` call serves
    ``_BATCH`` frames.  ``next_key`` runs no Python code per key: it is the
    ``__next__`` of an iterator chain made of C builtins (``urandom`` batches, cut into
    4-byte keys by one ``struct`` unpack each), which the client's send path calls
    once per frame.
    """

    __slots__ = ("next_key",)

    #: Keys per os.urandom() call (each batch is kept as that many bytes objects).
    _BATCH = _KEY_BATCH

    def __init__(self) -> None:
        batches = iter(functools.partial(os.urandom, 4 * self._BATCH), None)
        keys = itertools.chain.from_iterable(map(_SPLIT_KEYS.unpack, batches))
        #: A fresh 4-byte key (bytes) per call.
        self.next_key: Callable[[], bytes] = keys.__next__


def encode_frame_header(
    opcode: int,
    length: int,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    mask_key: Optional[bytes] = None,
) -> bytes:
    """The header of a frame (5.2), with the masking key last when there is one."""
    return encode_header(first_byte(opcode, fin, rsv1, rsv2, rsv3), length, mask_key)


def encode_frame(
    opcode: int,
    payload: ReadableBuffer = b"",
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    mask_key: Optional[bytes] = None,
    *,
    backend: Optional[Backend] = None,
) -> bytes:
    """A whole frame: header and payload, masked with ``mask_key`` when given (5.2, 5.3).

    A Sans-I/O helper for tests and tools (the connection builds its own frames with
    the backend's ``build_frame``); ``backend`` defaults to the active one.
    """
    build = (backend or _backend.ACTIVE).build_frame
    return build(first_byte(opcode, fin, rsv1, rsv2, rsv3), payload, mask_key)
