"""Masking throughput (RFC 6455 section 5.3): pure Python, the cffi accelerator, memcpy.

Not part of the test suite.  Two ways to run it:

    pytest benchmarks/bench_mask.py --benchmark-only     # pytest-benchmark tables
    python benchmarks/bench_mask.py                      # one MB/s table, with ratios

Both need picows importable (installed, or ``PYTHONPATH=src`` with an in-tree build
from ``python src/_picows_accel/_build.py``); the cffi rows are skipped when the
accelerator is not built.  Baselines: "copy -> new bytes" is ``bytes(bytearray)``,
the same contract as apply_mask (a new bytes object of the same size); "copy into"
is one C ``memmove`` between existing buffers through the same cffi module, the same
contract as apply_mask_inplace (one cffi call, no allocation).  Without the
accelerator "copy into" falls back to ``dst[:] = src``, which PyPy runs far slower.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from types import ModuleType
from typing import TYPE_CHECKING, Callable, Optional

from picows import _mask as pure

accel: Optional[ModuleType]
try:
    import _picows_accel as accel
    from _picows_accel._cffi import ffi
except ImportError:
    accel = None

SIZES = {"125 B": 125, "8 KiB": 8 << 10, "1 MiB": 1 << 20}
KEY = bytes.fromhex("37fa213d")


def payload(size: int) -> bytes:
    # Deterministic, not all-zero: some code paths are faster on zeros.
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def workloads(size: int) -> dict[str, Optional[Callable[[], object]]]:
    """The operations to time for one payload size; None where unavailable."""
    data = payload(size)
    src = bytearray(data)
    dst = bytearray(size)
    inplace = bytearray(data)

    if accel is not None:
        memmove, src_ptr, dst_ptr = ffi.memmove, ffi.from_buffer(src), ffi.from_buffer(dst)

        def copy_into() -> None:  # one cffi call, like apply_mask_inplace
            memmove(dst_ptr, src_ptr, size)

    else:

        def copy_into() -> None:
            dst[:] = src

    work: dict[str, Optional[Callable[[], object]]] = {
        "pure apply_mask": lambda: pure.apply_mask(data, KEY),
        "cffi apply_mask": None,
        "cffi apply_mask_inplace": None,
        "copy -> new bytes": lambda: bytes(src),
        "copy into": copy_into,
    }
    if accel is not None:
        mask, mask_inplace = accel.apply_mask, accel.apply_mask_inplace
        work["cffi apply_mask"] = lambda: mask(data, KEY)
        work["cffi apply_mask_inplace"] = lambda: mask_inplace(inplace, 0, size, KEY)
    return work


def pure_variant_workloads(size: int) -> dict[str, Callable[[], object]]:
    """The two pure-Python implementations (picows._mask picks one per interpreter)."""
    data = payload(size)
    inplace = bytearray(data)
    return {
        "wide apply_mask": lambda: pure.apply_mask_wide(data, KEY),
        "loop apply_mask": lambda: pure.apply_mask_loop(data, KEY),
        "wide apply_mask_inplace": lambda: pure.apply_mask_inplace_wide(inplace, 0, size, KEY),
        "loop apply_mask_inplace": lambda: pure.apply_mask_inplace_loop(inplace, 0, size, KEY),
    }


# --- pytest-benchmark -------------------------------------------------------------

if TYPE_CHECKING:
    from pytest_benchmark.fixture import BenchmarkFixture

try:
    import pytest
except ImportError:  # standalone mode does not need pytest
    HAVE_PYTEST = False
else:
    HAVE_PYTEST = True

if HAVE_PYTEST:

    @pytest.mark.parametrize("label", list(SIZES))
    @pytest.mark.parametrize(
        "name",
        [
            "pure apply_mask",
            "cffi apply_mask",
            "cffi apply_mask_inplace",
            "copy -> new bytes",
            "copy into",
        ],
    )
    def test_mask_throughput(benchmark: BenchmarkFixture, label: str, name: str) -> None:
        fn = workloads(SIZES[label])[name]
        if fn is None:
            pytest.skip("_picows_accel is not built")
        benchmark.group = f"mask {label}"
        benchmark.extra_info["bytes"] = SIZES[label]
        benchmark(fn)

    @pytest.mark.parametrize("label", list(SIZES))
    @pytest.mark.parametrize("name", list(pure_variant_workloads(1)))
    def test_pure_variant_throughput(benchmark: BenchmarkFixture, label: str, name: str) -> None:
        benchmark.group = f"pure mask variants {label}"
        benchmark.extra_info["bytes"] = SIZES[label]
        benchmark(pure_variant_workloads(SIZES[label])[name])


# --- standalone table -------------------------------------------------------------


def best_time(fn: Callable[[], object], repeat: int, min_time: float) -> float:
    """Best seconds per call over ``repeat`` rounds of at least ``min_time`` each."""
    deadline = time.perf_counter() + 4 * min_time  # warm-up, and PyPy's JIT
    while time.perf_counter() < deadline:
        fn()
    best = float("inf")
    for _ in range(repeat):
        calls = 0
        start = time.perf_counter()
        while True:
            for _ in range(16):
                fn()
            calls += 16
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        best = min(best, elapsed / calls)
    return best


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="rounds per cell (best kept)")
    parser.add_argument("--min-time", type=float, default=0.05, help="seconds per round")
    parser.add_argument(
        "--pure-variants",
        action="store_true",
        help="compare the two pure-Python implementations instead",
    )
    args = parser.parse_args(argv)

    impl = sys.implementation.name
    print(f"# {impl} {platform.python_version()} ({sys.version.splitlines()[-1].strip()})")
    print(f"# cpu: {cpu_name()}, {os.cpu_count()} logical CPUs")
    print(f"# accelerator: {accel.BACKEND_INFO if accel is not None else 'not built'}")
    print(f"# best of {args.repeat} rounds of >= {args.min_time} s; MB/s = 10**6 bytes/s")
    print()

    if args.pure_variants:
        print(f"# picows._mask.apply_mask is {pure.apply_mask.__name__} here")
        variants = list(pure_variant_workloads(1))
        print("| size | " + " | ".join(variants) + " |")
        print("|---" * (1 + len(variants)) + "|")
        for label, size in SIZES.items():
            fns = pure_variant_workloads(size)
            cells = [
                f"{size / best_time(fns[n], args.repeat, args.min_time) / 1e6:,.0f}"
                for n in variants
            ]
            print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
        return

    names = list(workloads(1))
    ratios = ["C out-of-place / copy", "C in-place / copy", "C in-place / copy into"]
    print("| size | " + " | ".join(names + ratios) + " |")
    print("|---" * (1 + len(names) + len(ratios)) + "|")
    for label, size in SIZES.items():
        rates: dict[str, float] = {}
        for name, fn in workloads(size).items():
            if fn is not None:
                rates[name] = size / best_time(fn, args.repeat, args.min_time) / 1e6
        cells = [f"{rates[n]:,.0f}" if n in rates else "n/a" for n in names]
        copy, into = rates["copy -> new bytes"], rates["copy into"]
        if accel is not None:
            cells += [
                f"{rates['cffi apply_mask'] / copy:.2f}x",
                f"{rates['cffi apply_mask_inplace'] / copy:.2f}x",
                f"{rates['cffi apply_mask_inplace'] / into:.2f}x",
            ]
        else:
            cells += ["n/a"] * len(ratios)
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
