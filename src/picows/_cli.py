"""The command line: ``python -m picows serve | client | bench | info``.

* ``serve``  -- an echo server; prints ``serving on ws://HOST:PORT/`` as its first line
  (``--workers N``: N processes on one port, see ``_workers``; their pids follow).
* ``client`` -- sends stdin lines as TEXT (or BINARY) frames, prints what comes back.
* ``bench``  -- an echo benchmark, once per backend, each in its own subprocess.
* ``info``   -- version, backend, interpreter, platform and optional dependencies.

Exit codes: 0 success, 1 connection or handshake failure, 2 usage error (including a
bad URL), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from importlib.util import find_spec
from typing import Any, Optional, TextIO

from ._api import ws_connect, ws_create_server
from ._backend import BACKEND
from ._exceptions import WSHandshakeError, WSInvalidURL, WSProxyError
from ._frames import WSFrame
from ._listener import WSListener
from ._transport import WSTransport
from ._types import WSCloseCode, WSMsgType
from ._url import parse_url
from ._workers import WorkerContext, WorkerError, close_gracefully, run_single, run_workers

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_PROG = "python -m picows"
_HEX_SHOWN = 32  # bytes of a binary payload shown in hex before "..."


class _UsageError(Exception):
    """Bad input that argparse could not catch (a malformed URL or header)."""


def _say(stream: TextIO, line: str) -> None:
    """Write one line and flush at once: the output may be a pipe read line by line."""
    stream.write(line + "\n")
    stream.flush()


def _error(command: str, message: str) -> None:
    _say(sys.stderr, f"{_PROG} {command}: error: {message}")


# ---------------------------------------------------------------------------
# serve


class _EchoListener(WSListener):
    """Sends every data frame back; answers a CLOSE with the same code, then hangs up."""

    def __init__(self, live: set[WSTransport]) -> None:
        self.live = live  # the open connections, for a graceful shutdown

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.live.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.live.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
            transport.send(frame.msg_type, frame.get_payload_as_bytes(), bool(frame.fin))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _server_context(cert: Optional[str], key: Optional[str]) -> Optional[ssl.SSLContext]:
    if cert is None:
        if key is not None:
            raise _UsageError("--key needs --cert")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise _UsageError(f"cannot load certificate {cert}: {exc}") from exc
    return context


async def _echo_worker(cert: Optional[str], key: Optional[str], worker: WorkerContext) -> None:
    """One server process: echoes until stopped, then closes every connection with 1001."""
    live: set[WSTransport] = set()
    server = await ws_create_server(
        lambda request: _EchoListener(live),
        worker.host,
        worker.port,
        ssl=_server_context(cert, key),  # per process: an SSLContext cannot be pickled
        reuse_port=worker.reuse_port or None,
        backlog=1024,  # above asyncio's 100: clients reconnect all at once after a restart
    )
    worker.ready(server.sockets[0].getsockname()[1])
    await worker.stop.wait()
    await close_gracefully(server, live)


def _serve(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise _UsageError("--workers must be at least 1")
    scheme = "wss" if _server_context(args.cert, args.key) is not None else "ws"

    def announce(port: int, pids: list[int]) -> None:
        _say(sys.stdout, f"serving on {scheme}://{_url_host(args.host)}:{port}/")
        if args.workers > 1:
            _say(sys.stdout, "workers: " + " ".join(map(str, pids)))

    main = functools.partial(_echo_worker, args.cert, args.key)
    if args.workers == 1:
        return run_single(main, args.host, args.port, announce)
    return run_workers(main, args.host, args.port, args.workers, announce)


# ---------------------------------------------------------------------------
# client


def describe_frame(frame: WSFrame) -> str:
    """One line for a received frame: ``< TEXT hello``, ``< BINARY 5 bytes: 0102030405``."""
    payload = frame.get_payload_as_bytes()
    name = WSMsgType(frame.msg_type).name
    more = "" if frame.fin else " (more frames follow)"
    if frame.msg_type == WSMsgType.TEXT:
        return f"< TEXT {payload.decode('utf-8', 'replace')}{more}"
    if frame.msg_type == WSMsgType.CLOSE:
        reason = frame.get_close_message() or b""
        code = frame.get_close_code()
        return f"< CLOSE {int(code)} {reason.decode('utf-8', 'replace')}".rstrip()
    shown = payload[:_HEX_SHOWN].hex() + ("..." if len(payload) > _HEX_SHOWN else "")
    size = f"{len(payload)} byte{'' if len(payload) == 1 else 's'}"
    return f"< {name} {size}" + (f": {shown}" if payload else "") + more


class _ClientListener(WSListener):
    """Prints every frame and counts complete data messages (the echoes)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.received = 0
        self.progress = asyncio.Event()
        self.peer_closed = False

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        _say(self.out, describe_frame(frame))
        if frame.msg_type == WSMsgType.CLOSE:
            self.peer_closed = True
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type != WSMsgType.PING and frame.msg_type != WSMsgType.PONG and frame.fin:
            self.received += 1
            self.progress.set()


