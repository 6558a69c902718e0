"""picows against real third-party peers: headless Chromium, Node's ``ws``, nginx.

Each test says what it needs (``@pytest.mark.needs``): a missing tool skips it, naming
what to install, so a laptop without them still passes; when ``CI`` is set it fails
instead, so CI can't skip them silently (tools.py).  Installs: ``.ci/run`` (apt
chromium nginx nodejs, npm ci in tests/node; playwright comes with the ``interop``
extra on CPython).  Playwright drives Debian's chromium and never downloads a browser.

The tests are synchronous functions that call ``asyncio.run`` themselves: one event
loop per test, shared by our server or client and the code driving the peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Optional, Union

import pytest

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
from tools import CHROMIUM_FLAGS, NODE_DIR, executable

TIMEOUT = 30  # seconds: a bound on each scenario, never used to synchronise


# ---------------------------------------------------------------------------
# Our side: one server for every peer.


class Recorder(WSListener):
    """Echoes data; TEXT "close-me" makes it close with 1001; records the peer's CLOSE."""

    def __init__(self, closes: asyncio.Queue[tuple[int, str]]) -> None:
        self.closes = closes
        self.fragments: list[bytes] = []

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            code = frame.get_close_code()
            self.closes.put_nowait((int(code), frame.get_close_reason() or ""))
            transport.send_close(code, frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type == WSMsgType.TEXT and frame.get_payload_as_bytes() == b"close-me":
            transport.send_close(WSCloseCode.GOING_AWAY, b"server leaving")
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
            transport.send(frame.msg_type, frame.get_payload_as_bytes(), bool(frame.fin))


PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>picows interop</title></head><body><script>
function label(data) {
  if (typeof data !== 'string') return 'bin:' + Array.from(new Uint8Array(data)).join(',');
  return data.length > 100 ? 'text-len:' + data.length : data;
}
// Text, binary and 1 MiB echoed, then the page closes with 4000 "bye".
window.echoThenClose = (url) => new Promise((resolve) => {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const got = [];
  ws.onopen = () => {
    ws.send('hello');
    ws.send(new Uint8Array([1, 2, 3, 4, 5]));
    ws.send('y'.repeat(1 << 20));
  };
  ws.onmessage = (ev) => { got.push(label(ev.data)); if (got.length === 3) ws.close(4000, 'bye'); };
  ws.onclose = (ev) => resolve({got, code: ev.code, reason: ev.reason, clean: ev.wasClean});
});
// The server closes (1001) when asked to.
window.serverCloses = (url) => new Promise((resolve) => {
  const ws = new WebSocket(url);
  ws.onopen = () => ws.send('close-me');
  ws.onclose = (ev) => resolve({code: ev.code, reason: ev.reason, clean: ev.wasClean});
});
</script></body></html>
"""


def route_factory(
    closes: asyncio.Queue[tuple[int, str]],
) -> Any:
    def route(request: WSUpgradeRequest) -> Union[WSListener, WSUpgradeResponseWithListener]:
        if "websocket" not in request.headers.get("Upgrade", "").lower():
            # A plain GET: the test page, from the same origin as the WebSocket.
            page = WSUpgradeResponse.create_ok_response(
                PAGE, {"Content-Type": "text/html; charset=utf-8"}
            )
            return WSUpgradeResponseWithListener(page, None)
        return Recorder(closes)

    return route


@contextlib.asynccontextmanager
async def our_server(
    ssl_context: Optional[ssl.SSLContext] = None,
) -> AsyncIterator[tuple[int, asyncio.Queue[tuple[int, str]]]]:
    closes: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    server = await picows.ws_create_server(
        route_factory(closes), "127.0.0.1", 0, ssl=ssl_context, max_frame_size=4 << 20
    )
    try:
        yield server.sockets[0].getsockname()[1], closes
    finally:
        server.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)


# ---------------------------------------------------------------------------
# Chromium (playwright)


async def chromium_scenario(secure: bool, server_ctx: Optional[ssl.SSLContext]) -> None:
    from playwright.async_api import async_playwright

    async with our_server(server_ctx if secure else None) as (port, closes):
        http, ws = ("https", "wss") if secure else ("http", "ws")
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=executable("chromium"), headless=True, args=CHROMIUM_FLAGS
            )
            try:
                # The trustme CA is not the system's: accept our test certificate.
                context = await browser.new_context(ignore_https_errors=secure)
                page = await context.new_page()
                await page.goto(f"{http}://127.0.0.1:{port}/", timeout=TIMEOUT * 1000)
                url = f"{ws}://127.0.0.1:{port}/ws"

                result = await page.evaluate("url => echoThenClose(url)", url)
                assert result["got"] == ["hello", "bin:1,2,3,4,5", f"text-len:{1 << 20}"]
                assert (result["code"], result["reason"], result["clean"]) == (4000, "bye", True)
                assert await asyncio.wait_for(closes.get(), TIMEOUT) == (4000, "bye")

                result = await page.evaluate("url => serverCloses(url)", url)
                assert (result["code"], result["reason"]) == (1001, "server leaving")
                assert result["clean"] is True
            finally:
                await browser.close()


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
@pytest.mark.needs("playwright", "chromium")
def test_chromium(secure: bool, server_ssl_context: ssl.SSLContext) -> None:
    asyncio.run(asyncio.wait_for(chromium_scenario(secure, server_ssl_context), TIMEOUT * 2))


# ---------------------------------------------------------------------------
# Node's ws package


async def node_client_scenario() -> dict[str, Any]:
    async with our_server() as (port, closes):
        proc = await asyncio.create_subprocess_exec(
            executable("node"),
            str(NODE_DIR / "ws_client.js"),
            f"ws://127.0.0.1:{port}/",
            stdout=asyncio.subprocess.PIPE,
            cwd=NODE_DIR,
        )
        stdout, _ = await proc.communicate()
        assert proc.returncode == 0, stdout
        result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
        result["server_saw"] = await asyncio.wait_for(closes.get(), TIMEOUT)
        return result


@pytest.mark.needs("node", "npm ws")
def test_node_ws_client_against_our_server() -> None:
    result = asyncio.run(asyncio.wait_for(node_client_scenario(), TIMEOUT))
    assert result["messages"] == ["hello", "bin:1,2,3,4,5", "text-len:70000"]
    assert result["pong"] == "are-you-there"  # our auto-pong echoes the PING payload
    assert result["close"] == {"code": 4001, "reason": "node-bye"}
    assert result["server_saw"] == (4001, "node-bye")


class Collector(WSListener):
    def __init__(self) -> None:
        self.frames: asyncio.Queue[tuple[WSMsgType, bytes]] = asyncio.Queue()
        self.close: Optional[tuple[int, str]] = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            self.close = (int(frame.get_close_code()), frame.get_close_reason() or "")
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            self.frames.put_nowait((frame.msg_type, frame.get_payload_as_bytes()))

    async def next(self) -> tuple[WSMsgType, bytes]:
        return await asyncio.wait_for(self.frames.get(), TIMEOUT)


async def exchange(url: str, **kwargs: Any) -> tuple[WSTransport, Collector]:
    """Text, binary and 70 kB echoed, and a PING answered; returns the open connection."""
    transport, listener = await picows.ws_connect(Collector, url, **kwargs)
    assert isinstance(listener, Collector)
    messages = [
        (WSMsgType.TEXT, b"hello"),
        (WSMsgType.BINARY, bytes([1, 2, 3, 4, 5])),
        (WSMsgType.BINARY, os.urandom(70_000)),
    ]
    for msg_type, payload in messages:
        transport.send(msg_type, payload)
        assert await listener.next() == (msg_type, payload)
    rtts = await asyncio.wait_for(transport.measure_roundtrip_time(2), TIMEOUT)  # PING/PONG
    assert len(rtts) == 2
    return transport, listener


async def node_server_scenario() -> tuple[Optional[tuple[int, str]], str]:
    proc = await asyncio.create_subprocess_exec(
        executable("node"),
        str(NODE_DIR / "ws_server.js"),
        stdout=asyncio.subprocess.PIPE,
        cwd=NODE_DIR,
    )
    assert proc.stdout is not None
    try:
        first = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode().split()
        assert first[0] == "listening", first
        transport, listener = await exchange(f"ws://127.0.0.1:{first[1]}/")
        transport.send(WSMsgType.TEXT, b"close-me")
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
        node_saw = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode().strip()
        return listener.close, node_saw
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), TIMEOUT)


@pytest.mark.needs("node", "npm ws")
def test_our_client_against_node_ws_server() -> None:
    close, node_saw = asyncio.run(asyncio.wait_for(node_server_scenario(), TIMEOUT))
    assert close == (4002, "node-closing")
    assert node_saw == "close 4002 node-closing"  # it got our answering CLOSE


# ---------------------------------------------------------------------------
# nginx as a reverse proxy (ws, and wss terminated by nginx)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


NGINX_CONF = """daemon off;
worker_processes 1;
pid nginx.pid;
error_log stderr notice;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{ws_port};
        listen 127.0.0.1:{wss_port} ssl;
        ssl_certificate server.pem;
        ssl_certificate_key server.pem;
        location / {{
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_buffering off;
        }}
    }}
}}
"""


async def nginx_scenario(prefix: Path, client_ctx: ssl.SSLContext) -> list[str]:
    servers_seen: list[str] = []
    async with our_server() as (backend_port, closes):
        ws_port, wss_port = free_port(), free_port()
        conf = NGINX_CONF.format(ws_port=ws_port, wss_port=wss_port, backend_port=backend_port)
        (prefix / "nginx.conf").write_text(conf)
        (prefix / "tmp").mkdir()
        proc = await asyncio.create_subprocess_exec(
            executable("nginx"),
            "-p",
            str(prefix),
            "-c",
            "nginx.conf",
            "-e",
            "stderr",
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # master and worker in one group, stopped together
        )
        assert proc.stderr is not None
        try:
            # nginx logs "start worker process" once it listens on both ports.
            while True:
                line = await asyncio.wait_for(proc.stderr.readline(), TIMEOUT)
                assert line, "nginx exited early"
                if b"start worker process" in line:
                    break
            for url, kwargs in (
                (f"ws://127.0.0.1:{ws_port}/ws", {}),
                (f"wss://127.0.0.1:{wss_port}/ws", {"ssl_context": client_ctx}),
            ):
                transport, _ = await exchange(url, **kwargs)
                servers_seen.append(transport.response.headers.get("Server", ""))
                transport.send_close(WSCloseCode.OK, b"through nginx")
                await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
                assert await asyncio.wait_for(closes.get(), TIMEOUT) == (1000, "through nginx")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), TIMEOUT)
    return servers_seen


@pytest.mark.needs("nginx")
def test_nginx_reverse_proxy(
    tmp_path: Path, tls_certs: Any, client_ssl_context: ssl.SSLContext
) -> None:
    _, cert = tls_certs
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    tmp_path.chmod(0o755)  # the worker runs as nobody when we are root
    seen = asyncio.run(asyncio.wait_for(nginx_scenario(tmp_path, client_ssl_context), TIMEOUT))
    assert len(seen) == 2
    assert all(server.startswith("nginx") for server in seen), seen
