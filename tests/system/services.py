"""Real services for the system tests: redis-server, nginx, and our own server processes.

Every process is started here in a session of its own, on loopback ports picked at
run time, and stopped with its whole process group (SIGTERM, a bounded wait, then
SIGKILL).  Readiness is polled with a deadline, never assumed after a sleep.

Whether redis-server and nginx are here is decided by ``tools.py``, as for every
tool: their tests carry ``@pytest.mark.needs(...)`` and skip when one is missing,
naming the package to install; when ``CI`` is set they fail instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Callable, Optional

import picows
from tools import executable

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DEPLOY_NGINX_CONF = EXAMPLES / "deploy" / "nginx.conf"
TIMEOUT = 30.0  # seconds: a bound on any single wait, never a synchronisation device


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------
# Processes


def wait_until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Polls ``condition()`` until it is true; TimeoutError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:g} s")
        time.sleep(0.01)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
                found.append(int(entry))
    return found


def stop_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stops ``proc``'s process group: ``sig``, a bounded wait, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(TIMEOUT)
    # Workers may outlive their parent by their bounded shutdown: kill the stragglers.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Polls until something accepts on 127.0.0.1:``port``; fails if ``proc`` exits."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        if proc.poll() is not None:
            output = log.read_text(errors="replace")
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}: {output}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{proc.args!r} is not listening on port {port}") from None
            time.sleep(0.01)


@contextlib.contextmanager
def daemon(args: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A foreground daemon in its own process group, listening on ``port``."""
    with log.open("wb") as output:  # a pipe nobody reads could fill up and stall it
        proc = subprocess.Popen(
            args, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_port(port, proc, log)
        yield proc
    finally:
        stop_group(proc)


# ---------------------------------------------------------------------------
# redis-server


@contextlib.contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """A throw-away redis-server on a free loopback port; yields its ``redis://`` URL."""
    exe = executable("redis-server")
    port = free_port()
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp)]
    # No persistence and no daemonizing: nothing outlives the test.
    args += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]
    with daemon(args, port, tmp / "redis.log"):
        wait_until(lambda: _redis_pong(port), f"redis-server answering PING on {port}")
        yield f"redis://127.0.0.1:{port}/0"


