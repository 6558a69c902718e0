"""10,000 concurrent WebSocket connections: one server process, then two workers behind nginx.

One command, every library in the same run:

    python benchmarks/scale.py --cython-python /path/to/upstream/venv/bin/python --markdown

For each topology and library, a fresh broadcast server (``scale_peers.py server``)
and a fresh client process (``scale_peers.py client``) on this machine:

1. The client opens ``--connections`` connections (at most ``--concurrency``
   handshakes in flight) and reports the time until every one has its 101.
2. The server's resident memory (RSS, /proc) is read before and after: the growth
   divided by the connections is the memory per idle connection.
3. The client sends ``--messages`` TEXT messages of ``--size`` bytes on one
   connection; the server sends each to every connection.  Fan-out is
   connections x messages deliveries divided by the time until the last connection
   has received the last message.  The server's CPU time over that window, divided
   by the deliveries, is given too: unlike the rate, it does not depend on how the
   client shares the machine's cores.

Topologies: ``single`` (one server process) and ``nginx`` (examples/deploy/nginx.conf
in front of ``--workers`` worker processes on one port that relay through a
redis-server; picows runs examples/broadcast_redis.py's worker, websockets an
equivalent).  nginx and redis-server are Debian's, started here on free ports in a
temporary directory and stopped at the end.  In the nginx topology the server's RSS
and CPU are the workers' sum; nginx's own are reported apart.

Libraries: ``picows-pure`` and ``picows-cffi`` (this tree, under ``--python``),
``picows-cython`` (upstream picows from PyPI, under ``--cython-python``) and
``websockets`` (under ``--python``).  The client runs under ``--python`` too, or
``--client-python`` (with a PyPy ``--python``, keep the client on CPython and uvloop).
picows servers use plain asyncio transports unless ``--aiofastnet`` (upstream picows
installs aiofastnet and would otherwise use it; the option needs it in both
environments).  Linux only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
PEERS = HERE / "scale_peers.py"
DEPLOY_NGINX_CONF = HERE.parent / "examples" / "deploy" / "nginx.conf"
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
STARTUP = 60.0  # seconds for a server, nginx or redis-server to be ready

#: Library -> (scale_peers.py server LIB, environment, interpreter option).
LIBS: dict[str, tuple[str, dict[str, str], str]] = {
    "picows-pure": ("picows", {"PICOWS_NO_EXTENSIONS": "1"}, "python"),
    "picows-cffi": ("picows", {"PICOWS_REQUIRE_EXTENSIONS": "1"}, "python"),
    "picows-cython": ("picows", {}, "cython_python"),
    "websockets": ("websockets", {}, "python"),
}
#: What must import for a library to run (picows.picows: upstream's compiled module).
IMPORTS = {
    "picows-pure": "import picows; picows.BACKEND",
    "picows-cffi": "import picows; assert picows.BACKEND == 'cffi'",
    "picows-cython": "import picows.picows",
    "websockets": "import websockets.asyncio.server",
}


# ---------------------------------------------------------------------------
# Processes and /proc


def rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/statm") as statm:
            total += int(statm.read().split()[1]) * PAGE
    return total


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rpartition(")")[2].split()[1]) == pid:
                        found.append(int(entry))
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proc:
    """A child in its own process group, with its stdout read line by line (bounded)."""

    def __init__(self, args: list[str], env: Optional[dict[str, str]] = None, **kw: Any) -> None:
        self.proc = subprocess.Popen(
            args,
            env=env,
            stdout=subprocess.PIPE,
            stderr=kw.pop("stderr", subprocess.PIPE),
            stdin=kw.pop("stdin", subprocess.DEVNULL),
            text=True,
            start_new_session=True,
            **kw,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.errors: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        if self.proc.stderr is not None:
            threading.Thread(target=self._pump_errors, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")

    def _pump_errors(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.errors.append(line)
            del self.errors[:-40]

    def line(self, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.proc.args[:3]}: no output in {timeout:g} s") from None
        if not line:
            raise RuntimeError(f"{self.proc.args[:3]} exited: {''.join(self.errors)[-2000:]}")
        return line

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self, timeout: float = 30) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):  # workers, nginx workers...
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout)


def wait_port(port: int, proc: Proc) -> None:
    deadline = time.monotonic() + STARTUP
    while True:
        if proc.proc.poll() is not None:
            raise RuntimeError(f"{proc.proc.args[:3]} exited: {''.join(proc.errors)}")
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {port}") from None
            time.sleep(0.02)


# ---------------------------------------------------------------------------
# nginx and redis-server


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        raise SystemExit(f"{name} is not installed (apt-get install {name})")
    return path


@contextlib.contextmanager
def redis_server(tmp: Path) -> Any:
    port = free_port()
    args = [tool("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp)]
    args += ["--save", "", "--appendonly", "no", "--loglevel", "warning"]
    # A subscriber of a 10,000-client fan-out may fall behind: no output limit for them.
    args += ["--client-output-buffer-limit", "pubsub 0 0 0"]
    proc = Proc(args)
    try:
        wait_port(port, proc)
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        proc.stop()


def nginx_conf(listen: int, backend: int, workers: int, nofile: int) -> str:
    """examples/deploy/nginx.conf with this run's ports, paths and descriptor limit."""
    text = DEPLOY_NGINX_CONF.read_text()
    temp = "".join(
        f"    {kind}_temp_path temp/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    for old, new in (
        ("listen 8080 ", f"listen 127.0.0.1:{listen} "),
        ("server 127.0.0.1:9001;", f"server 127.0.0.1:{backend};"),
        ("\nhttp {\n", "\nhttp {\n" + temp),
        ("worker_processes auto;", f"worker_processes {workers};"),
        ("worker_rlimit_nofile 65536;", f"worker_rlimit_nofile {nofile};"),
    ):
        if text.count(old) != 1:
            raise SystemExit(f"{DEPLOY_NGINX_CONF} no longer has {old!r} once")
        text = text.replace(old, new)
    return text


