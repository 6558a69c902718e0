"""The processes ``scale.py`` starts: broadcast servers, and one client for 10,000 sockets.

python scale_peers.py server LIB [--workers N --redis URL --channel NAME]
                                 [--aiofastnet] [--read-buffer BYTES]
    A broadcast ("chat") server on 127.0.0.1, port chosen by the OS: every TEXT
    message any client sends goes to every client, the sender included.  Prints
    ``serving on ws://127.0.0.1:PORT/`` and ``workers: PID...`` once it listens.
    LIB ``picows`` (ours or upstream's, whichever the interpreter imports; our
    backend comes from PICOWS_NO_EXTENSIONS / PICOWS_REQUIRE_EXTENSIONS) or
    ``websockets``.  One process by default; with ``--workers N --redis URL``, N
    worker processes on one port relaying through Redis pub/sub: picows runs
    examples/broadcast_redis.py's worker, websockets an equivalent written here.
    Both use examples/multiprocess_server.py's supervisor.

python scale_peers.py client --port P --connections N [--concurrency C]
                              [--messages M --size S]
    Opens N WebSocket connections with raw asyncio protocols (no WebSocket
    library: the instrument must be the same for every server), at most C
    handshakes in flight.  Prints a JSON line with the time to connect them all,
    then waits for ``go`` on stdin; sends M TEXT messages of S bytes on its first
    connection and prints the time until every connection has received all M;
    exits on ``quit`` or EOF.  Uses uvloop when it is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import resource
import sys
import time
from typing import Any, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(os.path.dirname(HERE), "examples")
HOST = "127.0.0.1"
BACKLOG = 1024
HUGE = 1 << 40  # the examples' slow-client bounds, out of the way of a benchmark


def emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def raise_fd_limit() -> int:
    """Raises the soft RLIMIT_NOFILE to the hard one (10,000 sockets need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def announce(port: int, pids: list[int]) -> None:
    print(f"serving on ws://{HOST}:{port}/", flush=True)
    print("workers: " + " ".join(map(str, pids)), flush=True)


# ---------------------------------------------------------------------------
# One process: a hub in memory


async def picows_single(options: dict[str, Any]) -> None:
    import picows
    from picows import WSListener, WSMsgType

    members: set[Any] = set()
    text, close = WSMsgType.TEXT, WSMsgType.CLOSE

    class Member(WSListener):  # type: ignore[misc]
        def on_ws_connected(self, transport: Any) -> None:
            members.add(transport)

        def on_ws_disconnected(self, transport: Any) -> None:
            members.discard(transport)

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == text:
                payload = frame.get_payload_as_bytes()
                for member in members:
                    member.send(text, payload)
            elif frame.msg_type == close:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    server = await picows.ws_create_server(
        lambda request: Member(), HOST, 0, backlog=BACKLOG, **options
    )
    announce(server.sockets[0].getsockname()[1], [os.getpid()])
    await asyncio.Event().wait()  # until killed


async def websockets_single() -> None:
    from websockets.asyncio.server import broadcast, serve

    members: set[Any] = set()

    async def handler(connection: Any) -> None:
        members.add(connection)
        try:
            async for message in connection:
                broadcast(members, message)
        finally:
            members.discard(connection)

    async with serve(
        handler, HOST, 0, compression=None, max_size=None, ping_interval=None, backlog=BACKLOG
    ) as server:
        announce(server.sockets[0].getsockname()[1], [os.getpid()])
        await asyncio.Event().wait()


# ---------------------------------------------------------------------------
# Worker processes relaying through Redis


async def websockets_worker(redis_url: str, channel: str, worker: Any) -> None:
    """The websockets twin of broadcast_redis.broadcast_worker (without its policies)."""
    from redis.asyncio import Redis
    from websockets.asyncio.server import broadcast, serve

    redis = Redis.from_url(redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel)
    await pubsub.get_message(timeout=10)  # the confirmation
    members: set[Any] = set()
    outbox: asyncio.Queue[bytes] = asyncio.Queue()

    async def handler(connection: Any) -> None:
        members.add(connection)
        try:
            async for message in connection:
                outbox.put_nowait(message.encode() if isinstance(message, str) else message)
        finally:
            members.discard(connection)

    async def publish_forever() -> None:
        while True:
            batch = [await outbox.get()]
            while not outbox.empty() and len(batch) < 512:
                batch.append(outbox.get_nowait())
            pipe = redis.pipeline(transaction=False)
            for message in batch:
                pipe.publish(channel, message)
            await pipe.execute()

    async def relay_forever() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                broadcast(members, message["data"], text=True)

    async with serve(
        handler,
        worker.host,
        worker.port,
        compression=None,
        max_size=None,
        ping_interval=None,
        backlog=BACKLOG,
        reuse_port=True,
    ) as server:
        tasks = [asyncio.ensure_future(publish_forever()), asyncio.ensure_future(relay_forever())]
        worker.ready(server.sockets[0].getsockname()[1])
        await worker.stop.wait()
        for task in tasks:
            task.cancel()
    await pubsub.aclose()
    await redis.aclose()


def profiled(run: Any) -> None:
    """Runs ``run()``; with SCALE_PEERS_PROFILE=FILE, under cProfile, saved on SIGTERM."""
    target = os.environ.get("SCALE_PEERS_PROFILE")
    if not target:
        run()
        return
    import cProfile
    import signal

    profile = cProfile.Profile()

    def save(signum: int, frame: Any) -> None:
        profile.disable()
        profile.dump_stats(target)
        os._exit(0)

    signal.signal(signal.SIGTERM, save)
    profile.enable()
    run()


def run_server(args: argparse.Namespace) -> None:
    raise_fd_limit()
    options: dict[str, Any] = {"use_aiofastnet": args.aiofastnet}  # picows only
    if args.read_buffer is not None:
        options["read_buffer_init_size"] = args.read_buffer
    if args.workers == 1 and args.redis is None:
        if args.lib == "picows":
            profiled(lambda: asyncio.run(picows_single(options)))
        else:
            profiled(lambda: asyncio.run(websockets_single()))
        return
    if args.redis is None:
        raise SystemExit("--workers needs --redis")
    sys.path.insert(0, EXAMPLES)
    from multiprocess_server import run_workers

    if args.lib == "picows":
        from broadcast_redis import broadcast_worker

        main = functools.partial(
            broadcast_worker,
            args.redis,
            args.channel,
            HUGE,
            float(HUGE),
            backlog=BACKLOG,
            **options,
        )
    else:
        main = functools.partial(websockets_worker, args.redis, args.channel)
    sys.exit(run_workers(main, HOST, 0, args.workers, announce))


# ---------------------------------------------------------------------------
# The client


REQUEST = (
    "GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Counter:
    """Shared by every connection: how many are open, how many got every message."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.complete = 0
        self.all_complete: Optional[asyncio.Future[float]] = None
        self.expected = 0


class Conn(asyncio.Protocol):
    """One raw WebSocket client connection that counts the data frames it receives."""

    __slots__ = ("buffer", "count", "counter", "transport", "upgraded")

    def __init__(self, counter: Counter, upgraded: asyncio.Future[None], request: bytes) -> None:
        self.counter = counter
        self.upgraded: Optional[asyncio.Future[None]] = upgraded
        self.buffer = request  # until connected: what to send
        self.count = 0
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.buffer)
        self.buffer = b""

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self.upgraded is not None and not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError(f"closed during the handshake: {exc}"))

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
        if self.upgraded is not None:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = data
                return
            if not data.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(ConnectionError(data[:200].decode("latin-1")))
                self.upgraded = None
                return
            self.upgraded.set_result(None)
            self.upgraded = None
            data = data[end + 4 :]
        # Unmasked frames from the server (RFC 6455 5.2): count TEXT and BINARY.
        pos, size = 0, len(data)
        while size - pos >= 2:
            length = data[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                head = 10
            if size - pos < head + length:
                break
            if data[pos] & 0x0F in (1, 2):
                self.count += 1
                if self.count == self.counter.target:
                    self.counter.complete += 1
                    done = self.counter.all_complete
                    if self.counter.complete == self.counter.expected and done is not None:
                        done.set_result(time.perf_counter())
            pos += head + length
        self.buffer = data[pos:] if pos < size else b""


def masked_text_frame(payload: bytes) -> bytes:
    """A client's TEXT frame (5.2, 5.3): FIN, opcode 1, masked with a fixed key."""
    key = b"\x37\xfa\x21\x3d"
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    size = len(payload)
    if size < 126:
        head = bytes([0x81, 0x80 | size])
    elif size < 65536:
        head = bytes([0x81, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x81, 0x80 | 127]) + size.to_bytes(8, "big")
    return head + key + masked


async def client(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    request = REQUEST.format(host=HOST, port=args.port).encode()
    counter = Counter(args.messages)
    conns: list[Conn] = []
    slots = asyncio.Semaphore(args.concurrency)
    failures: list[str] = []

    async def open_one() -> None:
        try:
            upgraded: asyncio.Future[None] = loop.create_future()
            _, conn = await loop.create_connection(
                lambda: Conn(counter, upgraded, request), HOST, args.port
            )
            await asyncio.wait_for(upgraded, 60)
            conns.append(conn)
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            slots.release()

    start = time.perf_counter()
    tasks = []
    for _ in range(args.connections):
        await slots.acquire()
        tasks.append(asyncio.ensure_future(open_one()))
    await asyncio.gather(*tasks)
    connected = time.perf_counter() - start
    emit(
        {
            "event": "connected",
            "seconds": connected,
            "open": len(conns),
            "failed": len(failures),
            "first_failure": failures[0] if failures else None,
        }
    )

    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while (await reader.readline()).strip() == b"go":
        counter.complete = 0
        counter.expected = len(conns)
        for conn in conns:
            conn.count = 0
        counter.all_complete = loop.create_future()
        payload = (b"0123456789abcdef" * (args.size // 16 + 1))[: args.size]
        frames = masked_text_frame(payload) * args.messages
        start = time.perf_counter()
        conns[0].transport.write(frames)
        try:
            end = await asyncio.wait_for(counter.all_complete, args.timeout)
            emit(
                {
                    "event": "fanout",
                    "seconds": end - start,
                    "deliveries": args.messages * len(conns),
                }
            )
        except asyncio.TimeoutError:
            counts = [conn.count for conn in conns]
            emit(
                {
                    "event": "fanout",
                    "seconds": None,
                    "complete": counter.complete,
                    "min": min(counts),
                    "max": max(counts),
                }
            )
    for conn in conns:
        conn.transport.abort()


def run_client(args: argparse.Namespace) -> None:
    raise_fd_limit()
    try:
        import uvloop
    except ImportError:
        asyncio.run(client(args))
    else:
        uvloop.run(client(args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    roles = parser.add_subparsers(dest="role", required=True)
    server = roles.add_parser("server")
    server.add_argument("lib", choices=["picows", "websockets"])
    server.add_argument("--workers", type=int, default=1)
    server.add_argument("--redis")
    server.add_argument("--channel", default="scale")
    server.add_argument("--aiofastnet", action="store_true", help="picows: use_aiofastnet=True")
    server.add_argument("--read-buffer", type=int, help="picows: read_buffer_init_size")
    client_args = roles.add_parser("client")
    client_args.add_argument("--port", type=int, required=True)
    client_args.add_argument("--connections", type=int, default=10_000)
    client_args.add_argument("--concurrency", type=int, default=100)
    client_args.add_argument("--messages", type=int, default=20)
    client_args.add_argument("--size", type=int, default=64)
    client_args.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    if args.role == "server":
        run_server(args)
    else:
        run_client(args)


if __name__ == "__main__":
    main()
