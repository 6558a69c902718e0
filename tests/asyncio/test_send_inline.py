"""WSTransport.send builds and writes frames under 64 KiB itself, inline (the hot path);
these tests check that it puts on the wire exactly what the readable path does:
``Connection.send_frame`` for the frame, ``WSTransport._send_data`` for the route.

Both backends (the autouse fixture of conftest.py), both sides, through asyncio's own
socket transport (where frames go straight to the socket, and on the cffi client in
one C call that builds and writes) and through a transport that only has ``write``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import open_connection
from picows._connection import Connection
from picows._header import first_byte
from picows._transport import WSTransport

SIZES = [0, 1, 125, 126, 127, 2048, 2049, 8191, 8192, 65535, 65536, 70000]
SIDES = ["client", "server"]


class _Host:
    async def measure_roundtrip_time(self, rounds: int) -> list[float]:
        return []

    def pong_received(self) -> None:
        pass

    def close_sent(self) -> None:
        pass


class WriteOnlyTransport:
    """An asyncio transport that is not asyncio's: every frame goes through write()."""

    def __init__(self) -> None:
        self.wire = bytearray()

    def write(self, data: Any) -> None:
        self.wire += data

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.wire += chunk

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return False


def _keys() -> Iterator[bytes]:
    n = 0
    while True:
        yield bytes(((n + i) * 37) & 0xFF for i in range(4))
        n += 1


def _pair(is_client: bool) -> tuple[Connection, Connection]:
    """Two open connections of the same side that draw the same masking keys: one
    sends through WSTransport, the other is the reference."""
    conns = open_connection(is_client=is_client), open_connection(is_client=is_client)
    if is_client:
        for conn in conns:
            assert conn.mask_keys is not None
            conn.mask_keys.next_key = _keys().__next__  # type: ignore[method-assign]
    return conns


def _transport(conn: Connection, underlying: Any, loop: Optional[Any] = None) -> WSTransport:
    disconnected = loop.create_future() if loop is not None else None
    return WSTransport(
        conn,
        _Host(),
        underlying,
        None,
        None,
        disconnected,
        logging.getLogger("test"),  # type: ignore[arg-type]
    )


def _as(kind: str, payload: bytes) -> Any:
    if kind == "bytearray":
        return bytearray(payload)
    if kind == "memoryview":
        return memoryview(b"<" + payload + b">")[1:-1].toreadonly()
    if kind == "memoryview-c":  # another format than "B"
        return memoryview(payload).cast("c")
    if kind == "memoryview-strided":  # not contiguous
        return memoryview(bytes(b for byte in payload for b in (byte, 0)))[::2]
    if kind == "str":
        return payload.decode("latin-1")
    return payload


def _wire_payload(kind: str, payload: bytes) -> bytes:
    return payload.decode("latin-1").encode() if kind == "str" else payload


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    is_client=st.booleans(),
    frames=st.lists(
        st.tuples(
            st.sampled_from([0, 1, 2, 9, 10]),
            st.one_of(st.binary(max_size=300), st.sampled_from(SIZES).map(bytes)),
            st.sampled_from(
                ["bytes", "bytearray", "memoryview", "memoryview-c", "memoryview-strided", "str"]
            ),
            st.booleans(),
            st.booleans(),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_send_writes_what_the_connection_would(
    is_client: bool, frames: list[tuple[int, bytes, str, bool, bool]]
) -> None:
    conn, reference = _pair(is_client)
    underlying = WriteOnlyTransport()
    transport = _transport(conn, underlying)
    expected = b""
    for opcode, payload, kind, fin, rsv1 in frames:
        if opcode >= 8:
            payload, fin = payload[:125], True  # control frames: short, never fragmented
        transport.send(opcode, _as(kind, payload), fin, rsv1)
        frame = reference.send_frame(first_byte(opcode, fin, rsv1), _wire_payload(kind, payload))
        assert frame is not None
        expected += frame
    assert bytes(underlying.wire) == expected


@pytest.mark.parametrize("side", SIDES)
async def test_send_over_asyncio_sockets_writes_what_the_connection_would(side: str) -> None:
    # asyncio's own transport: frames go straight to the socket (and, for the cffi
    # client, through one C call); a small send buffer makes some writes partial.
    loop = asyncio.get_running_loop()
    conn, reference = _pair(side == "client")
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    underlying, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    transport = _transport(conn, underlying, loop)
    expected = b""
    for size in SIZES * 2:
        payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
        for message in (payload, memoryview(payload).toreadonly()):
            transport.send(2, message)
            frame = reference.send_frame(0x82, payload)
            assert frame is not None
            expected += frame
    theirs.setblocking(False)
    received = b""
    while len(received) < len(expected):
        await asyncio.sleep(0.001)
        try:
            received += theirs.recv(1 << 20)
        except BlockingIOError:
            pass
    assert received == expected
    underlying.close()
    theirs.close()
