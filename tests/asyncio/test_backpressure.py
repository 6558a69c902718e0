"""Backpressure on every interpreter: a peer that never reads makes picows call
``pause_writing``, and what asyncio buffers stays bounded by its high-water mark.

Each frame size takes one of the send paths of ``WSTransport._send_frame``: ``write``
of a joined frame (small), ``writelines`` of header and payload (8-64 KiB, where
CPython 3.12.0-3.12.8 and 3.13.0-3.13.1 never call ``pause_writing``: gh-127655) and
the reusable send buffer (64 KiB and more).  The peer is a raw TCP client with a
4 KiB receive buffer that completes the upgrade, then never reads again.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Any

import pytest

import picows
from helpers import close_server
from picows import _backend
from rawpeer import connect_raw_client

TIMEOUT = 5.0
# Enough to hold the kernel's buffers many times over: a sender that is never told
# to pause queues all of it.
FLOOD_LIMIT = 32 * 1024 * 1024


class Flooder(picows.WSListener):
    """Counts pause_writing calls; its socket's send buffer is made small."""

    def __init__(self) -> None:
        self.transport: asyncio.Future[picows.WSTransport] = (
            asyncio.get_running_loop().create_future()
        )
        self.paused = 0

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        sock = transport.underlying_transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
        self.transport.set_result(transport)

    def pause_writing(self) -> None:
        self.paused += 1


def _fastnet_kwargs(which: str) -> dict[str, Any]:
    if which == "aiofastnet":
        pytest.importorskip("aiofastnet")
        return {"use_aiofastnet": True}
    return {"use_aiofastnet": False}


@pytest.mark.parametrize("transports", ["loop", "aiofastnet"])
@pytest.mark.parametrize("size", [1000, 8192, 40_000, 65535, 200_000])
async def test_server_pauses_for_a_peer_that_never_reads(size: int, transports: str) -> None:
    listeners: list[Flooder] = []

    def route(request: picows.WSUpgradeRequest) -> Flooder:
        listeners.append(Flooder())
        return listeners[-1]

    server = await picows.ws_create_server(route, "127.0.0.1", 0, **_fastnet_kwargs(transports))
    peer = None
    try:
        port = server.sockets[0].getsockname()[1]
        peer = await connect_raw_client(port, rcvbuf=4096, stream_limit=1024)
        transport = await asyncio.wait_for(listeners[0].transport, TIMEOUT)
        underlying = transport.underlying_transport
        _, high = underlying.get_write_buffer_limits()
        payload = b"x" * size
        sent = 0
        while not listeners[0].paused and sent < FLOOD_LIMIT:
            transport.send(picows.WSMsgType.BINARY, payload)
            sent += size
        assert listeners[0].paused == 1, f"never paused after {sent} bytes ({sys.version})"
        # asyncio pauses as soon as its buffer is over the mark: one frame at most above it.
        assert underlying.get_write_buffer_size() <= high + size + 10
    finally:
        if peer is not None:
            peer.abort()
        for listener in listeners:
            if listener.transport.done():
                listener.transport.result().disconnect(graceful=False)
        await close_server(server)


def test_writelines_is_avoided_where_it_skips_pause_writing() -> None:
    """The choice in _backend follows the CPython versions of gh-127655."""
    version = sys.version_info[:3]
    buggy = sys.implementation.name == "cpython" and (
        (3, 12, 0) <= version <= (3, 12, 8) or (3, 13, 0) <= version <= (3, 13, 1)
    )
    assert _backend.WRITELINES_SKIPS_PAUSE == buggy
    if buggy:
        assert _backend.WRITELINES_MIN == sys.maxsize
