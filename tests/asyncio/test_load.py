"""Load without loss: many concurrent connections and connection churn on one server.

* :func:`test_concurrent_connections_lose_nothing`: 1,000 clients connect to one
  conforming echo server, then all of them send 200 messages each at once (4 in
  flight per connection, sizes log-uniform from 1 B to 64 KiB, TEXT and BINARY), and
  every echo must arrive exactly once, intact and in order.  The peak memory per
  connection is measured and written to ``load_report.json`` under the test's tmp dir
  (and printed: run with ``-s`` to see it).
* :func:`test_connection_churn`: 2,000 open-send-close cycles from 50 concurrent
  workers; every connection ends cleanly and the server's count returns to zero.

The first runs once per backend, each on a different event loop (python on asyncio,
cffi on uvloop where both exist), and is marked ``slow``.

Sizes are log-uniform so that most messages are small (median 256 B, mean ~6 KB): the
whole run moves ~2.4 GB through masking and the event loop, which keeps it within a
minute per event loop even with pure-Python masking.  ``PICOWS_LOAD_CONNECTIONS`` and
``PICOWS_LOAD_MESSAGES`` scale it.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import math
import os
import random
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, Optional, TypeVar

import pytest

import picows
import tools
from conforming import ObservedServer
from leakcheck import Guard
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]

try:
    import tracemalloc
except ImportError:  # PyPy
    tracemalloc = None  # type: ignore[assignment]

CONNECTIONS = int(os.environ.get("PICOWS_LOAD_CONNECTIONS", "1000"))
MESSAGES = int(os.environ.get("PICOWS_LOAD_MESSAGES", "200"))
MAX_SIZE = 64 * 1024
IN_FLIGHT = 4
CHURN_CYCLES = 2000
CHURN_WORKERS = 50
# Generous bounds: the run takes seconds; these only stop a hang.
CONNECT_TIMEOUT = 60.0
TRAFFIC_TIMEOUT = 240.0

T = TypeVar("T")

# Payloads are slices of these, so a check is one comparison with the original.
_RNG = random.Random(6455)
_BINARY = _RNG.randbytes(2 * MAX_SIZE)
_TEXT = bytes(_RNG.choice(b"abcdefghijklmnopqrstuvwxyz0123456789 .,") for _ in range(2 * MAX_SIZE))


@pytest.fixture
async def guard(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Guard]:
    yield Guard(monkeypatch)


@pytest.fixture(autouse=True)
def enough_file_descriptors() -> None:
    """Both ends of every connection live in this process: 2 descriptors each."""
    if resource is None:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(4096, 2 * CONNECTIONS + 512)
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            # CI must allow the load test its descriptors.
            tools.cannot_run(f"RLIMIT_NOFILE hard limit {hard} < {wanted}", required=tools.in_ci())
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def release_free_memory() -> None:
    """Collect garbage and give freed heap pages back to the OS, so that memory an
    earlier test freed is not silently reused and hidden from the RSS deltas."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def rss_bytes() -> int:
    """The current resident set size (Linux), else the peak one."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    if resource is None:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class Plan:
    """The messages one client sends: (type, offset into the payload pool, size)."""

    def __init__(self, seed: int, count: int) -> None:
        rng = random.Random(seed)
        self.messages: list[tuple[WSMsgType, int, int]] = []
        for _ in range(count):
            # Log-uniform: as many messages of 1-2 bytes as of 32-64 KiB.
            size = min(MAX_SIZE, int(2 ** rng.uniform(0, math.log2(MAX_SIZE + 1))))
            msg_type = WSMsgType.TEXT if rng.random() < 0.5 else WSMsgType.BINARY
            self.messages.append((msg_type, rng.randrange(MAX_SIZE), size))

    @staticmethod
    def payload(msg_type: WSMsgType, offset: int, size: int) -> memoryview:
        pool = _TEXT if msg_type == WSMsgType.TEXT else _BINARY
        return memoryview(pool)[offset : offset + size]

    @property
    def total_bytes(self) -> int:
        return sum(size for _, _, size in self.messages)


class Meter:
    """Samples the resident memory every few hundred messages, keeping the peak."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._count = 0

    def tick(self) -> None:
        self._count += 1
        if self._count % 500 == 0:
            self.peak = max(self.peak, rss_bytes())


