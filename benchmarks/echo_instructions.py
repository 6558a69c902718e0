"""Instructions per echo, per side: a measure of the hot path that load cannot bend.

Timings on a shared 2-core machine move by 20 % from one run to the next; instruction
counts do not.  This runs the request/response echo of ``echo_peers.py`` (one process
per side) for two message counts, with one side under ``valgrind --tool=callgrind``
(which counts every instruction the process executes), and reports the difference
divided by the difference in messages: the instructions one echo costs that side,
start-up and connection set-up excluded.  (``perf stat -e instructions`` would do the
same faster, where the machine exposes hardware counters; this one does not.)

    python benchmarks/echo_instructions.py                       # ours (both backends), raw
    python benchmarks/echo_instructions.py --cython-python /venv/bin/python   # + upstream
    python benchmarks/echo_instructions.py --libs picows-cffi --sizes 256 --side server

Each peer is ``echo_peers.py`` in its ``count`` mode: the client makes exactly N round
trips then closes; the server exits when its first connection ends.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
PEERS = HERE / "echo_peers.py"
BACKEND_ENV = {
    "picows-cffi": {"PICOWS_REQUIRE_EXTENSIONS": "1"},
    "picows-pure": {"PICOWS_NO_EXTENSIONS": "1"},
    "picows-cython": {},
    "raw": {},
}
PEER_LIB = {"picows-cffi": "picows", "picows-pure": "picows", "picows-cython": "picows"}


def _total_instructions(out_file: Path) -> int:
    """The ``summary:`` (or ``totals:``) line of a callgrind output file."""
    text = out_file.read_text()
    match = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
    if match is None:
        raise RuntimeError(f"no instruction total in {out_file}")
    return int(match.group(1))


def run_once(
    python: str, lib: str, loop: str, size: int, count: int, side: str, workdir: Path
) -> int:
    """Instructions of ``side`` for ``count`` round trips of ``size`` bytes."""
    env = {**os.environ, **BACKEND_ENV[lib]}
    peer_lib = PEER_LIB.get(lib, lib)
    out_file = workdir / f"{lib}-{side}-{size}-{count}.out"
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out_file}",
        "--dump-instr=no",
        "--compress-strings=no",
    ]
    server_cmd = [python, str(PEERS), "count-server", peer_lib, loop]
    if side == "server":
        server_cmd = valgrind + server_cmd
    server = subprocess.Popen(
        server_cmd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line:
            raise RuntimeError(
                f"server did not start: {server.stderr.read() if server.stderr else ''}"
            )
        port = json.loads(line)["port"]
        client_cmd = [
            python,
            str(PEERS),
            "count-client",
            peer_lib,
            loop,
            str(port),
            str(size),
            str(count),
        ]
        if side == "client":
            client_cmd = valgrind + client_cmd
        subprocess.run(client_cmd, env=env, check=True, capture_output=True, timeout=900)
        assert server.stdin is not None
        server.stdin.close()  # the server exits cleanly: callgrind writes its counts
        server.wait(timeout=300)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return _total_instructions(out_file)


def per_echo(python: str, lib: str, loop: str, size: int, side: str, low: int, high: int) -> float:
    with tempfile.TemporaryDirectory(prefix="echo-instr-") as tmp:
        workdir = Path(tmp)
        a = run_once(python, lib, loop, size, low, side, workdir)
        b = run_once(python, lib, loop, size, high, side, workdir)
    return (b - a) / (high - low)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--libs", default="raw,picows-cffi,picows-pure")
    parser.add_argument("--sizes", default="256,8192")
    parser.add_argument("--loop", default="asyncio")
    parser.add_argument("--side", default="server,client")
    parser.add_argument("--low", type=int, default=500, help="round trips of the short run")
    parser.add_argument("--high", type=int, default=1500, help="round trips of the long run")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--cython-python", help="an interpreter with upstream's Cython picows")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: apt-get install valgrind")
    libs = args.libs.split(",")
    if args.cython_python and "picows-cython" not in libs:
        libs.append("picows-cython")
    rows = []
    print(f"instructions per echo (callgrind; {args.high - args.low} round trips), {args.loop}")
    print(f"{'library':<15} {'size':>6} " + " ".join(f"{s:>10}" for s in args.side.split(",")))
    for size in (int(s) for s in args.sizes.split(",")):
        for lib in libs:
            python = args.cython_python if lib == "picows-cython" else args.python
            counts = {
                side: per_echo(python, lib, args.loop, size, side, args.low, args.high)
                for side in args.side.split(",")
            }
            rows.append({"lib": lib, "size": size, "loop": args.loop, **counts})
            print(f"{lib:<15} {size:>6} " + " ".join(f"{v:>10,.0f}" for v in counts.values()))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