def _client_context(args: argparse.Namespace) -> Optional[ssl.SSLContext]:
    if args.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if args.cafile is not None:
        return ssl.create_default_context(cafile=args.cafile)
    return None


def _parse_headers(raw: Sequence[str]) -> list[tuple[str, str]]:
    headers = []
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise _UsageError(f"--header must look like 'Name: value', got {item!r}")
        headers.append((name.strip(), value.strip()))
    return headers


def _read_stdin(loop: asyncio.AbstractEventLoop, on_line: Any) -> None:
    """Runs in a daemon thread: blocking reads of stdin, handed to the loop line by line."""
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        try:
            loop.call_soon_threadsafe(on_line, line if line else None)
        except RuntimeError:  # the loop is closed: the client is gone
            return
        if not line:
            return


def connect_error_message(exc: BaseException, url: str) -> str:
    """A one-line description of why ``ws_connect`` failed."""
    if isinstance(exc, WSProxyError):
        return f"proxy error: {exc}"
    if isinstance(exc, WSHandshakeError):
        response = exc.response
        if response is not None and int(response.status) != 101:
            phrase = getattr(response.status, "phrase", "")
            return f"handshake failed: HTTP {int(response.status)} {phrase}".rstrip()
        return f"handshake failed: {exc}"
    if isinstance(exc, ssl.SSLError):
        detail = getattr(exc, "verify_message", None) or exc.reason or str(exc)
        return f"TLS error with {url}: {detail}"
    if isinstance(exc, ConnectionRefusedError):
        return f"cannot connect to {url}: connection refused"
    if isinstance(exc, asyncio.TimeoutError):
        return f"cannot connect to {url}: timed out"
    if isinstance(exc, OSError):
        return f"cannot connect to {url}: {exc.strerror or exc}"
    return f"cannot connect to {url}: {type(exc).__name__}: {exc}"


