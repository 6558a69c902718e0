"""Echo with websockets' API on both ends: ``picows.websockets`` against ``websockets``.

    python benchmarks/ws_compat_bench.py --markdown            # CPython, this interpreter
    python benchmarks/ws_compat_bench.py --pypy pypy3 --markdown  # and a PyPy row set

Each run starts a fresh echo server process and a fresh client process, both with
the library under test (``import picows.websockets as websockets`` or ``import
websockets``), on 127.0.0.1.  The client sends one message, awaits its echo, and
repeats (request/response): after a warm-up it counts round trips for
``--duration`` seconds.  Rows: 256 B and 64 KiB, compression off (``None``) and on
(``"deflate"``, websockets' defaults on both sides).  Payloads are JSON text
(records of numbers and words, as trading and chat APIs send), sent as str.
Rounds are interleaved and the median is reported, with the ratio
picows.websockets / websockets.  Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from typing import Any, Optional

LIBS = ("picows.websockets", "websockets")
SIZES = (256, 64 * 1024)
COMPRESSION = (None, "deflate")


def _payload(size: int) -> str:
    """Deterministic JSON records, cut to ``size`` characters (ASCII: bytes too)."""
    rng = random.Random(size)
    parts: list[str] = []
    length = 0
    while length < size:
        record = {
            "id": rng.randrange(10**9),
            "price": round(rng.random() * 1000, 2),
            "side": rng.choice(["buy", "sell"]),
            "qty": rng.randrange(1, 1000),
        }
        parts.append(json.dumps(record))
        length += len(parts[-1]) + 2
    return ("[" + ", ".join(parts) + "]")[:size]


def _import(lib: str) -> Any:
    if lib == "picows.websockets":
        import picows.websockets as websockets
    else:
        import websockets.asyncio.client
        import websockets.asyncio.server

        websockets.connect = websockets.asyncio.client.connect  # type: ignore[attr-defined]
        websockets.serve = websockets.asyncio.server.serve  # type: ignore[attr-defined]
    return websockets


async def _server(lib: str, compression: Optional[str]) -> None:
    ws = _import(lib)
    async with ws.serve(_echo, "127.0.0.1", 0, compression=compression, max_size=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def _echo(connection: Any) -> None:
    async for message in connection:
        await connection.send(message)


async def _client(
    lib: str, port: int, size: int, compression: Optional[str], warmup: float, duration: float
) -> None:
    ws = _import(lib)
    if port == 0:  # --inproc: the echo server runs in this process and loop
        server = await ws.serve(_echo, "127.0.0.1", 0, compression=compression, max_size=None)
        port = server.sockets[0].getsockname()[1]
    message = _payload(size)
    async with ws.connect(
        f"ws://127.0.0.1:{port}/", compression=compression, max_size=None, ping_interval=None
    ) as connection:
        deadline = time.perf_counter() + warmup
        while time.perf_counter() < deadline:
            await connection.send(message)
            await connection.recv()
        count = 0
        start = time.perf_counter()
        end = start + duration
        while True:
            for _ in range(20):
                await connection.send(message)
                await connection.recv()
            count += 20
            now = time.perf_counter()
            if now >= end:
                break
    print(json.dumps({"rps": count / (now - start)}), flush=True)


def _run_once(
    python: str, lib: str, size: int, compression: Optional[str], args: argparse.Namespace
) -> float:
    env = dict(os.environ)
    comp = compression or "none"
    if args.inproc:
        return _client_process(python, lib, 0, size, comp, args, env)
    server = subprocess.Popen(
        [python, __file__, "--role", "server", "--lib", lib, "--compression", comp],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        return _client_process(python, lib, port, size, comp, args, env)
    finally:
        server.kill()
        server.wait()


def _client_process(
    python: str, lib: str, port: int, size: int, comp: str, args: Any, env: dict[str, str]
) -> float:
    command = [python, __file__, "--role", "client", "--lib", lib, "--port", str(port)]
    command += ["--size", str(size), "--compression", comp]
    command += ["--warmup", str(args.warmup), "--duration", str(args.duration)]
    limit = args.duration + args.warmup + 60
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=limit)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["rps"])


def _bench(python: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for size in SIZES:
        for compression in COMPRESSION:
            results: dict[str, list[float]] = {lib: [] for lib in LIBS}
            for _ in range(args.rounds):
                for lib in LIBS:
                    results[lib].append(_run_once(python, lib, size, compression, args))
            med = {lib: statistics.median(v) for lib, v in results.items()}
            rows.append(
                {
                    "size": size,
                    "compression": compression or "off",
                    **med,
                    "ratio": med["picows.websockets"] / med["websockets"],
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("bench", "server", "client"), default="bench")
    parser.add_argument("--lib", choices=LIBS)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--size", type=int)
    parser.add_argument("--compression", default="none")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pypy", help="also run under this PyPy interpreter (e.g. pypy3)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--inproc", action="store_true", help="both ends in one process")
    args = parser.parse_args()
    compression = None if args.compression == "none" else args.compression
    if args.role == "server":
        asyncio.run(_server(args.lib, compression))
        return
    if args.role == "client":
        asyncio.run(
            _client(args.lib, args.port, args.size, compression, args.warmup, args.duration)
        )
        return
    interpreters = [
        (f"{platform.python_implementation()} {platform.python_version()}", sys.executable)
    ]
    if args.pypy:
        interpreters.append(("PyPy", args.pypy))
    header = "| interpreter | size | compression | picows.websockets (msg/s) | websockets (msg/s) |"
    lines = [header + " ratio |", "| --- | --- | --- | --- | --- | --- |"]
    for name, python in interpreters:
        for row in _bench(python, args):
            size = "256 B" if row["size"] == 256 else "64 KiB"
            lines.append(
                f"| {name} | {size} | {row['compression']} | {row['picows.websockets']:,.0f} "
                f"| {row['websockets']:,.0f} | {row['ratio']:.2f}x |"
            )
    print("\n".join(lines) if args.markdown else json.dumps(lines))


if __name__ == "__main__":
    main()