@contextlib.contextmanager
def nginx(tmp: Path, backend: int, workers: int) -> Any:
    prefix = Path(tempfile.mkdtemp(dir=tmp))
    (prefix / "temp").mkdir()
    prefix.chmod(0o755)
    port = free_port()
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    (prefix / "nginx.conf").write_text(nginx_conf(port, backend, workers, nofile))
    settings = f"daemon off; pid {prefix / 'nginx.pid'}; error_log stderr warn;"
    args = [tool("nginx"), "-p", str(prefix), "-c", "nginx.conf", "-e", "stderr", "-g", settings]
    proc = Proc(args)
    try:
        wait_port(port, proc)
        yield port, proc
    finally:
        proc.stop()


# ---------------------------------------------------------------------------
# One run


def start_server(
    args: argparse.Namespace, lib: str, extra: list[str]
) -> tuple[Proc, int, list[int]]:
    name, env_changes, python_option = LIBS[lib]
    env = dict(os.environ)
    env.pop("PICOWS_NO_EXTENSIONS", None)
    env.pop("PICOWS_REQUIRE_EXTENSIONS", None)
    env.update(env_changes)
    command = [getattr(args, python_option), str(PEERS), "server", name, *extra]
    if args.aiofastnet and name == "picows":
        command.append("--aiofastnet")
    if args.read_buffer is not None and name == "picows":
        command += ["--read-buffer", str(args.read_buffer)]
    server = Proc(command, env=env)
    first = server.line(STARTUP)
    if not first.startswith("serving on "):
        raise RuntimeError(f"{lib} server: {first!r}")
    port = int(first.strip().rstrip("/").rsplit(":", 1)[1])
    pids = [int(pid) for pid in server.line(STARTUP).split()[1:]]
    return server, port, pids