async def _client(args: argparse.Namespace) -> int:
    try:
        parse_url(args.url)
    except WSInvalidURL as exc:
        raise _UsageError(f"invalid URL: {exc}") from exc
    headers = _parse_headers(args.header)
    listener = _ClientListener(sys.stdout)
    try:
        transport, _ = await ws_connect(
            _constant(listener),
            args.url,
            ssl_context=_client_context(args),
            extra_headers=headers or None,
            proxy=args.proxy,
            websocket_handshake_timeout=args.timeout,
        )
    except (WSHandshakeError, WSProxyError, OSError, asyncio.TimeoutError) as exc:
        _error("client", connect_error_message(exc, args.url))
        return EXIT_FAILURE
    _say(sys.stderr, f"connected to {args.url}")

    msg_type = WSMsgType.BINARY if args.binary else WSMsgType.TEXT
    sent = 0
    stdin_eof = asyncio.Event()

    def on_line(line: Optional[bytes]) -> None:
        nonlocal sent
        if line is None:
            stdin_eof.set()
            return
        line = line.rstrip(b"\r\n")
        if msg_type == WSMsgType.TEXT:  # never send invalid UTF-8 as TEXT (RFC 6455 5.6)
            line = line.decode("utf-8", "replace").encode("utf-8")
        transport.send(msg_type, line)
        sent += 1

    loop = asyncio.get_running_loop()
    threading.Thread(target=_read_stdin, args=(loop, on_line), daemon=True).start()

    disconnected = asyncio.ensure_future(transport.wait_disconnected())
    eof = asyncio.ensure_future(stdin_eof.wait())
    try:
        await asyncio.wait({disconnected, eof}, return_when=asyncio.FIRST_COMPLETED)
        if not disconnected.done():
            # stdin is exhausted: give outstanding echoes a bounded moment, then close.
            async def echoes() -> None:
                while listener.received < sent:
                    listener.progress.clear()
                    await listener.progress.wait()

            waiting = asyncio.ensure_future(echoes())
            await asyncio.wait(
                {waiting, disconnected}, timeout=args.wait, return_when=asyncio.FIRST_COMPLETED
            )
            waiting.cancel()
            transport.send_close(WSCloseCode.OK)
            await asyncio.wait({disconnected}, timeout=2)
            if not disconnected.done():
                transport.disconnect()
                await asyncio.wait({disconnected}, timeout=2)
            return EXIT_OK
        if disconnected.exception() is not None:
            _error("client", f"connection failed: {disconnected.exception()}")
            return EXIT_FAILURE
        if listener.peer_closed:
            return EXIT_OK
        _error("client", "connection lost without a closing handshake")
        return EXIT_FAILURE
    finally:
        eof.cancel()
        if not disconnected.done():
            transport.disconnect(graceful=False)
            disconnected.cancel()


# ---------------------------------------------------------------------------
# bench


class _BenchClient(WSListener):
    """Ping-pong over echo: sends ``payload``, and again on every echo, until ``deadline``."""

    def __init__(self, payload: bytes, deadline: float, done: asyncio.Future[int]) -> None:
        self.payload = payload
        self.deadline = deadline
        self.done = done
        self.count = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.BINARY, self.payload)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type != WSMsgType.BINARY:
            return
        self.count += 1
        if time.perf_counter() < self.deadline:
            transport.send(WSMsgType.BINARY, self.payload)
        elif not self.done.done():
            self.done.set_result(self.count)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError("benchmark connection closed early"))


def _constant(listener: WSListener) -> Callable[[], WSListener]:
    """A listener factory for ws_connect that returns an existing listener."""
    return lambda: listener


