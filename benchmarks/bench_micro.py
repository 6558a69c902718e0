"""Per-frame costs below the socket: frame encoding, the send path, the receive dispatch.

Not part of the test suite (``benchmarks/`` is not under ``testpaths``).  Run with

    python -m pytest benchmarks/bench_micro.py --benchmark-only --benchmark-columns=min,median,ops

picows must be importable (installed, or ``PYTHONPATH=src``); ``PICOWS_NO_EXTENSIONS=1``
or ``PICOWS_REQUIRE_EXTENSIONS=1`` picks the backend.  Three groups:

* ``encode_frame``: :func:`picows._frames.encode_frame` for 256 B and 8 KiB payloads,
  unmasked (server) and masked (client).
* ``send``: :meth:`WSTransport.send` of a bytes payload, client (masked) and server,
  down to a stand-in asyncio transport that only counts the bytes it is given.
* ``dispatch``: one read of N frames through :class:`WSProtocol`:
  ``get_buffer``, copy the bytes in (what ``recv_into`` does), ``buffer_updated``,
  the frame parser and ``on_ws_frame`` of a listener that does nothing.  Server side
  (masked frames, unmasked in place) and client side.  ``extra_info["frames"]``
  gives N, so the per-frame cost is the time divided by N.
* ``echo``: what one request/response costs picows on each side, the whole per-message
  path of ``echo_bench.py``: one read holding one frame, dispatched to a listener that
  sends the payload back (``get_payload_as_memoryview`` and ``send``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Union

import pytest

from picows import BACKEND, WSListener, WSMsgType
from picows._frames import encode_frame
from picows._handshake import ClientHandshake, ServerHandshake
from picows._http11 import WSUpgradeResponse
from picows._protocol import ConnectionOptions, WSProtocol
from picows._transport import WSTransport
from picows._types import WSAutoPingStrategy
from picows._url import parse_url

if TYPE_CHECKING:
    from pytest_benchmark.fixture import BenchmarkFixture

SIZES = {"256 B": 256, "8 KiB": 8 << 10}
KEY = bytes.fromhex("37fa213d")
BINARY = int(WSMsgType.BINARY)


def payload(size: int) -> bytes:
    return (bytes(range(251)) * (size // 251 + 1))[:size]


class CountingTransport:
    """Stands in for an asyncio transport: takes writes and only counts the bytes."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        self.written += len(data)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.written += len(chunk)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0  # everything "went to the kernel" at once

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class Echo(WSListener):
    """Sends every frame's payload back, like the echo benchmark's peers."""

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        transport.send(BINARY, frame.get_payload_as_memoryview())


class Quiet(WSListener):
    """The listener whose cost is zero: dispatch is all that is left."""

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        pass


def _options() -> ConnectionOptions:
    return ConnectionOptions(
        logger=logging.getLogger("picows.bench"),
        disconnect_on_exception=True,
        websocket_handshake_timeout=None,
        enable_auto_ping=False,
        auto_ping_idle_timeout=10,
        auto_ping_reply_timeout=10,
        auto_ping_strategy=WSAutoPingStrategy.PING_WHEN_IDLE,
        enable_auto_pong=True,
        max_frame_size=10 << 20,
        read_buffer_init_size=16 << 10,
    )


def _feed(protocol: WSProtocol, data: bytes) -> None:
    view = protocol.get_buffer(len(data))
    view[: len(data)] = data
    protocol.buffer_updated(len(data))


async def _open_pair() -> tuple[WSProtocol, WSProtocol]:
    """A client and a server WSProtocol, handshake done, each over a CountingTransport."""
    handshake = ClientHandshake(parse_url("ws://127.0.0.1:9/"), None)
    client = WSProtocol(_options(), client_handshake=handshake, client_listener_factory=Quiet)
    server = WSProtocol(_options(), server_listener_factory=lambda request: Quiet())
    client.connection_made(CountingTransport())  # type: ignore[arg-type]
    server.connection_made(CountingTransport())  # type: ignore[arg-type]
    request = handshake.request_bytes()
    _feed(server, request)
    # The server's 101, made by a second ServerHandshake from the same request.
    answer = ServerHandshake()
    parsed = answer.receive_data(request)
    assert parsed is not None
    key = answer.validate_upgrade(parsed)
    _feed(client, answer.build_101_response_bytes(key, WSUpgradeResponse.create_101_response()))
    assert client.transport is not None and server.transport is not None
    return client, server


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[WSProtocol, WSProtocol]]:
    loop = asyncio.new_event_loop()
    try:
        yield loop.run_until_complete(_open_pair())
    finally:
        loop.close()


def _transport(protocol: WSProtocol) -> WSTransport:
    assert protocol.transport is not None
    return protocol.transport


# --- encode_frame ---------------------------------------------------------------------


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("label", list(SIZES))
def test_encode_frame(benchmark: BenchmarkFixture, label: str, masked: bool) -> None:
    benchmark.group = f"encode_frame {label} ({BACKEND})"
    data = payload(SIZES[label])
    key = KEY if masked else None
    frame = benchmark(encode_frame, BINARY, data, True, False, False, False, key)
    assert len(frame) == SIZES[label] + (2 if SIZES[label] < 126 else 4) + (4 if masked else 0)


# --- send -----------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["server", "client"])
@pytest.mark.parametrize("label", list(SIZES))
def test_send(
    benchmark: BenchmarkFixture, pair: tuple[WSProtocol, WSProtocol], label: str, side: str
) -> None:
    benchmark.group = f"WSTransport.send {label} ({BACKEND})"
    transport = _transport(pair[1] if side == "server" else pair[0])
    data = payload(SIZES[label])
    benchmark(transport.send, WSMsgType.BINARY, data)
    assert transport.underlying_transport.written > 0  # type: ignore[attr-defined]


# --- dispatch -------------------------------------------------------------------------


@pytest.mark.parametrize("frames", [1, 16])
@pytest.mark.parametrize("side", ["server", "client"])
def test_dispatch(
    benchmark: BenchmarkFixture, pair: tuple[WSProtocol, WSProtocol], side: str, frames: int
) -> None:
    """One read holding ``frames`` 64-byte frames, as the peer of ``side`` sends them."""
    benchmark.group = f"dispatch, 64-byte frames ({BACKEND})"
    benchmark.extra_info["frames"] = frames
    protocol = pair[1] if side == "server" else pair[0]
    key = KEY if side == "server" else None  # a server receives masked frames
    data = encode_frame(BINARY, payload(64), mask_key=key) * frames
    benchmark(_feed, protocol, data)
    assert protocol._conn.buffered == 0


# --- echo -----------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["server", "client"])
@pytest.mark.parametrize("label", list(SIZES))
def test_echo(
    benchmark: BenchmarkFixture, pair: tuple[WSProtocol, WSProtocol], label: str, side: str
) -> None:
    """One frame in, its payload sent back: picows' share of one echo on ``side``."""
    benchmark.group = f"echo {label} ({BACKEND})"
    protocol = pair[1] if side == "server" else pair[0]
    key = KEY if side == "server" else None
    data = encode_frame(BINARY, payload(SIZES[label]), mask_key=key)
    listener = protocol.listener
    protocol.listener = Echo()
    try:
        before = protocol.transport.underlying_transport.written  # type: ignore[union-attr]
        benchmark(_feed, protocol, data)
        after = protocol.transport.underlying_transport.written  # type: ignore[union-attr]
    finally:
        protocol.listener = listener
    assert after > before