def measure(
    args: argparse.Namespace,
    lib: str,
    topology: str,
    tmp: Path,
    redis: Optional[tuple[str, Proc]],
) -> dict[str, Any]:
    result: dict[str, Any] = {"lib": lib, "topology": topology}
    extra: list[str] = []
    if topology == "nginx":
        assert redis is not None
        extra = ["--workers", str(args.workers), "--redis", redis[0], "--channel", lib]
    server, port, pids = start_server(args, lib, extra)
    try:
        with contextlib.ExitStack() as stack:
            nginx_pids: list[int] = []
            target = port
            if topology == "nginx":
                target, nginx_proc = stack.enter_context(nginx(tmp, port, args.nginx_workers))
                nginx_pids = [nginx_proc.proc.pid, *children(nginx_proc.proc.pid)]
            base, nginx_base = rss(pids), rss(nginx_pids)
            client = Proc(
                [
                    args.client_python or args.python,
                    str(PEERS),
                    "client",
                    "--port",
                    str(target),
                    "--connections",
                    str(args.connections),
                    "--concurrency",
                    str(args.concurrency),
                    "--messages",
                    str(args.messages),
                    "--size",
                    str(args.size),
                    "--timeout",
                    str(args.timeout),
                ],
                stdin=subprocess.PIPE,
            )
            try:
                connected = json.loads(client.line(args.timeout + 600))
                result["connect_s"] = connected["seconds"]
                result["open"] = connected["open"]
                result["failed"] = connected["failed"]
                if connected["failed"]:
                    result["error"] = connected["first_failure"]
                idle = rss(pids)
                result["rss_base"] = base
                result["rss_idle"] = idle
                result["rss_per_conn"] = (idle - base) / max(1, connected["open"])
                if nginx_pids:
                    result["nginx_rss_per_conn"] = (rss(nginx_pids) - nginx_base) / max(
                        1, connected["open"]
                    )
                watched = pids + nginx_pids + ([redis[1].proc.pid] if redis else [])
                before = {pid: cpu_seconds([pid]) for pid in watched}
                client.send("go")
                fanout = json.loads(client.line(args.timeout + 60))
                after = {pid: cpu_seconds([pid]) for pid in watched}
                result["rss_after_fanout_per_conn"] = (rss(pids) - base) / max(1, connected["open"])
                if fanout["seconds"] is None:
                    result["error"] = f"fan-out incomplete: {fanout}"
                else:
                    deliveries = fanout["deliveries"]
                    result["fanout_s"] = fanout["seconds"]
                    result["deliveries_per_s"] = deliveries / fanout["seconds"]

                    def used(group: list[int]) -> float:
                        return sum(after[pid] - before[pid] for pid in group)

                    result["server_cpu_us_per_delivery"] = used(pids) / deliveries * 1e6
                    if nginx_pids:
                        result["nginx_cpu_us_per_delivery"] = used(nginx_pids) / deliveries * 1e6
                client.send("quit")
            finally:
                client.stop()
    finally:
        server.stop()
    return result


# ---------------------------------------------------------------------------
# Report


def kib(value: Optional[float]) -> str:
    return "-" if value is None else f"{value / 1024:.1f}"


NUMBERS = (
    "connect_s",
    "rss_per_conn",
    "rss_after_fanout_per_conn",
    "deliveries_per_s",
    "server_cpu_us_per_delivery",
    "nginx_rss_per_conn",
    "nginx_cpu_us_per_delivery",
)


def medians(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (topology, library): the median of each figure over the rounds."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["topology"], r["lib"]), []).append(r)
    rows = []
    for (topology, lib), runs in groups.items():
        row: dict[str, Any] = {"topology": topology, "lib": lib, "runs": len(runs)}
        for key in NUMBERS:
            values = [r[key] for r in runs if key in r and "error" not in r]
            if values:
                row[key] = statistics.median(values)
                if key == "deliveries_per_s" and len(values) > 1:
                    row["deliveries_range"] = (min(values), max(values))
        rows.append(row)
    topologies = list(dict.fromkeys(r["topology"] for r in results))
    libs = list(LIBS)
    rows.sort(key=lambda row: (topologies.index(row["topology"]), libs.index(row["lib"])))
    return rows


def table(results: list[dict[str, Any]], markdown: bool) -> list[str]:
    head = [
        "topology",
        "library",
        "connect all (s)",
        "RSS per idle conn (KiB)",
        "after fan-out (KiB)",
        "fan-out (deliveries/s)",
        "server CPU (us/delivery)",
        "nginx KiB/conn, us/delivery",
    ]
    rows = []
    for r in results:
        nginx_cell = "-"
        if "nginx_rss_per_conn" in r:
            cpu = r.get("nginx_cpu_us_per_delivery")
            nginx_cell = f"{kib(r['nginx_rss_per_conn'])}, {'-' if cpu is None else f'{cpu:.2f}'}"
        rate = r.get("deliveries_per_s")
        spread = r.get("deliveries_range")
        rate_cell = "-" if rate is None else f"{rate:,.0f}"
        if spread is not None:
            rate_cell += f" ({spread[0]:,.0f}-{spread[1]:,.0f})"
        cpu = r.get("server_cpu_us_per_delivery")
        rows.append(
            [
                r["topology"],
                r["lib"],
                "-" if "connect_s" not in r else f"{r['connect_s']:.2f}",
                kib(r.get("rss_per_conn")),
                kib(r.get("rss_after_fanout_per_conn")),
                rate_cell,
                "-" if cpu is None else f"{cpu:.2f}",
                nginx_cell,
            ]
        )
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return lines
    widths = [max(len(str(x)) for x in column) for column in zip(head, *rows)]
    return ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in [head, *rows]]


