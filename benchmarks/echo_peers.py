"""The two ends of one echo benchmark run, one process each; run by ``echo_bench.py``.

    python echo_peers.py server LIB LOOP
        Serves binary echo on 127.0.0.1, port chosen by the OS.  Prints one JSON line
        ``{"port": N, "pid": P}`` once it listens, then serves until killed.
    python echo_peers.py client LIB LOOP PORT SIZE MODE WARMUP DURATION INFLIGHT
        Connects, echoes SIZE-byte binary messages for WARMUP + DURATION seconds and
        prints one JSON line with the messages per second of the last DURATION.
        MODE ``rr``: one message in flight (send, wait for the echo, repeat);
        MODE ``stream``: INFLIGHT messages in flight (every echo sends one more).
    python echo_peers.py count-server LIB LOOP
        Like ``server``, but exits (cleanly, so callgrind writes its counts) when its
        standard input reaches EOF.
    python echo_peers.py count-client LIB LOOP PORT SIZE N
        Makes exactly N request/response round trips, then exits (see
        ``echo_instructions.py``).
    python echo_peers.py memclient LIB LOOP PORT CONNECTIONS SIZE
        Opens CONNECTIONS connections and prints ``idle``; on the stdin line ``load``
        runs one request/response loop per connection and prints ``loaded`` once
        every connection completed a round trip; exits on ``stop`` or EOF.

With ECHO_PEERS_PROFILE=PREFIX in the environment, the server or client runs under
cProfile and saves PREFIX.server.prof / PREFIX.client.prof (the server on SIGTERM).

LIB is one of ``picows`` (the backend comes from PICOWS_NO_EXTENSIONS /
PICOWS_REQUIRE_EXTENSIONS in the environment), ``websockets``, ``aiohttp`` or
``raw``: asyncio.BufferedProtocol with a 4-byte big-endian length prefix and no
WebSocket at all, the ceiling for any asyncio library.  LOOP is ``asyncio`` or
``uvloop``.

Each library is driven in its own idiom: picows and raw from protocol callbacks
(the next message is sent from the callback that received the echo), websockets
and aiohttp from coroutines.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import resource
import signal
import struct
import sys
import time
from typing import Any, Awaitable, Callable, Optional

HOST = "127.0.0.1"
_LENGTH = struct.Struct("!I")
_U32 = _LENGTH.unpack_from
_PACK = _LENGTH.pack


def _payload(size: int) -> bytes:
    # Not all zeros: masking and copies must not get a lucky fast path.
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Meter:
    """Counts received echoes; the rate covers the window after the warm-up."""

    def __init__(self, loop: asyncio.AbstractEventLoop, warmup: float, duration: float) -> None:
        self.count = 0
        self.running = True
        self.finished: asyncio.Future[dict[str, float]] = loop.create_future()
        self._mark_count = 0
        self._mark_time = 0.0
        self._duration = duration
        self._loop = loop
        loop.call_later(warmup, self._start_window)

    def _start_window(self) -> None:
        self._mark_count = self.count
        self._mark_time = time.perf_counter()
        self._loop.call_later(self._duration, self._end_window)

    def _end_window(self) -> None:
        self.running = False
        elapsed = time.perf_counter() - self._mark_time
        messages = self.count - self._mark_count
        if not self.finished.done():
            self.finished.set_result(
                {"messages": messages, "seconds": elapsed, "rate": messages / elapsed}
            )


class CountMeter:
    """A Meter for a fixed number of round trips: ``running`` until ``n`` echoes came."""

    def __init__(self, loop: asyncio.AbstractEventLoop, n: int) -> None:
        self.count = 0
        self._n = n
        self.finished: asyncio.Future[dict[str, float]] = loop.create_future()

    @property
    def running(self) -> bool:
        if self.count < self._n:
            return True
        if not self.finished.done():
            self.finished.set_result({"messages": float(self.count)})
        return False


# --- raw: length-prefixed echo on asyncio.BufferedProtocol ------------------------


#: The raw echo's read buffer: 16 KiB to start with (picows' default), grown to the
#: biggest message, with at least 4 KiB free for every read.  The fastest choice
#: measured here (CPython 3.11, request/response): with a 2 MiB buffer, or 64 KiB
#: kept free for every read, the 100 KiB echo ran at ~4,850 msg/s, and picows beat
#: that "ceiling" by 25 %; with this, ~7,200.  256 B to 1 MiB: the same either way.
_RAW_BUFFER_INIT = 16 * 1024
_RAW_ROOM = 4096


class RawProtocol(asyncio.BufferedProtocol):
    """The honest ceiling: the fastest length-prefixed echo asyncio allows.

    One buffer that the loop reads into (``recv_into``; see _RAW_BUFFER_INIT), a
    cached view handed out while the buffer is empty (the request/response case),
    one ``write`` per message of a view of the received bytes (sent at once, on PyPy
    through C's write: see _pypy_write; asyncio copies what the socket did not
    take).  ``on_message`` gets (buffer, view, start, end) of each complete message,
    prefix included.  No WebSocket at all: every library pays
    at least this much, so ratios to it are fair.
    """

    def __init__(self) -> None:
        self.transport: Optional[asyncio.Transport] = None
        self.write: Callable[[Any], None] = lambda data: None
        self._buffer = bytearray(_RAW_BUFFER_INIT)
        self._view = memoryview(self._buffer)
        self._start = 0
        self._end = 0
        self.connected: Optional[asyncio.Future[None]] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.write = _direct_writer(transport)
        if self.connected is not None and not self.connected.done():
            self.connected.set_result(None)

    def get_buffer(self, sizehint: int) -> memoryview:
        end = self._end
        if end == 0:
            return self._view  # empty: the whole buffer, no new object
        buffer = self._buffer
        if len(buffer) - end < _RAW_ROOM:
            # Move the pending bytes to the front, growing for a message larger
            # than the buffer (stream mode with many messages in flight).
            start = self._start
            pending = end - start
            needed = pending + _RAW_ROOM
            if pending >= 4:
                needed = max(needed, 4 + _U32(buffer, start)[0])
            if needed > len(buffer):
                self._buffer = bytearray(max(needed, 2 * len(buffer)))
                self._view = memoryview(self._buffer)
            self._buffer[:pending] = buffer[start:end]
            self._start, self._end = 0, pending
            end = pending
        return self._view[end:]

    def buffer_updated(self, nbytes: int) -> None:
        end = self._end + nbytes
        buffer, start = self._buffer, self._start
        while end - start >= 4:
            stop = start + 4 + _U32(buffer, start)[0]
            if stop > end:
                break
            self.on_message(self._view, start, stop)
            start = stop
        if start == end:
            self._start = self._end = 0
        else:
            self._start, self._end = start, end

    def on_message(self, view: memoryview, start: int, end: int) -> None:
        raise NotImplementedError


class RawEchoServer(RawProtocol):
    def on_message(self, view: memoryview, start: int, end: int) -> None:
        self.write(view[start:end])


class RawClient(RawProtocol):
    def __init__(self, message: bytes, meter: Optional[Meter]) -> None:
        super().__init__()
        self.message = _PACK(len(message)) + message
        self.meter = meter
        self.rr_waiter: Optional[asyncio.Future[None]] = None

    def on_message(self, view: memoryview, start: int, end: int) -> None:
        meter = self.meter
        if meter is None:  # memory mode: wake the coroutine
            waiter = self.rr_waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        meter.count += 1
        if meter.running:
            self.write(self.message)


def _pypy_write() -> Optional[Callable[[int, Any], int]]:
    """On PyPy, ``os.write`` for the raw echo without a copy first.

    PyPy copies a buffer it manages (a bytearray, byte by byte) into raw memory
    before every send, and an mmap or array one into fresh malloc() memory; C's
    ``write`` through cffi (PyPy's native FFI, in ABI mode: no compiler) reads it
    where it is, as CPython's os.write does.  1 MiB request/response: ~1,100 msg/s
    with os.write, ~1,700 with this; picows sends big frames this way too, so
    without it the "ceiling" was 1.3-1.6 times slower than picows.  None elsewhere
    (CPython's os.write copies nothing) or without cffi."""
    if platform.python_implementation() != "PyPy":
        return None
    try:
        import cffi
    except ImportError:
        return None
    ffi = cffi.FFI()
    ffi.cdef("long write(int fd, const void *buf, size_t n);")
    libc: Any = ffi.dlopen(None)  # cdef'd above; cffi's types cannot know that
    c_write, from_buffer = libc.write, ffi.from_buffer

    def write(fd: int, data: Any) -> int:
        sent = c_write(fd, from_buffer(data), len(data))
        if sent < 0:
            raise OSError(ffi.errno, os.strerror(ffi.errno))
        return int(sent)

    return write


def _direct_writer(transport: Any) -> Callable[[Any], None]:
    """``transport.write``, or, on asyncio's own plain socket transports, a write that
    sends straight to the socket when nothing is queued (what picows and upstream
    picows do): the fastest one message costs on this loop."""
    if type(transport).__module__ != "asyncio.selector_events":
        return transport.write  # type: ignore[no-any-return]
    fd = transport.get_extra_info("socket").fileno()
    queued = transport.get_write_buffer_size
    write = transport.write
    os_write = _pypy_write() or os.write

    def direct(data: Any) -> None:
        if not queued():
            try:
                sent = os_write(fd, data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
        write(data)

    return direct


async def raw_server() -> int:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(RawEchoServer, HOST, 0)
    return _port(server)


def _port(server: Any) -> int:
    return int(server.sockets[0].getsockname()[1])


async def raw_connect(port: int, protocol: RawProtocol) -> RawProtocol:
    loop = asyncio.get_running_loop()
    await loop.create_connection(lambda: protocol, HOST, port)
    return protocol


async def raw_client(port: int, message: bytes, meter: Meter, inflight: int) -> None:
    client = await raw_connect(port, RawClient(message, meter))
    assert client.transport is not None
    for _ in range(inflight):
        client.write(client.message)
    await meter.finished
    client.transport.close()


# --- picows -----------------------------------------------------------------------
# On the loop's own transports, as raw: picows (ours and upstream's) would otherwise
# use aiofastnet's wherever it is installed.


def _picows() -> Any:
    import picows

    return picows


async def picows_server() -> int:
    picows = _picows()
    binary = picows.WSMsgType.BINARY

    class Echo(picows.WSListener):  # type: ignore[misc, name-defined]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type is binary:
                transport.send(binary, frame.get_payload_as_memoryview())
            elif frame.msg_type == picows.WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

        def pause_writing(self) -> None:
            pass  # like the raw server: the client bounds what is in flight

    return _port(
        await picows.ws_create_server(lambda request: Echo(), HOST, 0, use_aiofastnet=False)
    )


def _picows_client_class(message: bytes, meter: Optional[Meter]) -> Any:
    picows = _picows()
    binary = picows.WSMsgType.BINARY

    class Client(picows.WSListener):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self.rr_waiter: Optional[asyncio.Future[None]] = None

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if meter is None:
                waiter = self.rr_waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                return
            meter.count += 1
            if meter.running:
                transport.send(binary, message)

    return Client


async def picows_client(port: int, message: bytes, meter: Meter, inflight: int) -> None:
    picows = _picows()
    transport, _ = await picows.ws_connect(
        _picows_client_class(message, meter), f"ws://{HOST}:{port}/", use_aiofastnet=False
    )
    for _ in range(inflight):
        transport.send(picows.WSMsgType.BINARY, message)
    await meter.finished
    transport.send_close()
    transport.disconnect()


# --- websockets (new asyncio API) -------------------------------------------------


async def websockets_server() -> int:
    from websockets.asyncio.server import serve

    async def echo(ws: Any) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        except Exception:
            pass  # the client leaving mid-stream is expected

    return _port(await serve(echo, HOST, 0, compression=None, max_size=None))


async def websockets_client(port: int, message: bytes, meter: Meter, inflight: int) -> None:
    from websockets.asyncio.client import connect

    async with connect(f"ws://{HOST}:{port}/", compression=None, max_size=None) as ws:
        await _coroutine_client(lambda: ws.send(message), ws.recv, meter, inflight)


async def _coroutine_client(
    send: Callable[[], Awaitable[Any]],
    recv: Callable[[], Awaitable[Any]],
    meter: Meter,
    inflight: int,
) -> None:
    """The client loop of the coroutine libraries (websockets, aiohttp)."""
    if inflight == 1:
        while meter.running:
            await send()
            await recv()
            meter.count += 1
        return
    # Streaming needs a writer of its own: sends that wait for the socket to drain
    # would otherwise stop the reads that drain the peer, and both ends would block.
    credit = asyncio.Semaphore(inflight)

    async def writer() -> None:
        while meter.running:
            await credit.acquire()
            await send()

    writing = asyncio.ensure_future(writer())
    try:
        while meter.running:
            await recv()
            meter.count += 1
            credit.release()
    finally:
        writing.cancel()


# --- aiohttp ----------------------------------------------------------------------


async def aiohttp_server() -> int:
    from aiohttp import WSMsgType, web

    async def handler(request: Any) -> Any:
        ws = web.WebSocketResponse(compress=False, max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    return int(runner.addresses[0][1])


async def aiohttp_client(port: int, message: bytes, meter: Meter, inflight: int) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(
            f"http://{HOST}:{port}/", compress=0, max_msg_size=0, autoping=False
        ) as ws:
            await _coroutine_client(lambda: ws.send_bytes(message), ws.receive, meter, inflight)


SERVERS: dict[str, Callable[[], Awaitable[int]]] = {
    "picows": picows_server,
    "websockets": websockets_server,
    "aiohttp": aiohttp_server,
    "raw": raw_server,
}
CLIENTS: dict[str, Callable[[int, bytes, Meter, int], Awaitable[None]]] = {
    "picows": picows_client,
    "websockets": websockets_client,
    "aiohttp": aiohttp_client,
    "raw": raw_client,
}


# --- memory mode: many connections, idle then under load --------------------------


class _Conn:
    """One memory-mode connection: ``roundtrip()`` sends a message, awaits its echo."""

    def __init__(self, send: Callable[[], Any], recv: Callable[[], Any]) -> None:
        self.send = send
        self.recv = recv

    async def roundtrip(self) -> None:
        await self.send()
        await self.recv()


async def _open_conn(lib: str, port: int, message: bytes) -> _Conn:
    """An open connection of ``lib`` as a pair of coroutine functions."""
    if lib == "raw":
        client = await raw_connect(port, RawClient(message, None))
        return _callback_conn(client, lambda: client.transport.write(client.message))  # type: ignore[union-attr]
    if lib == "picows":
        picows = _picows()
        transport, listener = await picows.ws_connect(
            _picows_client_class(message, None), f"ws://{HOST}:{port}/", use_aiofastnet=False
        )
        binary = picows.WSMsgType.BINARY
        return _callback_conn(listener, lambda: transport.send(binary, message))
    if lib == "websockets":
        from websockets.asyncio.client import connect

        ws = await connect(f"ws://{HOST}:{port}/", compression=None, max_size=None)
        return _Conn(lambda: ws.send(message), ws.recv)
    if lib == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession()
        ws_ = await session.ws_connect(
            f"http://{HOST}:{port}/", compress=0, max_msg_size=0, autoping=False
        )
        return _Conn(lambda: ws_.send_bytes(message), ws_.receive)
    raise ValueError(lib)


def _callback_conn(holder: Any, send_now: Callable[[], None]) -> _Conn:
    """Adapts a callback client (``holder.rr_waiter`` is resolved on the echo)."""
    loop = asyncio.get_running_loop()

    async def send() -> None:
        holder.rr_waiter = loop.create_future()
        send_now()

    async def recv() -> None:
        await holder.rr_waiter

    return _Conn(send, recv)


async def memory_client(lib: str, port: int, connections: int, size: int) -> None:
    message = _payload(size)
    conns = []
    for _ in range(connections):
        conns.append(await _open_conn(lib, port, message))
    _emit("idle")
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while (await reader.readline()).strip() not in (b"load", b""):
        pass
    stopping = False

    async def pump(conn: _Conn) -> None:
        while not stopping:
            await conn.roundtrip()

    await asyncio.gather(*(conn.roundtrip() for conn in conns))
    tasks = [asyncio.ensure_future(pump(conn)) for conn in conns]
    _emit("loaded")
    while (await reader.readline()).strip() not in (b"stop", b""):
        pass
    stopping = True
    await asyncio.wait(tasks, timeout=5)
    os._exit(0)  # skip closing hundreds of connections one by one


# --- entry point ------------------------------------------------------------------


def _run(loop_name: str, coro: Any) -> Any:
    if loop_name == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    elif loop_name == "asyncio":
        loop = asyncio.new_event_loop()
    else:
        raise SystemExit(f"unknown loop {loop_name!r}")
    asyncio.set_event_loop(loop)
    return loop.run_until_complete(coro)


async def _serve(lib: str) -> None:
    port = await SERVERS[lib]()
    stop = asyncio.Event()
    # SIGTERM ends the loop normally, so that a profile (ECHO_PEERS_PROFILE) is saved.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    _emit({"port": port, "pid": os.getpid()})
    await stop.wait()


async def _client(
    lib: str, port: int, size: int, mode: str, warmup: float, duration: float, inflight: int
) -> dict[str, Any]:
    meter = Meter(asyncio.get_running_loop(), warmup, duration)
    task = asyncio.ensure_future(
        CLIENTS[lib](port, _payload(size), meter, 1 if mode == "rr" else inflight)
    )
    # The result is ready when the window closes; the caller exits without waiting
    # for the library's closing handshake (a stream may still have 32 MiB in flight).
    await asyncio.wait([task, meter.finished], return_when=asyncio.FIRST_COMPLETED)
    if not meter.finished.done():
        task.result()  # the client failed: raise its error
        raise RuntimeError("client returned before the measurement window closed")
    return meter.finished.result()


async def _serve_until_stdin_closes(lib: str) -> None:
    port = await SERVERS[lib]()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def stdin_readable() -> None:
        if not os.read(sys.stdin.fileno(), 4096):
            loop.remove_reader(sys.stdin.fileno())
            stop.set()

    loop.add_reader(sys.stdin.fileno(), stdin_readable)
    _emit({"port": port, "pid": os.getpid()})
    await stop.wait()


async def _count_client(lib: str, port: int, size: int, n: int) -> None:
    meter = CountMeter(asyncio.get_running_loop(), n)
    task = asyncio.ensure_future(CLIENTS[lib](port, _payload(size), meter, 1))  # type: ignore[arg-type]
    await asyncio.wait([task, meter.finished], return_when=asyncio.FIRST_COMPLETED)
    if not meter.finished.done():
        task.result()
        raise RuntimeError("client returned before its round trips were done")


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _profiled(role: str, run: Callable[[], Any]) -> Any:
    """``run()``, under cProfile when ECHO_PEERS_PROFILE names a file prefix."""
    prefix = os.environ.get("ECHO_PEERS_PROFILE")
    if not prefix:
        return run()
    import cProfile

    profile = cProfile.Profile()
    try:
        return profile.runcall(run)
    finally:
        profile.dump_stats(f"{prefix}.{role}.prof")


def main(argv: list[str]) -> None:
    role, lib, loop_name = argv[:3]
    _raise_fd_limit()
    if role == "server":
        _profiled(role, lambda: _run(loop_name, _serve(lib)))
    elif role == "client":
        port, size, mode = int(argv[3]), int(argv[4]), argv[5]
        warmup, duration, inflight = float(argv[6]), float(argv[7]), int(argv[8])
        coro = _client(lib, port, size, mode, warmup, duration, inflight)
        _emit(_profiled(role, lambda: _run(loop_name, coro)))
        os._exit(0)  # do not wait for library teardown (aiohttp sessions, ...)
    elif role == "count-server":
        _run(loop_name, _serve_until_stdin_closes(lib))
    elif role == "count-client":
        _run(loop_name, _count_client(lib, int(argv[3]), int(argv[4]), int(argv[5])))
        os._exit(0)
    elif role == "memclient":
        _run(loop_name, memory_client(lib, int(argv[3]), int(argv[4]), int(argv[5])))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
