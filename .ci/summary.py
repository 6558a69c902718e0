"""Prints one line per tox leg from tox's --result-json: its time, our suite's counts,
and upstream picows' counts per backend; then the totals.

    python3 .ci/summary.py .tox/result.json
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

# pytest's closing line: "8400 passed, 30 skipped, 2 deselected in 250.31s (0:04:10)".
PYTEST_LINE = re.compile(r"^=* ?(\d+ \w+(?:, \d+ \w+)*) in [\d.]+s")
COUNT = re.compile(r"(\d+) (\w+)")
UPSTREAM_LINE = re.compile(r"^\d+ passed, \d+ failed, .*expected failures")
BACKEND = re.compile(r"\(backend (\w+)\)")


def closing_counts(output: str) -> dict[str, int]:
    """The counts of the last pytest closing line in ``output``."""
    counts: dict[str, int] = {}
    for line in output.splitlines():
        match = PYTEST_LINE.match(line.strip())
        if match:
            counts = {word: int(number) for number, word in COUNT.findall(match.group(1))}
    return counts


def describe(counts: dict[str, int]) -> str:
    order = ["passed", "failed", "errors", "error", "skipped", "deselected", "xfailed"]
    return ", ".join(f"{counts[k]} {k}" for k in order if k in counts) or "no pytest summary"


def main(path: str) -> int:
    with open(path) as file:
        report: dict[str, Any] = json.load(file)
    total = {"passed": 0, "failed": 0}
    for name, env in report["testenvs"].items():
        if name.startswith(".pkg") or "result" not in env:
            continue
        result = env["result"]
        parts = [f"{name}: {'OK' if result['success'] else 'FAILED'} in {result['duration']:.0f} s"]
        for command in env.get("test", []):
            output = command.get("output", "")
            argv = " ".join(command["command"])
            if "run_upstream.py" in argv:
                backend = BACKEND.search(output)
                line = [ln for ln in output.splitlines() if UPSTREAM_LINE.match(ln)]
                label = f"upstream {backend.group(1) if backend else '?'}"
                parts.append(f"{label}: {line[-1] if line else 'no summary'}")
            elif " pytest " in f" {argv} ":
                counted = describe(closing_counts(output))
                parts.append(f"suite ({command['elapsed']:.0f} s): {counted}")
            else:
                continue
            counts = closing_counts(output)
            total["passed"] += counts.get("passed", 0)
            total["failed"] += (
                counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
            )
        print(" | ".join(parts))
    print(f"total: {total['passed']} passed, {total['failed']} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
