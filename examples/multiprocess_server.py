"""Several worker processes on one port: a recipe to copy into an application.

    python examples/multiprocess_server.py --port 9001 --workers 4

One Python process runs one event loop on one core.  This server runs ``--workers``
processes, each with its own loop and its own listening socket on the same port
(``ws_create_server(..., reuse_port=True)``, that is ``SO_REUSEPORT``): the Linux
kernel spreads new connections over the workers.  Here each worker is an echo server
that names itself in an ``X-Worker-Pid`` response header.

What the supervisor (the parent process) does, and why:

1. It binds the port first, with ``SO_REUSEPORT`` and without listening.  A taken
   port fails at once; ``--port 0`` becomes one concrete free port that every worker
   then binds too; and nobody else can take the port while the workers start.
2. It starts the workers with multiprocessing's ``spawn`` method (a fresh
   interpreter, no inherited event loop or sockets).  Each worker says "ready" on a
   pipe once it listens; then the parent prints ``serving on ws://HOST:PORT/``.
3. On SIGTERM or Ctrl-C it sends SIGTERM to the workers.  A worker stops accepting,
   sends CLOSE 1001 (going away) on every connection, waits a bounded time for the
   answers, drops the rest and exits.  Workers ignore SIGINT: Ctrl-C reaches the
   whole process group, and the parent alone decides.
4. A worker watches ``multiprocessing.parent_process().sentinel``: when the parent
   dies, even by SIGKILL, it reads EOF and the worker shuts down the same way.
5. If a worker exits on its own, the parent stops the others and exits with 1, for
   systemd (or whatever supervises the service) to restart it.

``run_workers`` and ``close_gracefully`` know nothing of echo: broadcast_redis.py
reuses them with another worker.  ``python -m picows serve --workers N`` does the
same for its echo server.  Linux only (``SO_REUSEPORT`` balancing).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Callable

import picows
from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)

SHUTDOWN_TIMEOUT = 5.0  # seconds a stopping worker waits for CLOSE answers
START_TIMEOUT = 30.0  # seconds the parent waits for every worker to listen


@dataclass
class Worker:
    """What one worker's code gets: where to listen, when it is ready, when to stop."""

    host: str
    port: int
    ready: Callable[[int], None]  # call with the bound port once listening
    stop: asyncio.Event = field(default_factory=asyncio.Event)  # SIGTERM or parent gone


# A worker's code: ``async def main(worker: Worker) -> None``.  spawn pickles it by
# name, so it must be a module-level function (or a functools.partial of one).
WorkerMain = Callable[[Worker], Awaitable[None]]


# ---------------------------------------------------------------------------
# The application: what every worker runs.


class Echo(WSListener):
    def __init__(self, live: set[WSTransport]) -> None:
        self.live = live

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.live.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.live.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
            transport.send(frame.msg_type, frame.get_payload_as_bytes(), frame.fin)


def pid_response() -> WSUpgradeResponse:
    """A 101 that says which worker answered (handy to see the kernel's spread)."""
    return WSUpgradeResponse.create_101_response(extra_headers={"X-Worker-Pid": str(os.getpid())})