async def _bench_worker(sizes: Sequence[int], seconds: float) -> dict[str, Any]:
    """Runs in the subprocess: an echo server and a client in this one process."""
    server = await ws_create_server(lambda request: _EchoListener(set()), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    results = []
    loop = asyncio.get_running_loop()
    try:
        for size in sizes:
            done: asyncio.Future[int] = loop.create_future()
            start = time.perf_counter()
            client = _BenchClient(os.urandom(size), start + seconds, done)
            transport, _ = await ws_connect(
                _constant(client),
                f"ws://127.0.0.1:{port}/",
                max_frame_size=max(size + 1024, 1 << 20),
            )
            count = await asyncio.wait_for(done, seconds + 10)
            elapsed = time.perf_counter() - start
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
            await transport.wait_disconnected()
            results.append([size, count / elapsed])
    finally:
        server.close()
        await server.wait_closed()
    return {"backend": BACKEND, "results": results}


_BENCH_LEGS = (
    ("pure Python", {"PICOWS_NO_EXTENSIONS": "1"}),
    ("accelerated", {"PICOWS_NO_EXTENSIONS": None}),
)


def _bench(args: argparse.Namespace) -> int:
    if args.duration <= 0:
        raise _UsageError("--duration must be positive")
    if args.worker:
        report = asyncio.run(_bench_worker(args.sizes, args.duration / len(args.sizes)))
        _say(sys.stdout, json.dumps(report))
        return EXIT_OK
    _say(sys.stdout, f"echo round trips per second, {args.duration:g} s per backend")
    failed = False
    for leg, changes in _BENCH_LEGS:
        env = dict(os.environ)
        env.pop("PICOWS_REQUIRE_EXTENSIONS", None)
        for name, value in changes.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        command = [sys.executable, "-m", "picows", "bench", "--worker"]
        command += ["--duration", str(args.duration), "--sizes", *map(str, args.sizes)]
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            _error("bench", f"{leg} run failed ({proc.returncode}): {last}")
            failed = True
            continue
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        note = "" if leg == "pure Python" or report["backend"] != "python" else ", no accelerator"
        _say(sys.stdout, f"{leg} (backend {report['backend']}{note}):")
        for size, rate in report["results"]:
            _say(sys.stdout, f"  {size:>9} bytes  {rate:>12,.0f} req/s")
    return EXIT_FAILURE if failed else EXIT_OK


# ---------------------------------------------------------------------------
# info


def _installed(module: str, distribution: str) -> str:
    if find_spec(module) is None:
        return "not installed"
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "installed"


def _info(args: argparse.Namespace) -> int:
    from . import __version__

    impl = sys.implementation.name
    lines = [
        f"picows {__version__}",
        f"backend: {BACKEND}",
        f"interpreter: {platform.python_implementation()} {platform.python_version()}"
        f" ({impl}, {sys.executable})",
        f"platform: {platform.platform()}",
        f"uvloop: {_installed('uvloop', 'uvloop')}",
        f"aiofastnet: {_installed('aiofastnet', 'aiofastnet')}",
        f"python-socks: {_installed('python_socks', 'python-socks')}",
    ]
    for line in lines:
        _say(sys.stdout, line)
    return EXIT_OK


# ---------------------------------------------------------------------------
# argument parsing and main


def _positive_port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG, description="picows: WebSocket echo server, client, benchmark and info."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run an echo server")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument(
        "--port", type=_positive_port, default=9001, help="port, 0 picks a free one (9001)"
    )
    serve.add_argument("--cert", help="PEM certificate chain: serve wss://")
    serve.add_argument("--key", help="PEM private key (if not in --cert)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port with SO_REUSEPORT (1)",
    )

    client = commands.add_parser("client", help="send stdin lines, print what comes back")
    client.add_argument("url", help="ws:// or wss:// URL")
    client.add_argument("--binary", action="store_true", help="send lines as BINARY frames")
    client.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="extra request header (repeatable)",
    )
    client.add_argument("--proxy", help="http://, https://, socks4:// or socks5:// proxy URL")
    client.add_argument("--insecure", action="store_true", help="skip TLS verification")
    client.add_argument("--cafile", help="PEM file of CAs to trust for wss://")
    client.add_argument("--timeout", type=float, default=5, help="handshake timeout in seconds (5)")
    client.add_argument(
        "--wait",
        type=float,
        default=2,
        help="at end of input, seconds to wait for outstanding echoes (2)",
    )

    bench = commands.add_parser("bench", help="echo benchmark on both backends")
    bench.add_argument(
        "--duration", type=float, default=2, help="seconds per backend, split over sizes (2)"
    )
    bench.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[64, 4096, 65536],
        help="message sizes in bytes (64 4096 65536)",
    )
    bench.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)

    commands.add_parser("info", help="version, backend, interpreter, optional dependencies")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m picows``; returns the exit code."""
    args = build_parser().parse_args(argv)  # exits with 2 on a usage error
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "client":
            return asyncio.run(_client(args))
        if args.command == "bench":
            return _bench(args)
        return _info(args)
    except _UsageError as exc:
        _error(args.command, str(exc))
        return EXIT_USAGE
    except (OSError, WorkerError) as exc:  # serve: the port is taken, a worker died...
        _error(args.command, str(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
