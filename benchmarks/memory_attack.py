"""Server memory under a cheap attack, and per idle connection: ours and upstream's.

    python benchmarks/memory_attack.py --cython-python /path/to/venv/bin/python

For each library, a fresh server process (this file, ``serve`` mode) runs
``ws_create_server`` with its defaults (``max_frame_size`` 10 MiB) on 127.0.0.1 and
a listener that does nothing; this process plays the clients over raw sockets and
reads the server's resident memory (``VmRSS`` in ``/proc``):

* **attack**: ``--attack`` connections (200) each complete the handshake, then send
  the header of a masked BINARY frame announcing 8 MiB + 1 payload bytes with its
  first payload byte, then, once the server has read that, 1 more byte.  Reported:
  the RSS growth per connection caused by the frame (after the handshakes -> after
  the bytes), which is what the attacker gets for 16 bytes sent per connection.
* **idle**: ``--idle`` connections (1,000) complete the handshake and stay open;
  reported: RSS growth per connection (before the first -> all open).

Libraries: ``picows-pure`` (PICOWS_NO_EXTENSIONS=1) and ``picows-cffi``
(PICOWS_REQUIRE_EXTENSIONS=1) under ``--python``, and with ``--cython-python PY``
``picows-cython``: upstream picows (Cython, from PyPI) installed for ``PY``.  All use
the event loop named by ``--loop`` and the loop's own transports (no aiofastnet).
Each figure comes from a fresh server process, warmed up by one handshake; RSS is
read once it has settled (unchanged for 1 s, at most 30 s).  Linux only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import struct
import subprocess
import sys
import time
from typing import Any, Optional

HERE = os.path.abspath(__file__)
ANNOUNCED = 8 * 2**20 + 1  # the frame's announced payload length
BATCH = 50  # connections opened at once (asyncio's listen backlog is 100)
TIMEOUT = 30.0

LIBS: dict[str, dict[str, str]] = {
    "picows-pure": {"PICOWS_NO_EXTENSIONS": "1"},
    "picows-cffi": {"PICOWS_REQUIRE_EXTENSIONS": "1"},
    "picows-cython": {},
}


def raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# --- the server process ---------------------------------------------------------------


def serve(loop_name: str) -> None:
    """Serve until stdin closes; prints ``{"port": ..., "picows": file}`` first."""
    raise_fd_limit(4096)
    import picows

    class Quiet(picows.WSListener):
        pass

    async def main() -> None:
        server = await picows.ws_create_server(
            lambda request: Quiet(), "127.0.0.1", 0, use_aiofastnet=False
        )
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"port": port, "picows": picows.__file__}), flush=True)
        # Until the driver closes our stdin.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        server.close()

    if loop_name == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


# --- the driver -----------------------------------------------------------------------


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def settled_rss(pid: int) -> int:
    """RSS once it stayed the same for 1 s (at most 30 s of polling)."""
    last, stable, deadline = rss(pid), 0, time.monotonic() + 30
    while stable < 20 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        now = rss(pid)
        stable = stable + 1 if now == last else 0
        last = now
    return last


class Server:
    def __init__(self, python: str, lib: str, loop: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PICOWS_")}
        env.update(LIBS[lib])
        self.proc = subprocess.Popen(
            [python, HERE, "serve", "--loop", loop],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError(f"{lib}: the server did not start under {python}")
        info = json.loads(line)
        self.port: int = info["port"]
        self.picows: str = info["picows"]

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def handshake(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    if not head.startswith(b"HTTP/1.1 101 "):
        raise RuntimeError(f"no 101: {head[:100]!r}")
    return reader, writer


async def open_many(port: int, count: int) -> list[tuple[Any, asyncio.StreamWriter]]:
    connections: list[tuple[Any, asyncio.StreamWriter]] = []
    while len(connections) < count:
        batch = min(BATCH, count - len(connections))
        connections += await asyncio.gather(*(handshake(port) for _ in range(batch)))
    return connections


def close_all(connections: list[tuple[Any, asyncio.StreamWriter]]) -> None:
    for _, writer in connections:
        writer.transport.abort()


def attack_header() -> bytes:
    # RFC 6455 5.2: FIN + BINARY; MASK + 127, then the 64-bit length; the mask key.
    return struct.pack("!BBQ", 0x82, 0x80 | 127, ANNOUNCED) + os.urandom(4)


async def started_server(python: str, lib: str, loop: str) -> tuple[Server, int]:
    """A fresh server, warmed up by one handshake (imports and first-use caches are
    paid for), and its settled RSS."""
    server = Server(python, lib, loop)
    try:
        close_all(await open_many(server.port, 1))
        return server, await settled_rss(server.proc.pid)
    except BaseException:
        server.stop()
        raise


async def measure(python: str, lib: str, loop: str, attack: int, idle: int) -> dict[str, Any]:
    """Each figure from a server process of its own: garbage freed late by one
    phase cannot lower the RSS of the next."""
    result: dict[str, Any] = {"lib": lib}
    server, base = await started_server(python, lib, loop)
    try:
        result["picows"] = server.picows
        result["base"] = base
        connections = await open_many(server.port, idle)
        result["idle_per_conn"] = (await settled_rss(server.proc.pid) - base) / idle
        close_all(connections)
    finally:
        server.stop()

    server, base = await started_server(python, lib, loop)
    try:
        pid = server.proc.pid
        connections = await open_many(server.port, attack)
        handshaken = await settled_rss(pid)
        for _, writer in connections:
            writer.write(attack_header() + b"x")  # header and the first payload byte
        await settled_rss(pid)  # the server has read them
        for _, writer in connections:
            writer.write(b"y")  # one more byte
        attacked = await settled_rss(pid)
        result["attack_per_conn"] = (attacked - handshaken) / attack
        close_all(connections)
    finally:
        server.stop()
    return result


def kib(value: float) -> str:
    return f"{value / 1024:,.1f} KiB"


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "serve"])
    parser.add_argument("--python", default=sys.executable, help="runs picows-pure/-cffi")
    parser.add_argument(
        "--cython-python", help="an interpreter with upstream's Cython picows: adds picows-cython"
    )
    parser.add_argument("--libs", default="picows-pure,picows-cffi", help="comma-separated")
    parser.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"])
    parser.add_argument("--attack", type=int, default=200, help="attack connections")
    parser.add_argument("--idle", type=int, default=1000, help="idle connections")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)
    if args.mode == "serve":
        serve(args.loop)
        return
    raise_fd_limit(max(args.attack, args.idle) + 256)
    libs = [lib.strip() for lib in args.libs.split(",") if lib.strip()]
    if args.cython_python and "picows-cython" not in libs:
        libs.append("picows-cython")
    results = []
    for lib in libs:
        python = args.cython_python if lib == "picows-cython" else args.python
        if python is None:
            raise SystemExit("picows-cython needs --cython-python")
        result = asyncio.run(measure(python, lib, args.loop, args.attack, args.idle))
        print(f"{lib}: {result}", file=sys.stderr, flush=True)
        results.append(result)
    print(
        f"\nServer RSS, {args.loop} loop: {args.attack} connections each announcing a "
        f"{ANNOUNCED:,}-byte frame and sending 2 payload bytes; {args.idle} idle connections\n"
    )
    header = ["library", "RSS at start", "per attack connection", "per idle connection"]
    rows = [
        [
            r["lib"],
            f"{r['base'] / 2**20:.1f} MiB",
            kib(r["attack_per_conn"]),
            kib(r["idle_per_conn"]),
        ]
        for r in results
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
