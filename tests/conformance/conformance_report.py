"""Runs the RFC 6455 conformance table in both directions and prints a Markdown summary.

    PYTHONPATH=src:tests python tests/conformance_report.py            # both backends
    PYTHONPATH=src:tests python tests/conformance_report.py --backend python --loops asyncio

Every case of ``conformance_cases`` is played against our server and against our
client (the same functions as ``test_conformance.py``), on every event loop available
(asyncio, and uvloop where installed); a case counts as passed for a direction and
backend when it passed on all of them.  Each backend runs in its own process
(``PICOWS_NO_EXTENSIONS=1`` for ``python``, ``PICOWS_REQUIRE_EXTENSIONS=1`` for ``cffi``),
since picows picks its backend once, at import.  The exit status is 1 if any case failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
# This folder (the cases and their runner) and tests/ (the shared helpers).
for path in (HERE, HERE.parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

BACKEND_ENV = {
    "python": {"PICOWS_NO_EXTENSIONS": "1"},
    "cffi": {"PICOWS_REQUIRE_EXTENSIONS": "1"},
}
HANDSHAKE_ROWS = {"H": "Opening handshake, server side", "C": "Opening handshake, client side"}


def loop_factories(names: list[str]) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {}
    for name in names:
        if name == "asyncio":
            factories[name] = asyncio.new_event_loop
        elif name == "uvloop":
            try:
                import uvloop
            except ImportError:
                continue
            factories[name] = uvloop.new_event_loop
    return factories


def run_here(loops: list[str], skip_slow: bool) -> dict[str, Any]:
    """Runs every case with this process' backend; returns the results as plain data."""
    import conformance_cases as cases
    import test_conformance as runner

    import picows

    # Failing connections is the point of half the cases: keep their logs quiet.
    logging.getLogger("picows").setLevel(logging.CRITICAL)
    results: dict[str, bool] = {}
    failures: list[str] = []

    def record(key: str, loop_name: str, run: Callable[[], Awaitable[None]]) -> None:
        loop = factories[loop_name]()
        try:
            loop.run_until_complete(run())
            passed = True
        except Exception as exc:
            passed = False
            failures.append(f"{key} on {loop_name}: {type(exc).__name__}: {exc}"[:300])
        finally:
            loop.close()
        results[key] = results.get(key, True) and passed

    factories = loop_factories(loops)
    for loop_name in factories:
        for case in cases.CASES:
            if skip_slow and case.slow:
                continue
            for side in runner.SIDES:
                record(
                    f"{side}/{case.id}",
                    loop_name,
                    partial(runner.run_case, case, side),
                )
        for hcase in cases.SERVER_HANDSHAKE_CASES:
            record(
                f"server/{hcase.id}",
                loop_name,
                partial(runner.run_server_handshake_case, hcase),
            )
        for ccase in cases.CLIENT_HANDSHAKE_CASES:
            record(
                f"client/{ccase.id}",
                loop_name,
                partial(runner.run_client_handshake_case, ccase),
            )
    return {
        "backend": picows.BACKEND,
        "interpreter": f"{sys.implementation.name} {sys.version.split()[0]}",
        "loops": list(factories),
        "results": results,
        "failures": failures,
    }


def run_backend(backend: str, loops: list[str], skip_slow: bool) -> Optional[dict[str, Any]]:
    """Runs the table in a child process with ``backend``; None if it is unavailable."""
    env = {**os.environ, **BACKEND_ENV[backend]}
    env.pop("PICOWS_NO_EXTENSIONS" if backend == "cffi" else "PICOWS_REQUIRE_EXTENSIONS", None)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--loops", *loops]
    if skip_slow:
        command.append("--skip-slow")
    child = subprocess.run(command, env=env, capture_output=True, text=True)
    if child.returncode != 0 or not child.stdout.strip():
        print(f"backend {backend}: not available ({child.stderr.strip()[-200:]})", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def categories() -> list[tuple[str, str, list[str]]]:
    """(row id, title, the result keys of its cases) for every row of the table."""
    import conformance_cases as cases

    rows = []
    for number, title in cases.CATEGORIES.items():
        ids = [case.id for case in cases.CASES if case.category == number]
        rows.append((number, title, ids))
    rows.append(("H", HANDSHAKE_ROWS["H"], [c.id for c in cases.SERVER_HANDSHAKE_CASES]))
    rows.append(("C", HANDSHAKE_ROWS["C"], [c.id for c in cases.CLIENT_HANDSHAKE_CASES]))
    return rows


def table(runs: dict[str, Optional[dict[str, Any]]]) -> str:
    columns = [(backend, side) for backend in runs for side in ("server", "client")]
    header = "| category | cases | " + " | ".join(f"{s}, {b}" for b, s in columns) + " |"
    lines = [header, "|" + " --- |" * (2 + len(columns))]
    totals = [[0, 0] for _ in columns]
    for row, title, ids in categories():
        cells = []
        for index, (backend, side) in enumerate(columns):
            run = runs[backend]
            applies = not (row == "H" and side == "client") and not (
                row == "C" and side == "server"
            )
            keys = [f"{side}/{case_id}" for case_id in ids]
            if not applies:
                cells.append("-")
            elif run is None:
                cells.append("n/a")
            else:
                ran = [run["results"][k] for k in keys if k in run["results"]]
                passed = sum(ran)
                totals[index][0] += passed
                totals[index][1] += len(ran)
                cells.append(f"{passed}/{len(ran)}")
        lines.append(f"| {row}. {title} | {len(ids)} | " + " | ".join(cells) + " |")
    total_cells = [f"**{p}/{n}**" if n else "n/a" for p, n in totals]
    all_cases = sum(len(ids) for _, _, ids in categories())
    lines.append(f"| **total** | **{all_cases}** | " + " | ".join(total_cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend", choices=[*BACKEND_ENV, "both"], default="both", help="masking backend(s)"
    )
    parser.add_argument("--loops", nargs="+", default=["asyncio", "uvloop"])
    parser.add_argument("--skip-slow", action="store_true", help="skip the cases over 4 MiB")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_here(args.loops, args.skip_slow)))
        return 0
    backends = list(BACKEND_ENV) if args.backend == "both" else [args.backend]
    runs = {backend: run_backend(backend, args.loops, args.skip_slow) for backend in backends}
    done = [run for run in runs.values() if run is not None]
    print(table(runs))
    if done:
        loops = ", ".join(sorted({loop for run in done for loop in run["loops"]}))
        print(f"\n{done[0]['interpreter']}; event loops: {loops}.")
    failures = [failure for run in done for failure in run["failures"]]
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures or not done else 0


if __name__ == "__main__":
    sys.exit(main())
