"""Serving from several processes on one port (``python -m picows serve --workers N``).

One Python process runs one event loop on one core.  To use more cores, the server
runs N worker processes, each with its own loop and its own listening socket bound
to the same address with ``SO_REUSEPORT``: the kernel (Linux 3.9+) spreads incoming
connections over the listening sockets of the group, so no process accepts on
behalf of another and nothing passes sockets around.

The rules, in the order things happen:

* The parent binds the address first, with ``SO_REUSEPORT`` but without listening.
  That fails early if someone else holds the port, turns port 0 into one concrete
  free port that every worker then binds, and keeps the port ours while workers
  start.  A bound socket that does not listen receives no connections.
* Workers are started with the ``spawn`` method: a fresh interpreter that inherits
  no event loop, thread or file descriptor of the parent.  Each reports "ready"
  through a pipe once it listens; the parent announces the URL when all have.
* SIGTERM or SIGINT to the parent sends SIGTERM to every worker; a worker then stops
  accepting, sends CLOSE 1001 (going away) on every connection, waits a bounded time
  for the peers to answer, drops whoever did not, and exits.  Workers ignore SIGINT:
  Ctrl-C in a terminal reaches the whole process group, and the parent decides.
* A worker watches its parent's sentinel (a pipe whose other end only the parent
  holds): if the parent dies, even by SIGKILL, the pipe reads EOF and the worker
  shuts down as if it had received SIGTERM.  No orphan keeps the port.
* A worker that exits on its own is a failure: the parent stops the others and
  exits with an error (a process supervisor such as systemd restarts the service).

``SO_REUSEPORT`` groups sockets of the same user only, but any process of that user
that sets it can join the group of a fixed port and receive a share of the
connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Callable, Optional

from ._transport import WSTransport
from ._types import WSCloseCode

__all__ = [
    "WorkerContext",
    "WorkerError",
    "WorkerMain",
    "close_gracefully",
    "reserve_port",
    "run_single",
    "run_workers",
]

EXIT_OK = 0
EXIT_INTERRUPTED = 130

#: Seconds a stopping worker waits for its peers to answer CLOSE 1001.
SHUTDOWN_TIMEOUT = 5.0
#: Seconds the parent waits for the workers to listen.
START_TIMEOUT = 30.0
#: Extra seconds the parent grants a stopping worker before SIGKILL.
KILL_GRACE = 5.0


class WorkerError(Exception):
    """A worker failed to start, or exited while it should have been serving."""


@dataclass
class WorkerContext:
    """What the code of one server process gets from its supervisor.

    The worker main listens on ``host``/``port`` (with ``reuse_port`` as given),
    calls ``ready(port)`` once it accepts connections, serves until ``stop`` is
    set, then shuts down gracefully and returns.
    """

    host: Optional[str]
    port: int
    reuse_port: bool
    ready: Callable[[int], None]
    stop: asyncio.Event = field(default_factory=asyncio.Event)


#: The code one server process runs; it must be a module-level function (or a
#: ``functools.partial`` of one) because ``spawn`` pickles it by name.
WorkerMain = Callable[[WorkerContext], Awaitable[None]]


async def close_gracefully(
    server: asyncio.AbstractServer,
    live: Iterable[WSTransport],
    timeout: float = SHUTDOWN_TIMEOUT,
) -> None:
    """Stop accepting, send CLOSE 1001 to every connection, wait ``timeout`` at most.

    Whoever has not answered by then is disconnected without waiting further.
    """
    server.close()
    transports = list(live)
    for transport in transports:
        transport.send_close(WSCloseCode.GOING_AWAY, b"server shutting down")
    waiters = [asyncio.ensure_future(t.wait_disconnected()) for t in transports]
    if waiters:
        _, pending = await asyncio.wait(waiters, timeout=timeout)
        for waiter in pending:
            waiter.cancel()
        for transport in transports:
            if not transport.is_disconnected:
                transport.disconnect(graceful=False)
        # Collect the outcome (a client-side failure, a cancellation) of every waiter.
        await asyncio.gather(*waiters, return_exceptions=True)
    close_clients = getattr(server, "close_clients", None)
    if close_clients is not None:  # Python 3.13+: wait_closed also waits for clients
        close_clients()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(server.wait_closed(), timeout)


# ---------------------------------------------------------------------------
# One process


def run_single(
    main: WorkerMain, host: Optional[str], port: int, announce: Callable[[int, list[int]], None]
) -> int:
    """Runs ``main`` in this process: 0 after SIGTERM, 130 after SIGINT (Ctrl-C)."""
    return asyncio.run(_single(main, host, port, announce))


async def _single(
    main: WorkerMain, host: Optional[str], port: int, announce: Callable[[int, list[int]], None]
) -> int:
    loop = asyncio.get_running_loop()
    outcome = EXIT_OK
    context = WorkerContext(host, port, False, lambda bound: announce(bound, [os.getpid()]))

    def on_signal(code: int) -> None:
        nonlocal outcome
        outcome = code
        context.stop.set()

    # Handled before main runs: whoever reads the announcement may stop us at once.
    with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows, non-main thread
        loop.add_signal_handler(signal.SIGTERM, on_signal, EXIT_OK)
        loop.add_signal_handler(signal.SIGINT, on_signal, EXIT_INTERRUPTED)
    await main(context)
    return outcome


# ---------------------------------------------------------------------------
# The parent


def reserve_port(host: Optional[str], port: int) -> tuple[int, list[socket.socket]]:
    """Binds (without listening) every address of ``host`` with ``SO_REUSEPORT``.

    Returns the port (the one the kernel chose when ``port`` is 0) and the sockets,
    which the caller keeps open while the workers serve.  Raises OSError when the
    address is taken by a socket outside a ``SO_REUSEPORT`` group of ours.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    addresses = list(dict.fromkeys((family, address) for family, _, _, _, address in infos))
    attempts = 20 if port == 0 else 1  # port 0: the first family's pick may be taken in another
    for attempt in range(attempts):
        sockets: list[socket.socket] = []
        chosen = port
        try:
            for family, address in addresses:
                sock = socket.socket(family, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:  # as asyncio's create_server does
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((address[0], chosen, *address[2:]))
                chosen = sock.getsockname()[1]
            return chosen, sockets
        except OSError:
            for sock in sockets:
                sock.close()
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@dataclass
class _Worker:
    process: Any  # multiprocessing's SpawnProcess: no public type to name
    messages: Connection
    exited: asyncio.Future[int]
    ready: bool = False


def run_workers(
    main: WorkerMain,
    host: Optional[str],
    port: int,
    count: int,
    announce: Callable[[int, list[int]], None],
) -> int:
    """Runs ``main`` in ``count`` spawned processes sharing one port.

    ``announce(port, pids)`` is called once every worker listens.  Returns 0 after
    SIGTERM, 130 after SIGINT; raises WorkerError if a worker fails, and OSError if
    the address cannot be bound.
    """
    port, reserved = reserve_port(host, port)
    try:
        return asyncio.run(_supervise(main, host, port, count, announce))
    finally:
        for sock in reserved:
            sock.close()


async def _supervise(
    main: WorkerMain,
    host: Optional[str],
    port: int,
    count: int,
    announce: Callable[[int, list[int]], None],
) -> int:
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[int] = loop.create_future()
    failure: list[str] = []
    stopping = False

    def finish(code: int) -> None:
        if not outcome.done():
            outcome.set_result(code)

    def fail(message: str) -> None:
        failure.append(message)
        finish(1)

    loop.add_signal_handler(signal.SIGTERM, finish, EXIT_OK)
    loop.add_signal_handler(signal.SIGINT, finish, EXIT_INTERRUPTED)

    def on_message(worker: _Worker) -> None:
        try:
            kind, value = worker.messages.recv()
        except (EOFError, OSError):  # the worker is gone; its sentinel tells how
            loop.remove_reader(worker.messages.fileno())
            return
        if kind == "error":
            fail(f"worker {worker.process.pid} failed: {value}")
            return
        worker.ready = True
        if all(w.ready for w in workers):
            announce(port, [w.process.pid for w in workers])

    def on_exit(worker: _Worker) -> None:
        loop.remove_reader(worker.process.sentinel)
        # The sentinel closes a moment before the process can be reaped: join(0) could
        # miss the exit code, a blocking join returns in microseconds.
        worker.process.join(KILL_GRACE)
        code = worker.process.exitcode
        worker.exited.set_result(code if code is not None else -1)
        if not stopping:
            fail(f"worker {worker.process.pid} exited with code {code}")

    def start_timed_out() -> None:
        if not all(w.ready for w in workers):
            fail(f"the workers did not listen within {START_TIMEOUT:g} s")

    context = multiprocessing.get_context("spawn")
    workers: list[_Worker] = []
    try:
        for index in range(count):
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(
                target=_worker_process,
                args=(main, host, port, sender),
                name=f"picows-worker-{index}",
            )
            process.start()
            sender.close()  # only the worker writes; EOF once it is gone
            worker = _Worker(process, receiver, loop.create_future())
            workers.append(worker)
            loop.add_reader(receiver.fileno(), on_message, worker)
            loop.add_reader(process.sentinel, on_exit, worker)
        timer = loop.call_later(START_TIMEOUT, start_timed_out)
        code = await outcome
        timer.cancel()
    finally:
        stopping = True
        await _stop_all(workers)
    if failure:
        raise WorkerError(failure[0])
    return code


async def _stop_all(workers: list[_Worker]) -> None:
    """SIGTERM to every live worker, a bounded wait, then SIGKILL for the rest."""
    for worker in workers:
        if not worker.exited.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.process.pid, signal.SIGTERM)
    pending = [w.exited for w in workers if not w.exited.done()]
    if pending:
        await asyncio.wait(pending, timeout=SHUTDOWN_TIMEOUT + KILL_GRACE)
    for worker in workers:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(KILL_GRACE)
        worker.messages.close()


# ---------------------------------------------------------------------------
# A worker


def _worker_process(main: WorkerMain, host: Optional[str], port: int, parent: Connection) -> None:
    """The body of a spawned worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        asyncio.run(_worker(main, host, port, parent))
    except Exception as exc:
        with contextlib.suppress(OSError):
            parent.send(("error", f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from exc
    finally:
        parent.close()


async def _worker(main: WorkerMain, host: Optional[str], port: int, parent: Connection) -> None:
    loop = asyncio.get_running_loop()
    context = WorkerContext(host, port, True, lambda bound: parent.send(("ready", bound)))
    loop.add_signal_handler(signal.SIGTERM, context.stop.set)

    sentinel = _parent_sentinel()
    if sentinel is not None:

        def parent_gone() -> None:
            loop.remove_reader(sentinel)  # EOF stays readable: react once
            context.stop.set()

        loop.add_reader(sentinel, parent_gone)
    await main(context)


def _parent_sentinel() -> Optional[int]:
    """A descriptor that becomes readable (EOF) when the parent process dies."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return None
    return parent.sentinel
