"""Several server processes on one port: ``python -m picows serve --workers N`` and
examples/multiprocess_server.py, run as a user would, over real loopback sockets.

Each test is a synchronous function running one event loop of its own (the servers
are subprocesses; one loop is enough to drive them).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from services import (
    EXAMPLES,
    TIMEOUT,
    Peer,
    ServerProcess,
    alive,
    children,
    connect,
    server_process,
    wait_gone,
)

import picows
from picows import WSMsgType, WSTransport

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="SO_REUSEPORT balancing and /proc are Linux's"
)

CLI = ("-m", "picows", "serve", "--port", "0")


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, 2 * TIMEOUT))


def listening_inodes(port: int) -> set[int]:
    """Inodes of the sockets listening on 127.0.0.1:``port`` (Linux /proc/net/tcp)."""
    inodes = set()
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            if state == "0A" and int(local.split(":")[1], 16) == port:  # 0A: LISTEN
                inodes.add(inode)
    return inodes


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def port_of(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


async def echo_each(clients: list[tuple[WSTransport, Peer]]) -> None:
    for index, (transport, _) in enumerate(clients):
        transport.send(WSMsgType.TEXT, f"hello {index}".encode())
    for index, (_, peer) in enumerate(clients):
        expected = [f"hello {index}".encode()]
        await peer.wait_for(lambda peer=peer, expected=expected: peer.messages == expected)


async def all_closed_with(clients: list[tuple[WSTransport, Peer]], code: int) -> None:
    for transport, _ in clients:
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
    assert [peer.close_code for _, peer in clients] == [code] * len(clients)


def test_workers_each_listen_on_the_same_port() -> None:
    async def scenario() -> None:
        async with server_process(*CLI, "--workers", "3") as server:
            assert len(server.workers) == 3
            assert set(server.workers) <= set(children(server.pid))
            listening = listening_inodes(port_of(server.url))
            owned = [socket_inodes(pid) & listening for pid in server.workers]
            # One listening socket of its own per worker; the parent only holds the port.
            assert [len(inodes) for inodes in owned] == [1, 1, 1]
            assert len(set.union(*owned)) == 3
            assert not socket_inodes(server.pid) & listening
            assert await server.stop() == 0

    run(scenario())


def test_sigterm_closes_every_connection_with_1001_and_stops_every_worker() -> None:
    async def scenario() -> None:
        async with server_process(*CLI, "--workers", "2") as server:
            family = children(server.pid)  # the workers, and multiprocessing's helper
            clients = [await connect(server.url) for _ in range(8)]
            await echo_each(clients)
            assert await server.stop(signal.SIGTERM) == 0
            await all_closed_with(clients, 1001)
            await wait_gone(family)

    run(scenario())


def test_ctrl_c_to_the_process_group_exits_130_after_closing_with_1001() -> None:
    async def scenario() -> None:
        async with server_process(*CLI, "--workers", "2") as server:
            family = children(server.pid)
            clients = [await connect(server.url) for _ in range(4)]
            await echo_each(clients)
            # A terminal's Ctrl-C reaches every process of the group; workers leave it
            # to the parent, which stops them once.
            assert await server.stop(signal.SIGINT, group=True) == 130
            await all_closed_with(clients, 1001)
            await wait_gone(family)
            assert b"Traceback" not in server.stderr

    run(scenario())


def test_workers_close_with_1001_and_exit_when_the_parent_is_killed() -> None:
    async def scenario() -> None:
        async with server_process(*CLI, "--workers", "2") as server:
            family = children(server.pid)
            clients = [await connect(server.url) for _ in range(4)]
            await echo_each(clients)
            os.kill(server.pid, signal.SIGKILL)  # no chance to stop anyone
            await all_closed_with(clients, 1001)
            await wait_gone(family)
            assert await server.stop() == -signal.SIGKILL

    run(scenario())


def test_a_worker_that_dies_stops_the_service_with_exit_1() -> None:
    async def scenario() -> None:
        async with server_process(*CLI, "--workers", "2") as server:
            family = children(server.pid)
            clients = [await connect(server.url) for _ in range(6)]
            await echo_each(clients)
            victim = server.workers[0]
            os.kill(victim, signal.SIGKILL)
            assert server.proc is not None
            assert await asyncio.wait_for(server.proc.wait(), TIMEOUT) == 1
            await server.stop()
            assert f"worker {victim} exited with code -9".encode() in server.stderr
            # The survivor's clients were closed properly, the victim's dropped.
            for transport, _ in clients:
                await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
            assert {peer.close_code for _, peer in clients} <= {1001, None}
            await wait_gone(family)

    run(scenario())


def test_a_taken_port_fails_before_any_worker_starts() -> None:
    async def scenario() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            server = ServerProcess("-m", "picows", "serve", "--port", str(port), "--workers", "2")
            with pytest.raises(RuntimeError, match="did not start"):
                await server.start()
            assert server.proc is not None and server.proc.returncode == 1
            assert b"Address already in use" in server.stderr

    run(scenario())


def test_workers_must_be_positive() -> None:
    async def scenario() -> None:
        server = ServerProcess(*CLI, "--workers", "0")
        with pytest.raises(RuntimeError, match="did not start"):
            await server.start()
        assert server.proc is not None and server.proc.returncode == 2
        assert b"--workers must be at least 1" in server.stderr

    run(scenario())


def test_example_multiprocess_server_spreads_connections_over_its_workers() -> None:
    async def scenario() -> None:
        script = str(EXAMPLES / "multiprocess_server.py")
        async with server_process(script, "--port", "0", "--workers", "2") as server:
            family = children(server.pid)
            clients: list[tuple[WSTransport, Peer]] = []
            seen: set[int] = set()
            # The kernel hashes each connection to a worker: a few connections reach both.
            while seen != set(server.workers):
                assert len(clients) < 64, f"64 connections all reached {seen}"
                transport, peer = await connect(server.url)
                clients.append((transport, peer))
                seen.add(int(transport.response.headers["X-Worker-Pid"]))
            await echo_each(clients)
            assert await server.stop() == 0
            await all_closed_with(clients, 1001)
            await wait_gone(family)
            assert not any(alive(pid) for pid in server.workers)

    run(scenario())


def test_single_process_serve_also_closes_with_1001() -> None:
    async def scenario() -> None:
        async with server_process(*CLI) as server:
            assert server.workers == []
            clients = [await connect(server.url) for _ in range(3)]
            await echo_each(clients)
            assert await server.stop(signal.SIGINT) == 130
            await all_closed_with(clients, 1001)

    run(scenario())


def test_wss_workers_each_load_the_certificate(
    tmp_path: Path, tls_certs: Any, client_ssl_context: ssl.SSLContext
) -> None:
    _, cert = tls_certs
    pem = tmp_path / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))

    async def scenario() -> None:
        # An SSLContext cannot be pickled: each worker builds its own from the file.
        async with server_process(*CLI, "--workers", "2", "--cert", str(pem)) as server:
            assert server.url.startswith("wss://127.0.0.1:")
            transport, peer = await asyncio.wait_for(
                picows.ws_connect(Peer, server.url, ssl_context=client_ssl_context), TIMEOUT
            )
            assert isinstance(peer, Peer)
            await echo_each([(transport, peer)])
            assert await server.stop() == 0
            await all_closed_with([(transport, peer)], 1001)

    run(scenario())


def test_picows_public_api_only() -> None:
    """The examples use nothing private (an application copies them)."""
    for name in ("multiprocess_server.py", "broadcast_redis.py"):
        text = (EXAMPLES / name).read_text()
        assert "picows._" not in text, name
