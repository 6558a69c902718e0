"""examples/deploy/nginx.conf with Debian's nginx in front of ``picows serve --workers 2``.

The configuration file is the one shipped for deployments; only its ports and its
temporary directories are swapped for the test's (``services.nginx_conf_for_test``).
Echo, ping, a client's close and the server's shutdown all cross the proxy.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from services import (
    EXAMPLES,
    TIMEOUT,
    children,
    connect,
    free_port,
    nginx,
    nginx_conf_for_test,
    server_process,
    wait_gone,
)

from picows import WSCloseCode, WSMsgType

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT balancing is Linux's"),
    pytest.mark.needs("nginx"),
]


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, 2 * TIMEOUT))


def backend_port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


def test_deploy_conf_still_has_what_websockets_need() -> None:
    conf = (EXAMPLES / "deploy" / "nginx.conf").read_text()
    for directive in (
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_read_timeout 1h;",
        "proxy_send_timeout 1h;",
        "proxy_buffering off;",
    ):
        assert directive in conf


def test_echo_ping_and_close_through_nginx(tmp_path: Path) -> None:
    async def scenario() -> None:
        cli = ("-m", "picows", "serve", "--port", "0", "--workers", "2")
        async with server_process(*cli) as server:
            family = children(server.pid)
            port = free_port()
            with nginx(tmp_path, nginx_conf_for_test(port, backend_port(server.url)), port):
                url = f"ws://127.0.0.1:{port}/chat"
                transport, peer = await connect(url)
                assert transport.response.headers["Server"].startswith("nginx")
                # Echo: a small TEXT and a BINARY over 64 KiB (several reads in nginx).
                big = bytes(range(256)) * 300
                transport.send(WSMsgType.TEXT, b"through nginx")
                transport.send(WSMsgType.BINARY, big)
                await peer.wait_for(lambda: len(peer.messages) == 2)
                assert peer.messages == [b"through nginx", big]
                # Ping: the worker's automatic PONG comes back through the proxy.
                transport.send_ping(b"are you there")
                await peer.wait_for(lambda: peer.pongs == 1)
                assert await transport.measure_roundtrip_time(3)
                # Close from the client: the server answers with the same code.
                transport.send_close(WSCloseCode.OK, b"bye")
                await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
                assert peer.close_code == 1000

                # Close from the server: stopping the workers reaches clients through nginx.
                others = [await connect(url) for _ in range(4)]
                for other, other_peer in others:
                    other.send(WSMsgType.TEXT, b"x")
                    await other_peer.wait_for(lambda p=other_peer: p.messages == [b"x"])
                assert await server.stop() == 0
                for other, other_peer in others:
                    await asyncio.wait_for(other.wait_disconnected(), TIMEOUT)
                    assert other_peer.close_code == 1001
            await wait_gone(family)

    run(scenario())


def test_nginx_reaches_every_worker_of_the_example(tmp_path: Path) -> None:
    async def scenario() -> None:
        script = str(EXAMPLES / "multiprocess_server.py")
        async with server_process(script, "--port", "0", "--workers", "2") as server:
            port = free_port()
            with nginx(tmp_path, nginx_conf_for_test(port, backend_port(server.url)), port):
                seen: set[int] = set()
                clients = []
                while seen != set(server.workers):
                    assert len(clients) < 64, f"64 connections through nginx all reached {seen}"
                    transport, peer = await connect(f"ws://127.0.0.1:{port}/")
                    clients.append((transport, peer))
                    seen.add(int(transport.response.headers["X-Worker-Pid"]))
                for transport, _ in clients:
                    transport.send_close(WSCloseCode.OK)
                for transport, peer in clients:
                    await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
                    assert peer.close_code == 1000
            assert await server.stop() == 0

    run(scenario())