async def echo_worker(worker: Worker) -> None:
    live: set[WSTransport] = set()

    def route(request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
        return WSUpgradeResponseWithListener(pid_response(), Echo(live))

    # A backlog above asyncio's 100: clients reconnect all at once after a restart.
    server = await picows.ws_create_server(
        route, worker.host, worker.port, reuse_port=True, backlog=1024
    )
    worker.ready(server.sockets[0].getsockname()[1])
    await worker.stop.wait()
    await close_gracefully(server, live)


async def close_gracefully(
    server: asyncio.AbstractServer, live: Iterable[WSTransport], timeout: float = SHUTDOWN_TIMEOUT
) -> None:
    """No new connections; CLOSE 1001 to everyone; a bounded wait; drop the rest."""
    server.close()
    transports = list(live)
    for transport in transports:
        transport.send_close(WSCloseCode.GOING_AWAY, b"server shutting down")
    waiters = [asyncio.ensure_future(t.wait_disconnected()) for t in transports]
    if waiters:
        await asyncio.wait(waiters, timeout=timeout)
        for transport in transports:
            if not transport.is_disconnected:
                transport.disconnect(graceful=False)
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(server.wait_closed(), timeout)


# ---------------------------------------------------------------------------
# The supervisor (parent process).


def reserve_port(host: str, port: int) -> socket.socket:
    """Binds host:port with SO_REUSEPORT, without listening (step 1 above).

    ``host`` is one address (an IP literal, or a name with a single address).
    """
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def run_workers(
    main: WorkerMain,
    host: str,
    port: int,
    count: int,
    on_ready: Callable[[int, list[int]], None],
) -> int:
    """Runs ``main`` in ``count`` processes sharing host:port; returns the exit code.

    ``on_ready(port, pids)`` is called once all of them listen.  0 after SIGTERM,
    130 after Ctrl-C, 1 if a worker failed.
    """
    with reserve_port(host, port) as reserved:
        port = reserved.getsockname()[1]
        return asyncio.run(supervise(main, host, port, count, on_ready))


async def supervise(
    main: WorkerMain,
    host: str,
    port: int,
    count: int,
    on_ready: Callable[[int, list[int]], None],
) -> int:
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[int] = loop.create_future()

    def finish(code: int) -> None:
        if not outcome.done():
            outcome.set_result(code)

    loop.add_signal_handler(signal.SIGTERM, finish, 0)
    loop.add_signal_handler(signal.SIGINT, finish, 130)
    context = multiprocessing.get_context("spawn")
    processes: list[Any] = []
    exits: list[asyncio.Future[None]] = []
    ready: set[int] = set()
    stopping = False

    def failed(message: str) -> None:
        print(f"error: {message}", file=sys.stderr, flush=True)
        finish(1)

    def on_message(process: Any, pipe: Connection) -> None:
        try:
            kind, value = pipe.recv()
        except (EOFError, OSError):  # the worker is gone: on_exit says how
            loop.remove_reader(pipe.fileno())
            return
        if kind == "error":
            failed(f"worker {process.pid}: {value}")
            return
        ready.add(process.pid)
        if len(ready) == count:
            timer.cancel()
            on_ready(port, [p.pid for p in processes])

    def on_exit(process: Any, exited: asyncio.Future[None]) -> None:
        loop.remove_reader(process.sentinel)
        process.join(5)  # at once: the sentinel says it is exiting (exitcode could lag)
        exited.set_result(None)
        if not stopping:
            failed(f"worker {process.pid} exited with code {process.exitcode}")

    pipes: list[Connection] = []
    timer = loop.call_later(START_TIMEOUT, failed, f"not all listening in {START_TIMEOUT} s")
    try:
        for index in range(count):
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(
                target=worker_process, args=(main, host, port, sender), name=f"worker-{index}"
            )
            process.start()
            sender.close()  # the worker holds the only writing end
            processes.append(process)
            pipes.append(receiver)
            exits.append(loop.create_future())
            loop.add_reader(receiver.fileno(), on_message, process, receiver)
            loop.add_reader(process.sentinel, on_exit, process, exits[-1])
        code = await outcome
    finally:
        timer.cancel()
        stopping = True
        for process, exited in zip(processes, exits):  # step 3: they close with 1001
            if not exited.done():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        if exits:
            await asyncio.wait(exits, timeout=SHUTDOWN_TIMEOUT + 5)
        for process in processes:
            if process.is_alive():  # stuck past its own bounded shutdown
                process.kill()
            process.join()
        for pipe in pipes:
            pipe.close()
    return code


# ---------------------------------------------------------------------------
# A worker process.


def worker_process(main: WorkerMain, host: str, port: int, parent: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        asyncio.run(worker_loop(main, host, port, parent))
    except Exception as exc:
        with contextlib.suppress(OSError):
            parent.send(("error", f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from exc


async def worker_loop(main: WorkerMain, host: str, port: int, parent: Connection) -> None:
    loop = asyncio.get_running_loop()
    worker = Worker(host, port, lambda bound: parent.send(("ready", bound)))
    loop.add_signal_handler(signal.SIGTERM, worker.stop.set)
    parent_process = multiprocessing.parent_process()
    if parent_process is not None:  # step 4: EOF on this pipe means the parent died
        sentinel = parent_process.sentinel

        def parent_gone() -> None:
            loop.remove_reader(sentinel)
            worker.stop.set()

        loop.add_reader(sentinel, parent_gone)
    await main(worker)


# ---------------------------------------------------------------------------


def announce(port: int, pids: list[int], host: str) -> None:
    print(f"serving on ws://{host}:{port}/", flush=True)
    print("workers: " + " ".join(map(str, pids)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001, help="0 picks a free port")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    on_ready = functools.partial(announce, host=args.host)
    sys.exit(run_workers(echo_worker, args.host, args.port, args.workers, on_ready))


if __name__ == "__main__":
    main()