def describe(python: str) -> str:
    code = (
        "import platform, sys, importlib\n"
        "parts = [platform.python_implementation() + ' ' + platform.python_version()]\n"
        "for m in ('picows', 'websockets', 'redis', 'uvloop', 'aiofastnet'):\n"
        "    try: parts.append(m + ' ' + getattr(importlib.import_module(m), '__version__', '?'))\n"
        "    except ImportError: pass\n"
        "print(', '.join(parts))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() or out.stderr.strip()[-200:]


def importable(python: str, lib: str) -> bool:
    env = dict(os.environ)
    env.update(LIBS[lib][1])
    probe = subprocess.run([python, "-c", IMPORTS[lib]], env=env, capture_output=True, check=False)
    return probe.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight")
    parser.add_argument("--messages", type=int, default=20, help="messages fanned out")
    parser.add_argument("--size", type=int, default=64, help="bytes per message")
    parser.add_argument("--workers", type=int, default=2, help="server workers (nginx topology)")
    parser.add_argument("--nginx-workers", type=int, default=2)
    parser.add_argument("--topologies", default="single,nginx")
    parser.add_argument("--rounds", type=int, default=1, help="medians over this many rounds")
    parser.add_argument("--seed", type=int, default=1, help="seed of the order within a round")
    parser.add_argument("--libs", default="picows-pure,picows-cffi,picows-cython,websockets")
    parser.add_argument("--python", default=sys.executable, help="ours, websockets, the client")
    parser.add_argument("--cython-python", help="an interpreter with upstream picows (PyPI)")
    parser.add_argument("--client-python", help="the client's interpreter (default: --python)")
    parser.add_argument("--aiofastnet", action="store_true", help="picows servers use aiofastnet")
    parser.add_argument(
        "--read-buffer", type=int, help="picows servers' read_buffer_init_size (default: theirs)"
    )
    parser.add_argument("--timeout", type=float, default=300, help="bound on each phase (s)")
    parser.add_argument("--json", metavar="FILE", help="write the results here")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    # Every child inherits the raised limit: 10,000 sockets in one process.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.connections + 1000:
        raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} is below {args.connections} + 1000")

    libs, notes = [], []
    for lib in [x.strip() for x in args.libs.split(",") if x.strip()]:
        python = getattr(args, LIBS[lib][2])
        if python is None:
            notes.append(f"{lib} skipped: no --cython-python")
        elif not importable(python, lib):
            notes.append(f"{lib} skipped: `{IMPORTS[lib]}` fails under {python}")
        else:
            libs.append(lib)
    say = (lambda line: print(line + "  ")) if args.markdown else (lambda line: print("# " + line))
    say("Command: `python benchmarks/scale.py " + " ".join(sys.argv[1:]) + "`")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    say(f"Machine: {os.cpu_count()} CPUs, {platform.platform()}, RLIMIT_NOFILE {hard}")
    say(f"Load average at the start: {load}; rounds: {args.rounds} (medians, rate min-max)")
    say(f"--python: {describe(args.python)}")
    if args.client_python:
        say(f"--client-python: {describe(args.client_python)}")
    if args.cython_python:
        say(f"--cython-python: {describe(args.cython_python)}")
    say(
        f"{args.connections} connections, {args.concurrency} handshakes in flight; fan-out "
        f"of {args.messages} x {args.size} B TEXT; transports: "
        f"{'aiofastnet' if args.aiofastnet else 'asyncio'} (picows), event loop: asyncio, "
        f"picows read_buffer_init_size: {args.read_buffer or 'default (16 KiB)'}"
    )
    for note in notes:
        say(note)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="picows-scale-") as tmp_name:
        tmp = Path(tmp_name)
        for topology in [x.strip() for x in args.topologies.split(",") if x.strip()]:
            with contextlib.ExitStack() as stack:
                redis = None
                if topology == "nginx":
                    redis = stack.enter_context(redis_server(tmp))
                rng = random.Random(args.seed)
                order = [lib for _ in range(args.rounds) for lib in rng.sample(libs, len(libs))]
                for lib in order:  # each round in its own shuffled order
                    started = time.monotonic()
                    try:
                        result = measure(args, lib, topology, tmp, redis)
                    except Exception as exc:
                        result = {"lib": lib, "topology": topology, "error": repr(exc)}
                    result["wall_s"] = time.monotonic() - started
                    results.append(result)
                    print(f"# {topology} {lib}: {json.dumps(result)}", file=sys.stderr, flush=True)
    print()
    for line in table(medians(results), args.markdown):
        print(line)
    for r in results:
        if "error" in r:
            print(f"{r['topology']} {r['lib']}: {r['error']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
