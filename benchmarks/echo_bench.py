"""Echo throughput of picows against websockets, aiohttp and a raw asyncio ceiling.

One command, one interleaved run:

    python benchmarks/echo_bench.py --markdown

Every round runs every (library, loop, size, mode) once, in a shuffled order that
keeps the libraries of one (loop, size, mode) together; each
run starts a fresh echo server process and a fresh client process
(``echo_peers.py``), both using the library under test, on 127.0.0.1 and a port the
server picks.  The client warms up, then counts echoed messages for ``--duration``
seconds.  Modes: ``rr`` (request/response, one message in flight) and ``stream``
(``--inflight`` messages in flight, at most ``--max-inflight-bytes`` bytes).

``raw`` is asyncio.BufferedProtocol with a 4-byte length prefix and no WebSocket: the
ceiling for any asyncio library.  Each cell is reported as the median msg/s over
the rounds and as the median of the per-round ratios to the raw run of the same
round, loop, size and mode: absolute numbers drift on a noisy machine, ratios hold.

``--memory`` measures the server's resident memory instead: after one warm-up
connection, then with ``--connections`` idle connections, then with all of them
echoing ``--memory-size`` messages; reported as bytes per connection.

Libraries: ``picows-pure`` (PICOWS_NO_EXTENSIONS=1), ``picows-cffi``
(PICOWS_REQUIRE_EXTENSIONS=1), ``websockets``, ``aiohttp``, ``raw``, and with
``--cython-python PY`` also ``picows-cython``: upstream's Cython picows, run by the
same peer code under ``PY`` (another venv, or another interpreter than ``--python``).
A library or loop that cannot be imported (uvloop or aiohttp on PyPy, say) is
skipped with a note.  picows is imported from wherever ``--python`` finds it (an
installed copy, or ``PYTHONPATH``).  Linux only (``/proc`` for memory).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from typing import Any, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "echo_peers.py")

ALL_LIBS = ("picows-pure", "picows-cffi", "websockets", "aiohttp", "raw")
CEILING = "raw"

#: Library name -> (peer name, extra environment).
LIBS: dict[str, tuple[str, dict[str, str]]] = {
    "picows-pure": ("picows", {"PICOWS_NO_EXTENSIONS": "1"}),
    "picows-cffi": ("picows", {"PICOWS_REQUIRE_EXTENSIONS": "1"}),
    "websockets": ("websockets", {}),
    "aiohttp": ("aiohttp", {}),
    "raw": ("raw", {}),
    # Upstream picows (Cython), run by --cython-python: the same peer code, since the
    # API is the same.
    "picows-cython": ("picows", {}),
    # This package at another commit (a before/after comparison in one run), installed
    # with its accelerator under --baseline-python.
    "picows-baseline": ("picows", {"PICOWS_REQUIRE_EXTENSIONS": "1"}),
}
#: What must import for a library or loop to run.
#: Libraries that run under an interpreter of their own (lib -> argparse attribute).
OWN_PYTHON = {"picows-cython": "cython_python", "picows-baseline": "baseline_python"}
IMPORT_CHECK = {
    "picows": "import picows",
    "websockets": "import websockets.asyncio.server",
    "aiohttp": "import aiohttp",
    "raw": "import asyncio",
    # picows.picows is upstream's compiled module; ours is a .py alias module.
    "picows-cython": "import picows.picows as m; assert not m.__file__.endswith('.py')",
}

#: Request/response targets (issue 17), ratio to the raw ceiling on the asyncio loop:
#: (interpreter, library) -> {size: minimum ratio}.
TARGETS: dict[tuple[str, str], dict[int, float]] = {
    ("cpython", "picows-cffi"): {256: 0.8, 8192: 0.75},
    ("cpython", "picows-pure"): {256: 0.5, 1 << 20: 0.25},
    ("pypy", "picows-cffi"): {256: 0.9, 1 << 20: 0.85},
}


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("B")
    for suffix, factor in (("KI", 1024), ("MI", 1 << 20), ("K", 1024), ("M", 1 << 20)):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def size_label(size: int) -> str:
    if size >= 1 << 20 and size % (1 << 20) == 0:
        return f"{size >> 20} MiB"
    if size >= 1024 and size % 1024 == 0:
        return f"{size >> 10} KiB"
    return f"{size} B"


def csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


# --- processes ----------------------------------------------------------------------


class PeerError(RuntimeError):
    pass


def peer_env(lib: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PICOWS_NO_EXTENSIONS", None)
    env.pop("PICOWS_REQUIRE_EXTENSIONS", None)
    env.update(LIBS[lib][1])
    return env


def importable(python: str, code: str, env: Optional[dict[str, str]] = None) -> bool:
    result = subprocess.run(
        [python, "-c", code], env=env, capture_output=True, timeout=60, check=False
    )
    return result.returncode == 0


class Server:
    """An echo server process; ``port`` once it listens."""

    def __init__(self, python: str, lib: str, loop: str) -> None:
        self.proc = subprocess.Popen(
            [python, PEERS, "server", LIBS[lib][0], loop],
            env=peer_env(lib),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise PeerError(f"{lib} server did not start: {self.stderr_tail()}")
        self.port = int(json.loads(line)["port"])

    def rss(self) -> int:
        """Resident set size in bytes (Linux)."""
        with open(f"/proc/{self.proc.pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def stderr_tail(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def run_client(
    python: str,
    lib: str,
    loop: str,
    port: int,
    size: int,
    mode: str,
    warmup: float,
    duration: float,
    inflight: int,
) -> float:
    args = [python, PEERS, "client", LIBS[lib][0], loop, str(port), str(size), mode]
    args += [str(warmup), str(duration), str(inflight)]
    try:
        result = subprocess.run(
            args,
            env=peer_env(lib),
            capture_output=True,
            text=True,
            timeout=warmup + duration + 60,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise PeerError(f"{lib} client timed out") from exc
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise PeerError(f"{lib} client failed ({result.returncode}): {result.stderr[-2000:]}")
    return float(json.loads(lines[-1])["rate"])


def measure(
    python: str,
    lib: str,
    loop: str,
    size: int,
    mode: str,
    warmup: float,
    duration: float,
    inflight: int,
) -> float:
    server = Server(python, lib, loop)
    try:
        return run_client(python, lib, loop, server.port, size, mode, warmup, duration, inflight)
    finally:
        server.stop()


# --- environment --------------------------------------------------------------------


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def describe_python(python: str) -> dict[str, str]:
    code = (
        "import json, platform, sys; print(json.dumps({'impl': sys.implementation.name, "
        "'version': platform.python_version(), 'full': sys.version.splitlines()[-1]}))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    info: dict[str, str] = json.loads(out.stdout)
    modules = ("picows", "websockets", "aiohttp", "uvloop")
    info["versions"] = ", ".join(f"{m} {probe_version(python, m)}" for m in modules)
    return info


def probe_version(python: str, module: str) -> str:
    """``module.__version__`` under ``python``, or "missing"."""
    probe = subprocess.run(
        [python, "-c", f"import {module}; print(getattr({module}, '__version__', '?'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.stdout.strip() if probe.returncode == 0 else "missing"


def python_for(args: argparse.Namespace, lib: str) -> str:
    """The interpreter that runs ``lib``'s peers: --python, or the lib's own."""
    own = OWN_PYTHON.get(lib)
    return str(getattr(args, own)) if own is not None else str(args.python)


def available(
    args: argparse.Namespace, libs: list[str], loops: list[str]
) -> tuple[list[str], list[str], list[str]]:
    """The libraries and loops that import, and notes on the rest."""
    python = args.python
    notes = []
    ok_libs = []
    for lib in libs:
        if lib not in LIBS:
            raise SystemExit(f"unknown library {lib!r}; choose from {', '.join(LIBS)}")
        own = OWN_PYTHON.get(lib)
        if own is not None and getattr(args, own) is None:
            notes.append(f"{lib} skipped: --{own.replace('_', '-')} not given")
            continue
        check = IMPORT_CHECK.get(lib, IMPORT_CHECK[LIBS[lib][0]])
        if importable(python_for(args, lib), check, peer_env(lib)):
            ok_libs.append(lib)
        else:
            notes.append(f"{lib} skipped: it does not import under {python_for(args, lib)}")
    ok_loops = []
    for loop in loops:
        if loop == "asyncio" or (loop == "uvloop" and importable(python, "import uvloop")):
            ok_loops.append(loop)
        else:
            notes.append(f"loop {loop} skipped: it does not import under {python}")
    return ok_libs, ok_loops, notes


# --- throughput ---------------------------------------------------------------------


Key = tuple[str, str, int, str]  # lib, loop, size, mode


def run_rounds(args: argparse.Namespace, libs: list[str], loops: list[str]) -> list[dict[str, Any]]:
    # A round visits the (loop, size, mode) groups in a shuffled order and runs every
    # library of a group back to back, also shuffled: each ratio then compares runs
    # a few seconds apart, which is what keeps it stable while the machine's load
    # drifts.
    groups = [(loop, size, mode) for loop in loops for size in args.sizes for mode in args.modes]
    runs: list[dict[str, Any]] = []
    rng = random.Random(args.seed)
    total = len(groups) * len(libs) * args.rounds
    done = 0
    started = time.monotonic()
    for round_no in range(args.rounds):
        order: list[Key] = []
        for loop, size, mode in rng.sample(groups, len(groups)):
            order += [(lib, loop, size, mode) for lib in rng.sample(libs, len(libs))]
        for lib, loop, size, mode in order:
            inflight = (
                1 if mode == "rr" else max(1, min(args.inflight, args.max_inflight_bytes // size))
            )
            try:
                rate: Optional[float] = measure(
                    python_for(args, lib),
                    lib,
                    loop,
                    size,
                    mode,
                    args.warmup,
                    args.duration,
                    inflight,
                )
                error = None
            except PeerError as exc:
                rate, error = None, str(exc)
            runs.append(
                {
                    "round": round_no,
                    "lib": lib,
                    "loop": loop,
                    "size": size,
                    "mode": mode,
                    "inflight": inflight,
                    "rate": rate,
                    "error": error,
                }
            )
            done += 1
            shown = f"{rate:,.0f} msg/s" if rate is not None else f"FAILED: {error}"
            print(
                f"[{done}/{total} {time.monotonic() - started:.0f}s] round {round_no + 1} "
                f"{lib} {loop} {size_label(size)} {mode}: {shown}",
                file=sys.stderr,
                flush=True,
            )
    return runs


def summarise(runs: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    """Median rate and median per-round ratio to the ceiling, per cell."""
    ceiling = {
        (r["round"], r["loop"], r["size"], r["mode"]): r["rate"]
        for r in runs
        if r["lib"] == CEILING and r["rate"]
    }
    grouped: dict[Key, list[dict[str, Any]]] = {}
    for r in runs:
        grouped.setdefault((r["lib"], r["loop"], r["size"], r["mode"]), []).append(r)
    summary: dict[Key, dict[str, Any]] = {}
    for key, group in grouped.items():
        rates = [r["rate"] for r in group if r["rate"] is not None]
        ratios = []
        for r in group:
            base = ceiling.get((r["round"], r["loop"], r["size"], r["mode"]))
            if r["rate"] is not None and base:
                ratios.append(r["rate"] / base)
        summary[key] = {
            "median_rate": statistics.median(rates) if rates else None,
            "median_ratio": statistics.median(ratios) if ratios else None,
            "min_ratio": min(ratios) if ratios else None,
            "max_ratio": max(ratios) if ratios else None,
            "rounds": len(rates),
            "failures": len(group) - len(rates),
        }
    return summary


def cell_text(entry: Optional[dict[str, Any]], markdown: bool) -> str:
    if entry is None or entry["median_rate"] is None:
        return "failed" if entry else "n/a"
    text = f"{entry['median_rate']:,.0f}"
    if entry["median_ratio"] is not None:
        text += f" ({entry['median_ratio']:.2f})"
    if entry["failures"]:
        text += f" [{entry['failures']} failed]"
    return text


def print_tables(
    summary: dict[Key, dict[str, Any]],
    args: argparse.Namespace,
    libs: list[str],
    loops: list[str],
    impl: str,
) -> None:
    md = args.markdown
    for mode in args.modes:
        for loop in loops:
            title = "request/response (1 in flight)" if mode == "rr" else "streaming"
            if mode == "stream":
                title += (
                    f" ({args.inflight} in flight, at most {size_label(args.max_inflight_bytes)})"
                )
            print(f"\n{'### ' if md else ''}{title}, {loop} loop: msg/s (ratio to raw)\n")
            header = ["size", *libs]
            rows = [
                [size_label(size)]
                + [cell_text(summary.get((lib, loop, size, mode)), md) for lib in libs]
                for size in args.sizes
            ]
            print_table(header, rows, md)
    # Targets: request/response on the asyncio loop.
    lines = []
    for (target_impl, lib), sizes in TARGETS.items():
        if target_impl != impl or lib not in libs or "rr" not in args.modes:
            continue
        for size in args.sizes:
            entry = summary.get((lib, "asyncio", size, "rr"))
            if entry is None or entry["median_ratio"] is None:
                continue
            target = sizes.get(size)
            verdict = (
                "reported"
                if target is None
                else ("met" if entry["median_ratio"] >= target else "NOT met")
            )
            spread = f"{entry['min_ratio']:.2f}-{entry['max_ratio']:.2f}"
            lines.append(
                [
                    lib,
                    size_label(size),
                    f"{entry['median_ratio']:.3f}",
                    spread,
                    "-" if target is None else f">= {target}",
                    verdict,
                ]
            )
    if lines:
        print(f"\n{'### ' if md else ''}Targets: request/response, asyncio loop, ratio to raw\n")
        print_table(["library", "size", "median ratio", "min-max", "target", "verdict"], lines, md)


def print_table(header: list[str], rows: list[list[str]], markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths)))


# --- memory -------------------------------------------------------------------------


def measure_memory(args: argparse.Namespace, lib: str, loop: str) -> dict[str, Any]:
    server = Server(python_for(args, lib), lib, loop)
    try:
        # One short echo run first, so imports and first-use caches are paid for.
        python = python_for(args, lib)
        run_client(python, lib, loop, server.port, args.memory_size, "rr", 0.1, 0.2, 1)
        time.sleep(0.3)
        base = server.rss()
        client = subprocess.Popen(
            [
                python,
                PEERS,
                "memclient",
                LIBS[lib][0],
                loop,
                str(server.port),
                str(args.connections),
                str(args.memory_size),
            ],
            env=peer_env(lib),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdin is not None and client.stdout is not None
        try:
            if json.loads(client.stdout.readline() or "null") != "idle":
                raise PeerError(f"{lib} memory client failed to connect")
            time.sleep(0.5)
            idle = server.rss()
            client.stdin.write("load\n")
            client.stdin.flush()
            if json.loads(client.stdout.readline() or "null") != "loaded":
                raise PeerError(f"{lib} memory client failed under load")
            loaded = 0
            for _ in range(10):
                time.sleep(0.1)
                loaded = max(loaded, server.rss())
            client.stdin.write("stop\n")
            client.stdin.flush()
            client.wait(30)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        n = args.connections
        return {
            "lib": lib,
            "loop": loop,
            "base_rss": base,
            "idle_per_conn": (idle - base) / n,
            "load_per_conn": (loaded - base) / n,
        }
    finally:
        server.stop()


def run_memory(args: argparse.Namespace, libs: list[str], loops: list[str]) -> list[dict[str, Any]]:
    results = []
    for loop in loops:
        for lib in libs:
            try:
                result = measure_memory(args, lib, loop)
            except PeerError as exc:
                result = {"lib": lib, "loop": loop, "error": str(exc)}
            print(f"memory {lib} {loop}: {result}", file=sys.stderr, flush=True)
            results.append(result)
    md = args.markdown
    print(
        f"\n{'### ' if md else ''}Server memory: {args.connections} connections, "
        f"{size_label(args.memory_size)} request/response under load\n"
    )
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["lib"], r["loop"], "failed", "", ""])
            continue
        rows.append(
            [
                r["lib"],
                r["loop"],
                f"{r['base_rss'] / 2**20:.1f} MiB",
                f"{r['idle_per_conn'] / 1024:.1f} KiB",
                f"{r['load_per_conn'] / 1024:.1f} KiB",
            ]
        )
    print_table(
        ["library", "loop", "RSS before", "per idle connection", "per connection under load"],
        rows,
        md,
    )
    return results


# --- main ---------------------------------------------------------------------------


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--sizes", default="256,8KiB,100KiB,1MiB", help="message sizes")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (medians over them)")
    parser.add_argument("--duration", type=float, default=1.0, help="seconds measured per run")
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds before measuring (default 0.5; PyPy 1.5)",
    )
    parser.add_argument("--loops", default="asyncio,uvloop", help="event loops")
    parser.add_argument("--libs", default=",".join(ALL_LIBS), help="libraries")
    parser.add_argument("--mode", default="rr,stream", help="rr (request/response), stream")
    parser.add_argument("--inflight", type=int, default=32, help="messages in flight (stream)")
    parser.add_argument(
        "--max-inflight-bytes", default="8MiB", help="cap on bytes in flight (stream)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the interleaving order")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the peers")
    parser.add_argument(
        "--cython-python",
        help="an interpreter whose picows is upstream's Cython build: adds picows-cython",
    )
    parser.add_argument(
        "--baseline-python",
        help="an interpreter with this package at another commit: adds picows-baseline",
    )
    parser.add_argument("--json", metavar="FILE", help="write every run and the summary here")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--memory", action="store_true", help="measure memory per connection")
    parser.add_argument("--connections", type=int, default=500, help="connections (--memory)")
    parser.add_argument("--memory-size", default="8KiB", help="message size (--memory)")
    args = parser.parse_args(argv)
    args.sizes = [parse_size(s) for s in csv(args.sizes)]
    args.modes = csv(args.mode)
    args.max_inflight_bytes = parse_size(args.max_inflight_bytes)
    args.memory_size = parse_size(args.memory_size)
    for mode in args.modes:
        if mode not in ("rr", "stream"):
            raise SystemExit(f"unknown mode {mode!r}")

    info = describe_python(args.python)
    impl = info["impl"]
    if args.warmup is None:
        args.warmup = 1.5 if impl == "pypy" else 0.5
    requested = csv(args.libs)
    if args.cython_python is not None and "picows-cython" not in requested:
        requested.append("picows-cython")
    if args.baseline_python is not None and "picows-baseline" not in requested:
        requested.append("picows-baseline")
    libs, loops, notes = available(args, requested, csv(args.loops))
    if not args.memory and CEILING not in libs:
        notes.append("no ratios: the raw ceiling is not among --libs")

    md = args.markdown
    command = "python benchmarks/echo_bench.py " + " ".join(sys.argv[1:] if argv is None else argv)

    def say(line: str) -> None:
        # A header line: a comment in text mode, a hard line break in Markdown.
        print(line + "  " if md else "# " + line)

    say(f"Command: `{command.strip()}`")
    say(f"Interpreter: {impl} {info['version']} ({info['full']})")
    say(f"Packages: {info['versions']}")
    if args.cython_python is not None:
        cython = describe_python(args.cython_python)
        say(
            f"picows-cython: upstream picows {probe_version(args.cython_python, 'picows')} "
            f"under {cython['impl']} {cython['version']} ({args.cython_python})"
        )
    say(f"CPU: {cpu_name()}, {os.cpu_count()} logical CPUs; load average {load_average()}")
    if not args.memory:
        say(
            f"{args.rounds} rounds, interleaved; per run {args.warmup:g} s warm-up + "
            f"{args.duration:g} s measured; cells: median msg/s over rounds (median of "
            "per-round ratios to raw)"
        )
    for note in notes:
        say(f"Note: {note}")
    sys.stdout.flush()

    output: dict[str, Any] = {"command": command, "python": info, "notes": notes}
    if args.memory:
        output["memory"] = run_memory(args, libs, loops)
    else:
        runs = run_rounds(args, libs, loops)
        summary = summarise(runs)
        say(f"Load average at end: {load_average()}")
        print_tables(summary, args, libs, loops, impl)
        output["runs"] = runs
        output["summary"] = [
            {"lib": k[0], "loop": k[1], "size": k[2], "mode": k[3], **v} for k, v in summary.items()
        ]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(output, f, indent=1)


if __name__ == "__main__":
    main()