def _redis_pong(port: int) -> bool:
    """Whether redis answers PING (it may accept before it has loaded)."""
    with socket.create_connection(("127.0.0.1", port), 1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


# ---------------------------------------------------------------------------
# nginx with the deployment configuration of examples/deploy/nginx.conf

_NGINX_TEMP_PATHS = "".join(
    f"    {kind}_temp_path temp/{kind};\n"
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
)


def nginx_conf_for_test(listen_port: int, backend_port: int, text: str = "") -> str:
    """The deployment file with the test's ports, and temporary paths under the prefix."""
    text = text or DEPLOY_NGINX_CONF.read_text()
    swaps = [
        ("listen 8080 ", f"listen 127.0.0.1:{listen_port} "),
        ("server 127.0.0.1:9001;", f"server 127.0.0.1:{backend_port};"),
        ("\nhttp {\n", "\nhttp {\n" + _NGINX_TEMP_PATHS),
    ]
    for old, new in swaps:
        assert text.count(old) == 1, f"{DEPLOY_NGINX_CONF} no longer has {old!r} once"
        text = text.replace(old, new)
    return text


@contextlib.contextmanager
def nginx(prefix: Path, conf: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """nginx (master and workers) running ``conf`` under ``prefix``, listening on ``port``.

    The pid file and the error log go to the prefix and stderr (``-g``, ``-e``), so
    nothing of the system's nginx is touched.
    """
    exe = executable("nginx")
    (prefix / "temp").mkdir(parents=True, exist_ok=True)
    (prefix / "nginx.conf").write_text(conf)
    prefix.chmod(0o755)  # as root, the workers run as nobody and must traverse it
    (prefix / "temp").chmod(0o755)
    settings = f"daemon off; pid {prefix / 'nginx.pid'}; error_log stderr warn;"
    args = [exe, "-p", str(prefix), "-c", "nginx.conf", "-e", "stderr", "-g", settings]
    with daemon(args, port, prefix / "nginx.log") as proc:
        yield proc


# ---------------------------------------------------------------------------
# Our server processes: python -m picows serve, and the examples.


class ServerProcess:
    """A server that prints ``serving on URL`` (and ``workers: PID...``) when ready."""

    def __init__(self, *args: str) -> None:
        self.args = [sys.executable, *args]
        self.proc: Optional[asyncio.subprocess.Process] = None
        self.url = ""
        self.workers: list[int] = []
        self.stderr = b""

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # one group: Ctrl-C to all of it, and a clean-up
        )
        assert self.proc.stdout is not None
        first = await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)
        if not first.startswith(b"serving on "):
            await self.stop(signal.SIGKILL)
            raise RuntimeError(f"{self.args} did not start: {first!r} {self.stderr!r}")
        self.url = first.decode().removeprefix("serving on ").strip()
        if "--workers" in self.args and self.args[self.args.index("--workers") + 1] != "1":
            second = await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)
            assert second.startswith(b"workers: "), second
            self.workers = [int(pid) for pid in second.split()[1:]]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self, sig: int = signal.SIGTERM, group: bool = False) -> int:
        """Sends ``sig`` (to the whole group with ``group``); the exit code, bounded."""
        assert self.proc is not None
        if self.proc.returncode is None:
            # os.kill, not send_signal: Popen.send_signal polls, and a reap there
            # steals the exit code from asyncio's child watcher.
            with contextlib.suppress(ProcessLookupError):
                (os.killpg if group else os.kill)(self.proc.pid, sig)
        try:
            _, stderr = await asyncio.wait_for(self.proc.communicate(), TIMEOUT)
            self.stderr = stderr or b""
        finally:
            self.kill_leftovers()
        assert self.proc.returncode is not None
        return self.proc.returncode

    def kill_leftovers(self) -> None:
        """SIGKILL to whatever is left of the group (after a failed test)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def server_process(*args: str) -> AsyncIterator[ServerProcess]:
    """Runs a ServerProcess; whatever happens, its whole group is gone afterwards."""
    server = ServerProcess(*args)
    try:
        await server.start()
        yield server
    finally:
        server.kill_leftovers()
        if server.proc is not None:  # reaped, and its pipes closed before the loop is
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.proc.communicate(), TIMEOUT)


async def wait_gone(pids: list[int], timeout: float = TIMEOUT) -> None:
    """Polls until none of ``pids`` runs; fails naming the survivors after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid in pids if alive(pid)]
        if not left:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"processes still running after {timeout:g} s: {left}")
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------------------
# The client side


class Peer(picows.WSListener):
    """A client that keeps what it receives: data messages, PONGs, the CLOSE code."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.pongs = 0
        self.close_code: Optional[int] = None
        self.changed = asyncio.Event()

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        if frame.msg_type == picows.WSMsgType.CLOSE:
            self.close_code = int(frame.get_close_code())
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type == picows.WSMsgType.PONG:
            self.pongs += 1
        elif frame.msg_type in (picows.WSMsgType.TEXT, picows.WSMsgType.BINARY):
            self.messages.append(frame.get_payload_as_bytes())
        self.changed.set()

    def pause_writing(self) -> None:
        """Tests send faster than loopback drains on purpose: nothing to warn about."""

    def resume_writing(self) -> None:
        pass

    async def wait_for(self, condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        """Waits (bounded) until ``condition()`` holds, re-checking after every frame."""

        async def loop() -> None:
            while not condition():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), timeout)


async def connect(url: str) -> tuple[picows.WSTransport, Peer]:
    transport, peer = await asyncio.wait_for(picows.ws_connect(Peer, url), TIMEOUT)
    assert isinstance(peer, Peer)
    return transport, peer
