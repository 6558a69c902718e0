"""picows.websockets with permessage-deflate against Node's ``ws`` and Chromium.

The peers and the way they are found are those of tests/system/test_interop.py: a
missing tool skips its test (naming the package to install) outside CI and fails it in
CI (tools.py).  Chromium is Debian's, driven by playwright, never a downloaded browser.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Optional

import pytest

import picows.websockets as websockets
from picows.websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from tools import CHROMIUM_FLAGS, NODE_DIR, executable

TIMEOUT = 30

#: ws' perMessageDeflate options for each case, and our server's configuration.
NODE_CASES: list[tuple[dict[str, Any], Optional[dict[str, Any]]]] = [
    ({}, None),  # ws' default offer: "permessage-deflate; client_max_window_bits"
    (
        {"serverNoContextTakeover": True, "clientNoContextTakeover": True},
        {"server_max_window_bits": 10},
    ),
    ({"serverMaxWindowBits": 9, "clientMaxWindowBits": 11}, {"client_max_window_bits": 10}),
]


async def echo(connection: Any) -> None:
    async for message in connection:
        await connection.send(message)


async def run_node(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        executable("node"),
        str(NODE_DIR / "ws_deflate_peer.js"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        cwd=NODE_DIR,
    )


async def node_client_scenario(
    options: dict[str, Any], config: Optional[dict[str, Any]]
) -> tuple[dict[str, Any], Any]:
    extensions = None if config is None else [ServerPerMessageDeflateFactory(**config)]
    closes: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(connection: Any) -> None:
        try:
            await echo(connection)
        except websockets.ConnectionClosed as exc:
            closes.put_nowait(exc)
        else:
            closes.put_nowait(None)

    async with websockets.serve(handler, "127.0.0.1", 0, extensions=extensions) as server:
        port = server.sockets[0].getsockname()[1]
        proc = await run_node("client", json.dumps(options), f"ws://127.0.0.1:{port}/")
        stdout, _ = await proc.communicate()
        assert proc.returncode == 0, stdout
        result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
        return result, await asyncio.wait_for(closes.get(), TIMEOUT)


@pytest.mark.parametrize(("options", "config"), NODE_CASES)
@pytest.mark.needs("node", "npm ws")
def test_node_ws_client_with_deflate(
    options: dict[str, Any], config: Optional[dict[str, Any]]
) -> None:
    result, closed = asyncio.run(asyncio.wait_for(node_client_scenario(options, config), TIMEOUT))
    assert result["extensions"].startswith("permessage-deflate")
    assert result["echoes"] == [True] * 5
    assert result["close"] == {"code": 4001, "reason": "node-bye"}
    # 4001 isn't a normal closure: the handler's async for raised ConnectionClosedError.
    assert isinstance(closed, websockets.ConnectionClosedError)
    assert (closed.rcvd.code, closed.rcvd.reason) == (4001, "node-bye")


async def node_server_scenario(options: dict[str, Any]) -> tuple[Optional[str], str, str]:
    proc = await run_node("server", json.dumps(options))
    assert proc.stdout is not None
    try:
        first = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode().split()
        assert first[0] == "listening", first
        url = f"ws://127.0.0.1:{first[1]}/"
        async with websockets.connect(url) as ws:
            answer = ws.response.headers.get("Sec-WebSocket-Extensions")
            text = "the same words again " * 500
            for message in [text, text, bytes(70_000), "é" * 3000, b"", "x"]:
                await ws.send(message)
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == message
            await ws.send([b"frag" * 100, b"ment" * 100])
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == b"frag" * 100 + b"ment" * 100
            await ws.close(4003, "python-bye")
        offer = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode().strip()
        node_saw = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode().strip()
        return answer, offer, node_saw
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), TIMEOUT)


@pytest.mark.parametrize("options", [case[0] for case in NODE_CASES])
@pytest.mark.needs("node", "npm ws")
def test_our_client_against_node_ws_server_with_deflate(options: dict[str, Any]) -> None:
    answer, offer, node_saw = asyncio.run(asyncio.wait_for(node_server_scenario(options), TIMEOUT))
    assert offer == "offer permessage-deflate; client_max_window_bits"  # websockets' offer
    assert answer is not None and answer.startswith("permessage-deflate")
    if options.get("serverNoContextTakeover"):
        assert "server_no_context_takeover" in answer
    assert node_saw == "close 4003 python-bye"


# ---------------------------------------------------------------------------
# Chromium

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>picows.websockets</title></head><body><script>
window.echo = (url) => new Promise((resolve) => {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const got = [];
  const big = 'the same words again '.repeat(25000);
  ws.onopen = () => { ws.send('hello'); ws.send(new Uint8Array([1, 2, 3])); ws.send(big); };
  ws.onmessage = (ev) => {
    got.push(typeof ev.data === 'string' ? (ev.data === big ? 'big' : ev.data)
                                         : 'bin:' + Array.from(new Uint8Array(ev.data)).join(','));
    if (got.length === 3) ws.close(4000, 'bye');
  };
  ws.onclose = (ev) => resolve({got, extensions: ws.extensions, code: ev.code, reason: ev.reason,
                                clean: ev.wasClean});
});
</script></body></html>
"""


async def chromium_scenario() -> tuple[dict[str, Any], Any, Optional[str]]:
    from playwright.async_api import async_playwright

    closes: asyncio.Queue[Any] = asyncio.Queue()
    offers: list[Optional[str]] = []

    def page_or_upgrade(connection: Any, request: Any) -> Any:
        if "websocket" not in request.headers.get("Upgrade", "").lower():
            response = connection.respond(200, PAGE)
            response.headers["Content-Type"] = "text/html; charset=utf-8"
            return response
        offers.append(request.headers.get("Sec-WebSocket-Extensions"))
        return None

    async def handler(connection: Any) -> None:
        try:
            await echo(connection)
        except websockets.ConnectionClosed as exc:
            closes.put_nowait(exc)

    async with websockets.serve(handler, "127.0.0.1", 0, process_request=page_or_upgrade) as server:
        port = server.sockets[0].getsockname()[1]
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=executable("chromium"), headless=True, args=CHROMIUM_FLAGS
            )
            try:
                page = await browser.new_page()
                await page.goto(f"http://127.0.0.1:{port}/", timeout=TIMEOUT * 1000)
                result = await page.evaluate("url => echo(url)", f"ws://127.0.0.1:{port}/ws")
            finally:
                await browser.close()
        return result, await asyncio.wait_for(closes.get(), TIMEOUT), offers[0]


@pytest.mark.needs("playwright", "chromium")
def test_chromium_with_deflate() -> None:
    result, closed, offer = asyncio.run(asyncio.wait_for(chromium_scenario(), TIMEOUT * 2))
    assert offer is not None and "client_max_window_bits" in offer  # what Chromium offers
    assert result["extensions"].startswith("permessage-deflate")
    assert result["got"] == ["hello", "bin:1,2,3", "big"]
    assert (result["code"], result["reason"], result["clean"]) == (4000, "bye", True)
    assert (closed.rcvd.code, closed.rcvd.reason) == (4000, "bye")