class LoadClient(WSListener):
    """Sends its plan with ``IN_FLIGHT`` messages outstanding and checks every echo."""

    def __init__(self, plan: Plan, meter: Meter) -> None:
        self.plan = plan
        self.meter = meter
        self.transport: Optional[WSTransport] = None
        self.sent = 0
        self.received = 0
        self.errors: list[str] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def start(self) -> None:
        for _ in range(min(IN_FLIGHT, len(self.plan.messages))):
            self._send_next()

    def _send_next(self) -> None:
        assert self.transport is not None
        msg_type, offset, size = self.plan.messages[self.sent]
        self.transport.send(msg_type, Plan.payload(msg_type, offset, size))
        self.sent += 1

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            return  # the server's answer to our CLOSE
        self.meter.tick()
        index = self.received
        if index >= len(self.plan.messages):
            self._error(f"extra message after all {index} echoes: {frame}")
            return
        msg_type, offset, size = self.plan.messages[index]
        expected = Plan.payload(msg_type, offset, size)
        if frame.msg_type != msg_type or not frame.fin:
            self._error(f"echo {index}: expected {msg_type.name}, got {frame}")
        elif frame.get_payload_as_bytes() != expected:
            self._error(f"echo {index}: payload of {size} bytes differs ({frame})")
        self.received += 1
        if self.sent < len(self.plan.messages):
            self._send_next()
        elif self.received == len(self.plan.messages) and not self.done.done():
            self.done.set_result(None)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.done.done():
            self.done.set_exception(
                ConnectionError(f"disconnected after {self.received} of {len(self.plan.messages)}")
            )

    def _error(self, message: str) -> None:
        self.errors.append(message)
        if not self.done.done():
            self.done.set_exception(AssertionError(message))


async def start_echo_server(listeners: list[ObservedServer]) -> asyncio.Server:
    def route(request: picows.WSUpgradeRequest) -> ObservedServer:
        listener = ObservedServer()
        listeners.append(listener)
        return listener

    # A backlog for the whole crowd: connections are opened 100 at a time.
    return await picows.ws_create_server(route, "127.0.0.1", 0, backlog=CONNECTIONS + 100)


