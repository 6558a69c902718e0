"""Real proxies for the tests, on loopback ports picked at run time.

* tinyproxy (Debian ``tinyproxy``): HTTP CONNECT, without and with Basic auth, and one
  that refuses CONNECT to every port but 1 (403);
* danted (Debian ``dante-server``): SOCKS4 and SOCKS5 without auth;
* microsocks (Debian ``microsocks``): SOCKS5 without and with user/password
  (RFC 1929; no system account needed, unlike danted);
* an HTTPS proxy: a small TLS terminator of ours in front of tinyproxy;
* fakes that misbehave: one that answers garbage, one that never answers, one that
  records what it was sent and answers what it is told, and a closed port.

Each daemon's fixture asks ``tools.executable`` for it: a daemon that is not installed
makes the tests using it skip, naming the package to install (fail when ``CI`` is set).
Test modules load these fixtures with ``pytest_plugins = ["proxies"]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

import picows
from helpers import CollectingListener
from tools import executable

# The URLs carry the password percent-encoded, to check that it is decoded.  (tinyproxy's
# configuration accepts only letters, digits, "-", "." and "_" in it.)
PROXY_USER, PROXY_PASSWORD = "user", "pass-w.rd"
QUOTED_PASSWORD = "pass%2Dw%2Erd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 5) -> None:
    """Polls until the daemon accepts connections (it gives no other readiness signal)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = log.read_text(errors="replace")
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}: {output}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.01)
    raise TimeoutError(f"{proc.args!r} is not listening on port {port}")


@contextlib.contextmanager
def _daemon(args: list[str], port: int, log: Path) -> Iterator[None]:
    """Runs a foreground daemon in its own process group; stops the whole group.

    Its output goes to ``log`` (a pipe nobody reads could fill up and stall it).
    """
    with log.open("wb") as output:
        proc = subprocess.Popen(
            args, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_port(port, proc, log)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _tinyproxy(tmp: Path, extra: str) -> Iterator[str]:
    exe = executable("tinyproxy")
    port = free_port()
    conf = tmp / "tinyproxy.conf"
    # No LogFile: logs go to stderr; "Critical" keeps them (and the pipe) nearly empty.
    conf.write_text(
        f"Port {port}\nListen 127.0.0.1\nTimeout 600\nMaxClients 100\nLogLevel Critical\n"
        f"Allow 127.0.0.1\nDisableViaHeader Yes\n{extra}"
    )
    with _daemon([exe, "-d", "-c", str(conf)], port, tmp / "tinyproxy.log"):
        yield f"127.0.0.1:{port}"


@pytest.fixture(scope="session")
def tinyproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a tinyproxy that opens CONNECT tunnels to any port."""
    yield from _tinyproxy(tmp_path_factory.mktemp("tinyproxy"), "")


@pytest.fixture(scope="session")
def tinyproxy_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a tinyproxy that wants Basic auth (PROXY_USER, PROXY_PASSWORD)."""
    extra = f"BasicAuth {PROXY_USER} {PROXY_PASSWORD}\n"
    yield from _tinyproxy(tmp_path_factory.mktemp("tinyproxy_auth"), extra)


@pytest.fixture(scope="session")
def tinyproxy_port_1_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a tinyproxy that refuses CONNECT to any port but 1 (403)."""
    yield from _tinyproxy(tmp_path_factory.mktemp("tinyproxy_refuse"), "ConnectPort 1\n")


@pytest.fixture(scope="session")
def danted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a dante server: SOCKS4 and SOCKS5, no authentication."""
    exe = executable("danted")
    tmp = tmp_path_factory.mktemp("danted")
    port = free_port()
    # As root, danted wants to know whom to run as; unprivileged it runs as itself.
    users = "user.privileged: root\nuser.unprivileged: nobody\n" if os.geteuid() == 0 else ""
    conf = tmp / "danted.conf"
    conf.write_text(
        f"logoutput: stderr\ninternal: 127.0.0.1 port = {port}\nexternal: 127.0.0.1\n"
        f"clientmethod: none\nsocksmethod: none\n{users}"
        "client pass {\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n  log: error\n}\n"
        "socks pass {\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n  command: connect\n  log: error\n}\n"
    )
    with _daemon([exe, "-f", str(conf), "-p", str(tmp / "danted.pid")], port, tmp / "danted.log"):
        yield f"127.0.0.1:{port}"


def _microsocks(tmp: Path, *auth: str) -> Iterator[str]:
    exe = executable("microsocks")
    port = free_port()
    with _daemon([exe, "-i", "127.0.0.1", "-p", str(port), *auth], port, tmp / "microsocks.log"):
        yield f"127.0.0.1:{port}"


@pytest.fixture(scope="session")
def microsocks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a microsocks SOCKS5 server without authentication."""
    yield from _microsocks(tmp_path_factory.mktemp("microsocks"))


@pytest.fixture(scope="session")
def microsocks_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a microsocks that wants user/password (PROXY_USER, PROXY_PASSWORD)."""
    tmp = tmp_path_factory.mktemp("microsocks_auth")
    yield from _microsocks(tmp, "-u", PROXY_USER, "-P", PROXY_PASSWORD)


# ---------------------------------------------------------------------------
# An HTTPS proxy: TLS in front of tinyproxy, on an event loop in a thread of its own.


class TLSTerminator:
    """Accepts TLS on a loopback port and pipes the plaintext to ``upstream``.

    Enough for an HTTPS proxy: the client's CONNECT (and, for wss, its inner TLS
    session with the server) reaches tinyproxy through it.
    """

    def __init__(self, upstream: str, context: ssl.SSLContext) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self._context = context
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def __enter__(self) -> TLSTerminator:
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("the TLS terminator did not start")
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._context)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.run_forever()
        server.close()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(server.wait_closed())
        loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            _pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True
        )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


