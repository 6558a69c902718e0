"""examples/broadcast_redis.py with a real redis-server: two workers on one port,
clients on both, every message to every client exactly once and in order per sender,
and a client that stops reading is dropped without holding anyone else up.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import sys
from collections.abc import Iterator

import pytest
from services import (
    EXAMPLES,
    TIMEOUT,
    Peer,
    children,
    connect,
    redis_server,
    server_process,
    wait_gone,
)

from picows import WSMsgType, WSTransport

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT balancing is Linux's"),
    pytest.mark.needs("redis-server", "redis"),
]

SCRIPT = str(EXAMPLES / "broadcast_redis.py")
STALL_TIMEOUT = 1.0  # seconds: the example's slow-client bound, shorter than its default


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def start_args(redis_url: str, channel: str) -> list[str]:
    return [SCRIPT, "--redis", redis_url, "--channel", channel, "--port", "0", "--workers", "2"]


async def clients_on_every_worker(
    url: str, workers: list[int], each: int
) -> list[tuple[WSTransport, Peer, int]]:
    """Connects until every worker has ``each`` clients; (transport, peer, worker pid)."""
    clients: list[tuple[WSTransport, Peer, int]] = []
    per_worker = dict.fromkeys(workers, 0)
    while min(per_worker.values()) < each:
        assert len(clients) < 64, f"64 connections and still {per_worker}"
        transport, peer = await connect(url)
        pid = int(transport.response.headers["X-Worker-Pid"])
        per_worker[pid] += 1
        clients.append((transport, peer, pid))
    return clients


def test_every_client_of_every_worker_gets_every_message_once_in_order(redis_url: str) -> None:
    senders_per_worker, messages = 2, 40

    async def scenario() -> None:
        async with server_process(*start_args(redis_url, "in-order")) as server:
            family = children(server.pid)
            clients = await clients_on_every_worker(server.url, server.workers, 3)
            chosen: dict[str, WSTransport] = {}  # the first clients of each worker
            for pid in server.workers:
                mine = [transport for transport, _, owner in clients if owner == pid]
                for index, transport in enumerate(mine[:senders_per_worker]):
                    chosen[f"{pid}/{index}"] = transport
            # Interleaved: every sender's n-th message goes out before anyone's n+1-th.
            for n in range(messages):
                for name, transport in chosen.items():
                    transport.send(WSMsgType.TEXT, f"{name}#{n}".encode())
            total = len(chosen) * messages
            for _, peer, _ in clients:
                await peer.wait_for(lambda peer=peer: len(peer.messages) >= total)
            # A last message, sent once all the others arrived: Redis orders one channel,
            # so a duplicate of anything earlier would have to arrive before it.
            first = next(iter(chosen.values()))
            first.send(WSMsgType.BINARY, b"end")
            for _, peer, _ in clients:
                await peer.wait_for(lambda peer=peer: peer.messages[-1:] == [b"end"])
            for _, peer, _ in clients:
                assert len(peer.messages) == total + 1
                for name in chosen:
                    mine = [m for m in peer.messages if m.startswith(f"{name}#".encode())]
                    assert mine == [f"{name}#{n}".encode() for n in range(messages)]
            assert await server.stop() == 0
            for transport, peer, _ in clients:
                await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
                assert peer.close_code == 1001
            await wait_gone(family)

    asyncio.run(asyncio.wait_for(scenario(), 2 * TIMEOUT))


def raw_client_that_never_reads(url: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then reads nothing at all."""
    host, port = url.removeprefix("ws://").rstrip("/").rsplit(":", 1)
    sock = socket.socket()
    # A small receive window, so that the server's side fills up soon.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: not one byte past the response is consumed
        assert chunk, "closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def tcp_state(local: tuple[str, int], remote: tuple[str, int]) -> str:
    """The state (hex, as in /proc/net/tcp: 01 is ESTABLISHED) of a loopback IPv4
    connection's ``local`` end; "" if there is no such socket."""

    def hex_address(address: tuple[str, int]) -> str:
        packed = socket.inet_aton(address[0])[::-1].hex().upper()  # little-endian
        return f"{packed}:{address[1]:04X}"

    wanted = (hex_address(local), hex_address(remote))
    with open("/proc/net/tcp") as table:
        for line in table:
            fields = line.split()
            if (fields[1], fields[2]) == wanted:
                return fields[3]
    return ""


async def server_side_closed(sock: socket.socket, timeout: float = TIMEOUT) -> None:
    """Polls until the server has closed its end of ``sock``'s connection."""
    client, server = sock.getsockname(), sock.getpeername()
    deadline = asyncio.get_running_loop().time() + timeout
    while tcp_state(server, client) == "01":
        assert asyncio.get_running_loop().time() < deadline, "the slow client was not dropped"
        await asyncio.sleep(0.05)


def read_until_closed(sock: socket.socket) -> int:
    """Reads what the server had queued until the connection ends; bytes read."""
    total = 0
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            return total
        if not chunk:
            return total
        total += len(chunk)


def test_a_client_that_stops_reading_is_dropped_and_nobody_waits(redis_url: str) -> None:
    size, count = 64 * 1024, 160  # 10 MiB: past the socket buffers of a client not reading

    async def scenario() -> None:
        args = [*start_args(redis_url, "slow"), "--stall-timeout", str(STALL_TIMEOUT)]
        async with server_process(*args) as server:
            clients = await clients_on_every_worker(server.url, server.workers, 2)
            slow = raw_client_that_never_reads(server.url)
            try:
                publisher = clients[0][0]
                for n in range(count):
                    publisher.send(WSMsgType.BINARY, n.to_bytes(4, "big") * (size // 4))
                # Every reading client, on either worker, gets all of it, in order.
                for _, peer, _ in clients:
                    await peer.wait_for(lambda peer=peer: len(peer.messages) >= count)
                    assert [m[:4] for m in peer.messages] == [
                        n.to_bytes(4, "big") for n in range(count)
                    ]
                # The slow one is cut off once stalled: the server's end of its connection
                # leaves ESTABLISHED (read from /proc: reading would un-stall it).
                await server_side_closed(slow)
                # What it can still read (the kernel's buffers) ends early.
                loop = asyncio.get_running_loop()
                received = await loop.run_in_executor(None, read_until_closed, slow)
                assert received < count * size * 3 // 4
            finally:
                slow.close()
            assert await server.stop() == 0

    asyncio.run(asyncio.wait_for(scenario(), 2 * TIMEOUT))
