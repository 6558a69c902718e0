"""Frame-header decoding cost (RFC 6455 section 5.2): pure Python against cffi.

Not part of the test suite.  Two ways to run it:

    pytest benchmarks/bench_header.py --benchmark-only   # pytest-benchmark tables
    python benchmarks/bench_header.py                    # ns per frame, two tables

Both need picows importable (installed, or ``PYTHONPATH=src`` with an in-tree build
from ``python src/_picows_accel/_build.py``); the cffi rows are skipped when the
accelerator is not built.

The input is a buffer of N small frames (32-byte binary payloads, unmasked, as a
client receives them), N = 1, 8, 64.  Every row costs the same consumer loop: each
frame's (first_byte, header_size, payload_length) is read into locals.

* Decoders (table 1): ``decode_header`` called once per frame, the Python reference
  (``picows._header``) against the cffi wrapper; ``decode_headers`` called once per
  buffer (all N headers in one call) and its result walked, C against Python.
* FrameReader (table 2): a whole read taken apart by ``FrameReader.next_frame``,
  headers decoded one at a time in Python; or in a batch by C under picows' rule
  (a read that starts with a small frame and could hold ``BATCH_MIN_FRAMES`` frames
  like it, see ``picows._frames._BATCH_AT``); or by C for every read.  The variants
  are chosen by setting the module globals that ``picows._frames`` bound at import,
  which is how this one process compares them.  Reads of a few frames (2 x 125 B,
  4 x 64 B) or of one larger frame (300 B, 1 KiB) show the price of a batch call
  that decodes only a few headers.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from types import ModuleType
from typing import TYPE_CHECKING, Callable, Optional

from picows import _backend, _frames
from picows import _header as pure
from picows._frames import FrameReader, encode_frame

accel: Optional[ModuleType]
try:
    import _picows_accel as accel
except ImportError:
    accel = None

COUNTS = (1, 8, 64)
PAYLOAD = 32
MAX_FRAME = 1 << 20
PICOWS_RULE = _frames._BATCH_AT
EVERY_READ = (0,) * 256

Work = Optional[Callable[[], object]]


def frames_buffer(count: int, size: int = PAYLOAD, masked: bool = False) -> bytearray:
    key = bytes.fromhex("37fa213d") if masked else None
    payload = (bytes(range(256)) * (size // 256 + 1))[:size]
    return bytearray(b"".join(encode_frame(2, payload, mask_key=key) for _ in range(count)))


# --- table 1: the decoders alone -----------------------------------------------------


def single_loop(decode: Callable[..., Optional[tuple[int, int, int]]], count: int) -> Work:
    buf = frames_buffer(count)
    end = len(buf)

    def run() -> int:
        pos = 0
        for _ in range(count):
            header = decode(buf, pos, end, False, False, MAX_FRAME)
            assert header is not None
            _first, header_size, length = header
            pos += header_size + length
        return pos

    return run


def batch_loop(decode_many: Callable[..., list[int]], count: int) -> Work:
    buf = frames_buffer(count)
    end = len(buf)

    def run() -> int:
        batch = decode_many(buf, 0, end, False, False, MAX_FRAME)
        pos = 0
        for i in range(0, len(batch) - 1, 3):
            _first, header_size, length = batch[i], batch[i + 1], batch[i + 2]
            pos += header_size + length
        return pos

    return run


def decoder_workloads(count: int) -> dict[str, Work]:
    return {
        "python decode_header": single_loop(pure.decode_header, count),
        "cffi decode_header": single_loop(accel.decode_header, count) if accel else None,
        "cffi decode_headers": batch_loop(accel.decode_headers, count) if accel else None,
        "python decode_headers": batch_loop(pure.decode_headers, count),
    }


# --- table 2: FrameReader.next_frame, end to end --------------------------------------


def reader_loop(count: int, size: int, batch: bool, rule: tuple[int, ...]) -> Work:
    """One read of ``count`` frames of ``size`` bytes through a FrameReader."""
    if batch and accel is None:
        return None
    data = bytes(frames_buffer(count, size))
    reader = FrameReader(is_client=True, max_frame_size=MAX_FRAME)
    nbytes = len(data)
    decode_many = accel.decode_headers if batch and accel else None

    def run() -> None:
        # The variant is set on every call: several readers share the module.
        _frames._decode_headers = decode_many
        _frames._BATCH_AT = rule
        reader.get_buffer(nbytes)[:nbytes] = data
        reader.buffer_updated(nbytes)
        next_frame = reader.next_frame
        while next_frame() is not None:
            pass

    return run


def restore() -> None:
    """Put back what picows chose at import."""
    _frames._decode_headers = _backend.decode_headers
    _frames._BATCH_AT = PICOWS_RULE


READER_CASES = {f"{n} x {PAYLOAD} B": (n, PAYLOAD) for n in (1, 8, 16, 64)}
READER_CASES.update(
    {"2 x 125 B": (2, 125), "4 x 64 B": (4, 64), "1 x 300 B": (1, 300), "1 x 1 KiB": (1, 1024)}
)


def reader_workloads(count: int, size: int) -> dict[str, Work]:
    return {
        "python, one by one": reader_loop(count, size, False, PICOWS_RULE),
        "cffi batch, picows' rule": reader_loop(count, size, True, PICOWS_RULE),
        "cffi batch, every read": reader_loop(count, size, True, EVERY_READ),
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

    @pytest.mark.parametrize("count", COUNTS)
    @pytest.mark.parametrize("name", list(decoder_workloads(1)))
    def test_decode(benchmark: BenchmarkFixture, count: int, name: str) -> None:
        fn = decoder_workloads(count)[name]
        if fn is None:
            pytest.skip("_picows_accel is not built")
        benchmark.group = f"decode {count} frames"
        benchmark.extra_info["frames"] = count
        benchmark(fn)

    @pytest.mark.parametrize("label", list(READER_CASES))
    @pytest.mark.parametrize("name", list(reader_workloads(1, 1)))
    def test_reader(benchmark: BenchmarkFixture, label: str, name: str) -> None:
        fn = reader_workloads(*READER_CASES[label])[name]
        if fn is None:
            pytest.skip("_picows_accel is not built")
        benchmark.group = f"FrameReader {label}"
        benchmark.extra_info["frames"] = READER_CASES[label][0]
        try:
            benchmark(fn)
        finally:
            restore()


# --- standalone tables ----------------------------------------------------------------


def best_times(fns: dict[str, Work], repeat: int, min_time: float) -> dict[str, float]:
    """Best seconds per call of each function over ``repeat`` rounds.

    The functions take turns within every round, so that a busy machine slows all
    of them alike; the best round of each is kept."""
    ready = {name: fn for name, fn in fns.items() if fn is not None}
    for fn in ready.values():  # warm-up, and PyPy's JIT
        deadline = time.perf_counter() + 4 * min_time
        while time.perf_counter() < deadline:
            fn()
    best = dict.fromkeys(ready, float("inf"))
    for _ in range(repeat):
        for name, fn in ready.items():
            calls = 0
            start = time.perf_counter()
            while True:
                for _ in range(16):
                    fn()
                calls += 16
                elapsed = time.perf_counter() - start
                if elapsed >= min_time:
                    break
            best[name] = min(best[name], elapsed / calls)
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


def print_table(title: str, rows: dict[str, tuple[int, dict[str, Work]]], args: object) -> None:
    repeat, min_time = getattr(args, "repeat"), getattr(args, "min_time")  # noqa: B009
    names = list(next(iter(rows.values()))[1])
    print(f"{title} (ns per frame)")
    print()
    print("| frames | " + " | ".join(names) + " |")
    print("|---" * (1 + len(names)) + "|")
    for label, (count, fns) in rows.items():
        times = best_times(fns, repeat, min_time)
        cells = [f"{times[n] / count * 1e9:,.0f}" if n in times else "n/a" for n in names]
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
    print()


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="rounds per cell (best kept)")
    parser.add_argument("--min-time", type=float, default=0.02, help="seconds per round")
    args = parser.parse_args(argv)

    impl = sys.implementation.name
    print(f"# {impl} {platform.python_version()} ({sys.version.splitlines()[-1].strip()})")
    print(f"# cpu: {cpu_name()}, {os.cpu_count()} logical CPUs")
    print(f"# accelerator: {accel.BACKEND_INFO if accel is not None else 'not built'}")
    chosen = _backend.decode_headers
    print(
        f"# picows chose: decode_header from {_backend.decode_header.__module__}, "
        f"decode_headers {'from ' + chosen.__module__ if chosen else 'unused'}, "
        f"BATCH_MIN_FRAMES = {_backend.BATCH_MIN_FRAMES}"
    )
    print(f"# best of {args.repeat} interleaved rounds of >= {args.min_time} s")
    print()
    print_table(
        f"Decoders, N frames of {PAYLOAD} B in one buffer",
        {str(n): (n, decoder_workloads(n)) for n in COUNTS},
        args,
    )
    try:
        print_table(
            "FrameReader.next_frame, one read",
            {label: (c, reader_workloads(c, s)) for label, (c, s) in READER_CASES.items()},
            args,
        )
    finally:
        restore()


if __name__ == "__main__":
    main()
