"""Shared helpers of the test suite: listeners, servers, raw HTTP, and Sans-I/O peers.

Tests import from here (``from helpers import ...``); fixtures live in conftest.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import socket
import ssl
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any, Callable, Optional

from multidict import CIMultiDict

import picows
from picows._backend import env_flag
from picows._connection import Connection
from picows._handshake import ClientHandshake, ServerHandshake
from picows._http11 import WSUpgradeResponse
from picows._url import parse_url

__all__ = [
    "ACCEL",
    "ACCEL_IMPORT_ERROR",
    "CollectingListener",
    "EchoListener",
    "NetMode",
    "RawHTTPResponse",
    "close_server",
    "env_flag",
    "eventually",
    "feed_connection",
    "open_connection",
    "read_to_eof",
    "run_probe",
    "serve_picows",
    "server_port",
    "ws_accept",
]

# The cffi accelerator, for the tests that compare it with the pure reference.
ACCEL: Optional[ModuleType]
try:
    import _picows_accel as ACCEL
except ImportError as exc:  # not built: pure wheel, no compiler, or cffi missing
    ACCEL = None
    ACCEL_IMPORT_ERROR: Optional[ImportError] = exc
else:
    ACCEL_IMPORT_ERROR = None
    # picows hands the accelerator its error messages when it selects it; under
    # PICOWS_NO_EXTENSIONS=1 it never does, and the comparison tests need them too.
    ACCEL.set_header_error(picows._header.header_error)


class EchoListener(picows.WSListener):
    """Echoes every data frame; answers a CLOSE with the same code, then disconnects."""

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        if frame.msg_type == picows.WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        else:
            transport.send(frame.msg_type, frame.get_payload_as_bytes(), frame.fin)


class CollectingListener(picows.WSListener):
    """Keeps a copy of every frame it receives, for assertions."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[tuple[picows.WSMsgType, bytes, int]] = asyncio.Queue()
        self.connected = False
        self.disconnected = False

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self.connected = True

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        self.frames.put_nowait((frame.msg_type, frame.get_payload_as_bytes(), frame.fin))

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        self.disconnected = True

    async def next(self, timeout: float = 5) -> tuple[picows.WSMsgType, bytes, int]:
        return await asyncio.wait_for(self.frames.get(), timeout)


class NetMode:
    """Plain TCP or TLS: the ws_create_server kwargs, ws_connect kwargs and URL scheme."""

    def __init__(
        self,
        secure: bool,
        server_ssl: Optional[ssl.SSLContext] = None,
        client_ssl: Optional[ssl.SSLContext] = None,
    ) -> None:
        self.secure = secure
        self.scheme = "wss" if secure else "ws"
        self.server_kwargs: dict[str, Any] = {"ssl": server_ssl} if secure else {}
        self.client_kwargs: dict[str, Any] = {"ssl_context": client_ssl} if secure else {}
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl

    def __repr__(self) -> str:
        return f"NetMode({self.scheme})"


async def close_server(server: asyncio.AbstractServer) -> None:
    """Stop listening and wait (bounded) for the server to finish closing."""
    server.close()
    close_clients = getattr(server, "close_clients", None)
    if close_clients is not None:  # Python 3.13+: wait_closed waits for clients
        close_clients()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(server.wait_closed(), 2)


def server_port(server: asyncio.AbstractServer) -> int:
    """The port of the server's IPv4 socket (a wildcard bind may add an IPv6 one)."""
    sockets = list(server.sockets)  # type: ignore[attr-defined]
    for sock in sockets:
        if sock.family == socket.AF_INET:
            return int(sock.getsockname()[1])
    return int(sockets[0].getsockname()[1])