async def gather_bounded(
    coroutines: list[Coroutine[Any, Any, T]], limit: int, timeout: float
) -> list[T]:
    """Runs the coroutines, at most ``limit`` at a time, within ``timeout`` overall."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coroutine: Coroutine[Any, Any, T]) -> T:
        async with semaphore:
            return await coroutine

    return await asyncio.wait_for(asyncio.gather(*(one(c) for c in coroutines)), timeout)


async def close_client(transport: WSTransport) -> None:
    """CLOSE(1000); the server answers and closes TCP; a clean end does not raise."""
    transport.send_close(WSCloseCode.OK)
    await transport.wait_disconnected()
    handshake = transport.close_handshake
    assert handshake is not None and handshake.recv is not None
    assert handshake.recv.code == WSCloseCode.OK


# The heaviest test of the suite (~20-60 s a run): once per backend, each backend on
# another event loop (conftest.py), and left out of tox's quick env (slow).
@pytest.mark.slow
@pytest.mark.once_per_backend
async def test_concurrent_connections_lose_nothing(guard: Guard, tmp_path: Path) -> None:
    listeners: list[ObservedServer] = []
    server = await start_echo_server(listeners)
    port = server.sockets[0].getsockname()[1]
    url = f"ws://127.0.0.1:{port}/"
    meter = Meter()
    plans = [Plan(seed, MESSAGES) for seed in range(CONNECTIONS)]
    clients: list[LoadClient] = []
    try:
        release_free_memory()
        baseline = rss_bytes()
        peak_before = peak_rss_bytes()
        # The Python heap per idle connection, exactly (CPython; PyPy has no tracemalloc).
        tracing = tracemalloc is not None and not tracemalloc.is_tracing()
        if tracing:
            tracemalloc.start()
        started = time.perf_counter()

        async def connect(plan: Plan) -> WSTransport:
            transport, client = await picows.ws_connect(lambda: LoadClient(plan, meter), url)
            assert isinstance(client, LoadClient)
            clients.append(client)
            return transport

        transports = await gather_bounded(
            [connect(plan) for plan in plans], limit=100, timeout=CONNECT_TIMEOUT
        )
        connected = time.perf_counter()
        heap_per_connection: Optional[int] = None
        if tracing:
            heap_per_connection = tracemalloc.get_traced_memory()[0] // CONNECTIONS
            tracemalloc.stop()
            connected = time.perf_counter()
        idle = rss_bytes()
        assert len(listeners) == CONNECTIONS
        assert all(listener.connected_calls == 1 for listener in listeners)

        for client in clients:  # every connection busy at the same time
            client.start()
        await asyncio.wait_for(
            asyncio.gather(*(client.done for client in clients)), TRAFFIC_TIMEOUT
        )
        traffic = time.perf_counter()
        meter.peak = max(meter.peak, rss_bytes())

        assert [c.errors for c in clients if c.errors] == []
        assert sum(c.received for c in clients) == CONNECTIONS * MESSAGES
        await gather_bounded(
            [close_client(t) for t in transports], limit=CONNECTIONS, timeout=CONNECT_TIMEOUT
        )
        closed = time.perf_counter()
        # No message was echoed twice: nothing arrived after the last expected echo.
        assert all(c.received == len(c.plan.messages) for c in clients)
        # The server's connection count is back to zero.
        await guard.wait_all_closed(CONNECT_TIMEOUT)
        assert all(listener.disconnected_calls == 1 for listener in listeners)
    finally:
        server.close()
        await server.wait_closed()
    await guard.assert_clean()

    total_bytes = sum(plan.total_bytes for plan in plans)
    peak_per_connection = (meter.peak - baseline) // CONNECTIONS
    report = {
        "backend": picows.BACKEND,
        "interpreter": f"{sys.implementation.name} {sys.version.split()[0]}",
        "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "connections": CONNECTIONS,
        "messages_per_connection": MESSAGES,
        "messages": CONNECTIONS * MESSAGES,
        "payload_bytes_each_way": total_bytes,
        "connect_seconds": round(connected - started, 2),
        "traffic_seconds": round(traffic - connected, 2),
        "close_seconds": round(closed - traffic, 2),
        "messages_per_second": round(CONNECTIONS * MESSAGES / (traffic - connected)),
        # Both ends of every connection live in this process: these are per pair
        # (a client and a server connection, each with a 16 KiB read buffer).
        "idle_python_heap_per_connection_bytes": heap_per_connection,
        "idle_rss_per_connection_bytes": (idle - baseline) // CONNECTIONS,
        "peak_rss_per_connection_bytes": peak_per_connection,
        "ru_maxrss_delta_per_connection_bytes": (peak_rss_bytes() - peak_before) // CONNECTIONS,
    }
    path = tmp_path / "load_report.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"\nload report ({path}):\n{json.dumps(report, indent=2)}")
    # A loose bound, so that a leak per connection or per message fails the test.
    assert peak_per_connection < 1024 * 1024


class ChurnClient(WSListener):
    def __init__(self) -> None:
        self.echo: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.BINARY and not self.echo.done():
            self.echo.set_result(frame.get_payload_as_bytes())


async def test_connection_churn(guard: Guard) -> None:
    listeners: list[ObservedServer] = []
    server = await start_echo_server(listeners)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    completed = 0

    async def worker(seed: int) -> None:
        nonlocal completed
        rng = random.Random(seed)
        for _ in range(CHURN_CYCLES // CHURN_WORKERS):
            transport, client = await picows.ws_connect(ChurnClient, url)
            assert isinstance(client, ChurnClient)
            payload = Plan.payload(WSMsgType.BINARY, rng.randrange(MAX_SIZE), rng.randint(1, 4096))
            transport.send(WSMsgType.BINARY, payload)
            assert await asyncio.wait_for(client.echo, CONNECT_TIMEOUT) == payload
            await close_client(transport)
            completed += 1

    try:
        await asyncio.wait_for(
            asyncio.gather(*(worker(seed) for seed in range(CHURN_WORKERS))), TRAFFIC_TIMEOUT
        )
        assert completed == CHURN_CYCLES
        assert len(listeners) == CHURN_CYCLES
        await guard.wait_all_closed(CONNECT_TIMEOUT)
        assert all((li.connected_calls, li.disconnected_calls) == (1, 1) for li in listeners)
    finally:
        server.close()
        await server.wait_closed()
    await guard.assert_clean()