@pytest.fixture(scope="session")
def https_proxy(tinyproxy: str, server_ssl_context: ssl.SSLContext) -> Iterator[str]:
    """``host:port`` of an HTTPS proxy (TLS to tinyproxy); trust client_ssl_context."""
    with TLSTerminator(tinyproxy, server_ssl_context) as terminator:
        yield f"127.0.0.1:{terminator.port}"


@pytest.fixture(scope="session")
def https_proxy_auth(tinyproxy_auth: str, server_ssl_context: ssl.SSLContext) -> Iterator[str]:
    """Like https_proxy, in front of tinyproxy_auth."""
    with TLSTerminator(tinyproxy_auth, server_ssl_context) as terminator:
        yield f"127.0.0.1:{terminator.port}"


# ---------------------------------------------------------------------------
# Every working proxy, as a parametrised fixture.


@dataclass
class ProxyCase:
    """A proxy URL and the keywords ws_connect needs for it."""

    name: str
    url: str
    kwargs: dict[str, Any]

    @property
    def scheme(self) -> str:
        return self.url.partition(":")[0]

    def __repr__(self) -> str:
        return f"ProxyCase({self.name})"


_CREDENTIALS = f"{PROXY_USER}:{QUOTED_PASSWORD}@"

#: name -> (scheme, fixture, with credentials)
PROXY_CASES = {
    "http": ("http", "tinyproxy", False),
    "http-auth": ("http", "tinyproxy_auth", True),
    "https": ("https", "https_proxy", False),
    "https-auth": ("https", "https_proxy_auth", True),
    "socks4-dante": ("socks4", "danted", False),
    "socks5-dante": ("socks5", "danted", False),
    "socks5-microsocks": ("socks5", "microsocks", False),
    "socks5-microsocks-auth": ("socks5", "microsocks_auth", True),
}


# Every case exists everywhere: one whose daemon is missing skips (or fails in CI).
@pytest.fixture(params=list(PROXY_CASES))
def proxy_case(request: pytest.FixtureRequest, client_ssl_context: ssl.SSLContext) -> ProxyCase:
    """Each kind of proxy, with and without credentials."""
    scheme, fixture, with_credentials = PROXY_CASES[request.param]
    address = request.getfixturevalue(fixture)
    credentials = _CREDENTIALS if with_credentials else ""
    kwargs: dict[str, Any] = {}
    if scheme == "https":
        kwargs["proxy_ssl_context"] = client_ssl_context
    return ProxyCase(request.param, f"{scheme}://{credentials}{address}", kwargs)


# ---------------------------------------------------------------------------
# Fake proxies that misbehave (on the test's own loop), and a closed port.


@contextlib.asynccontextmanager
async def fake_proxy(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
) -> AsyncIterator[str]:
    """A raw TCP server running ``handler`` per connection; yields ``host:port``."""
    tasks: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            tasks.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def answer_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Greets like an SSH server, whatever the client says, and stays connected."""
    writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    await writer.drain()
    await reader.read()


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads whatever comes and never says a word."""
    while await reader.read(65536):
        pass


class RecordingHTTPProxy:
    """Records each CONNECT request's header block and answers with ``response``."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.requests: list[bytes] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(self.response)
        await writer.drain()
        await reader.read()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port where nothing listens (kept bound, so nothing else takes it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


# ---------------------------------------------------------------------------
# The client side of the tests.


def tls_in_tls_unavailable(
    proxy: ProxyCase, url: str, use_aiofastnet: Optional[bool] = None
) -> bool:
    """Whether wss through this proxy needs TLS in TLS where there is none: asyncio's
    own loop has it from Python 3.11 (uvloop and aiofastnet always)."""
    if proxy.scheme != "https" or not url.startswith("wss:") or sys.version_info >= (3, 11):
        return False
    if not isinstance(asyncio.get_running_loop(), asyncio.BaseEventLoop):
        return False  # uvloop
    return not (use_aiofastnet or (use_aiofastnet is None and has_aiofastnet()))


async def assert_tls_in_tls_refused(url: str, proxy: ProxyCase, **kwargs: Any) -> None:
    """Where TLS in TLS is unavailable, ws_connect says so instead of connecting."""
    with pytest.raises(TypeError, match=r"Python 3\.11"):
        await picows.ws_connect(picows.WSListener, url, proxy=proxy.url, **proxy.kwargs, **kwargs)


def has_aiofastnet() -> bool:
    try:
        import aiofastnet  # noqa: F401
    except ImportError:
        return False
    return True


# aiofastnet is a parameter only where it is installed (the py3-accel leg).
@pytest.fixture(params=["loop", "aiofastnet"] if has_aiofastnet() else ["loop"])
def use_aiofastnet(request: pytest.FixtureRequest) -> bool:
    """Both connection backends: the loop's own transports, and aiofastnet's."""
    return bool(request.param == "aiofastnet")


async def echo_roundtrip(url: str, payload: bytes = b"", **kwargs: Any) -> picows.WSTransport:
    """Connects, sends ``payload`` (some bytes by default), checks the echo, disconnects.

    Returns the transport (closed by then) so that a test can look at it.
    """
    payload = payload or os.urandom(70_000)  # > 64 KiB: several TCP and TLS records
    transport, listener = await picows.ws_connect(CollectingListener, url, **kwargs)
    assert isinstance(listener, CollectingListener)
    try:
        transport.send(picows.WSMsgType.BINARY, payload)
        msg_type, data, fin = await listener.next(5)
        assert (msg_type, data, fin) == (picows.WSMsgType.BINARY, payload, 1)
    finally:
        transport.disconnect()
        await asyncio.wait_for(transport.wait_disconnected(), 5)
    return transport