@contextlib.asynccontextmanager
async def serve_picows(
    factory: Any, mode: Optional[NetMode] = None, host: Any = "127.0.0.1", **kwargs: Any
) -> AsyncIterator[tuple[asyncio.AbstractServer, str]]:
    """A picows server on a free port; yields ``(server, "ws[s]://127.0.0.1:<port>")``."""
    if mode is not None:
        kwargs = {**mode.server_kwargs, **kwargs}
    scheme = "wss" if kwargs.get("ssl") is not None else "ws"
    server = await picows.ws_create_server(factory, host, 0, **kwargs)
    try:
        yield server, f"{scheme}://127.0.0.1:{server_port(server)}"
    finally:
        await close_server(server)


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``condition()`` holds (a state the test cannot be told about, such as
    bytes a server has read), checking every 10 ms; fails after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def read_to_eof(reader: asyncio.StreamReader, timeout: float = 3) -> bytes:
    """Everything the peer sends until it closes (a reset counts as the end); a peer
    that has not closed within ``timeout`` fails the test."""

    async def read_all() -> bytes:
        data = bytearray()
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                return bytes(data)
            if not chunk:
                return bytes(data)
            data += chunk

    try:
        return await asyncio.wait_for(read_all(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"the connection was not closed within {timeout:g} s") from None


class RawHTTPResponse:
    """A parsed HTTP/1.1 response: ``status``, ``headers`` (CIMultiDict), ``body``."""

    def __init__(self, data: bytes) -> None:
        head, sep, self.body = data.partition(b"\r\n\r\n")
        assert sep, f"no complete header block in {data[:200]!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        self.status_line = status_line
        self.status = int(status_line.split(" ")[1])
        self.headers: CIMultiDict[str] = CIMultiDict()
        for line in lines:
            name, _, value = line.partition(":")
            self.headers.add(name, value.strip())


def ws_accept(key: str) -> str:
    """The Sec-WebSocket-Accept value for ``key`` (RFC 6455 4.2.2), computed independently."""
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()


# ---------------------------------------------------------------------------
# Sans-I/O: a Connection taken to OPEN with real handshake bytes, no socket.

#: RFC 6455 4.2.2's example key.
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def feed_connection(conn: Connection, data: bytes) -> None:
    """Give ``data`` to ``conn`` the way the event loop does: into ``get_buffer()``."""
    view = memoryview(data)
    while view:
        room = conn.get_buffer(len(view))
        size = min(len(room), len(view))
        room[:size] = view[:size]
        room.release()
        conn.frames_received(size)
        view = view[size:]


def open_connection(*, is_client: bool, **options: Any) -> Connection:
    """A :class:`~picows._connection.Connection` in state OPEN, after a handshake fed as
    bytes; ``options`` go to its constructor."""
    if is_client:
        handshake = ClientHandshake(parse_url("ws://example.com/chat"), key=KEY.encode())
        conn = Connection(handshake, **options)
        assert conn.request_bytes().startswith(b"GET /chat HTTP/1.1\r\n")
        answer = (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Accept: {ws_accept(KEY)}\r\n\r\n"
        ).encode()
        room = conn.get_buffer(len(answer))
        room[: len(answer)] = answer
        assert conn.handshake_received(len(answer)) is not None
    else:
        conn = Connection(ServerHandshake(), **options)
        request = (
            "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n\r\n"
        ).encode()
        room = conn.get_buffer(len(request))
        room[: len(request)] = request
        parsed = conn.handshake_received(len(request))
        assert parsed is not None
        conn.accept(parsed, WSUpgradeResponse.create_101_response())  # type: ignore[arg-type]
    return conn


# ---------------------------------------------------------------------------
# Which modules import what, in a fresh interpreter.

SCRIPT = textwrap.dedent(
    """
    import importlib, json, sys, types

    config = json.loads(sys.argv[1])
    sys.path[:0] = config["path"]
    assert "asyncio" not in sys.modules, "the interpreter itself loaded asyncio"
    package = types.ModuleType("picows")
    package.__path__ = [config["package_dir"]]
    sys.modules["picows"] = package
    for name in config["modules"]:
        importlib.import_module("picows." + name)

    # The core must also *work* without the asyncio layer.
    from picows._frames import FrameReader, encode_frame
    reader = FrameReader(is_client=False)
    reader.feed_data(encode_frame(1, b"sans-io", mask_key=b"\\x01\\x02\\x03\\x04"))
    assert reader.next_frame().get_payload_as_bytes() == b"sans-io"
    from picows._url import parse_url
    assert parse_url("ws://example.com/x").port == 80

    print(json.dumps({
        "asyncio": sorted(m for m in sys.modules if m == "asyncio" or m.startswith("asyncio.")),
        "picows": sorted(m for m in sys.modules if m.startswith("picows")),
    }))
    """
)


def run_probe(modules: list[str]) -> dict[str, list[str]]:
    """Import ``picows.<name>`` for each name in a fresh interpreter; report sys.modules."""
    config = {
        "path": [p for p in sys.path if p],
        "package_dir": next(iter(picows.__path__)),
        "modules": modules,
    }
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, list[str]] = json.loads(result.stdout.strip().splitlines()[-1])
    return report
