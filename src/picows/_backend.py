"""Choose the masking and header-decoding backends once, at import time.

``PICOWS_NO_EXTENSIONS=1`` forces the pure-Python path; ``PICOWS_REQUIRE_EXTENSIONS=1``
turns a missing accelerator into an ImportError (release builds and CI use it).
With neither set, the cffi accelerator is used when it was built.  Hot paths import
the names below once, so there is no per-frame lookup.

The choice is per function and per interpreter, from the benchmarks in
``benchmarks/``: cffi masking wins everywhere (``mask_results.md``); for frame
headers one cffi call costs more than a Python decode, so C is used only as a batch
decoder, and only where it wins (``header_results.md``).  ``BACKEND`` names the
masking implementation, as before.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Callable, Optional, Union

from . import _header, _mask

__all__ = [
    "BACKEND",
    "BATCH_MIN_FRAMES",
    "BUILD_UNMASKED_IN_C",
    "SEND_BUFFER_MIN",
    "WRITELINES_MIN",
    "WRITELINES_SKIPS_PAUSE",
    "SendBuffer",
    "apply_mask",
    "apply_mask_inplace",
    "bind_unmask",
    "build_frame",
    "decode_header",
    "decode_headers",
]

ReadableBuffer = Union[bytes, bytearray, memoryview]
HeaderDecoder = Callable[
    [ReadableBuffer, int, int, bool, bool, int], Optional["tuple[int, int, int]"]
]
BatchDecoder = Callable[[ReadableBuffer, int, int, bool, bool, int], "list[int]"]

_PYPY = platform.python_implementation() == "PyPy"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


apply_mask = _mask.apply_mask
apply_mask_inplace = _mask.apply_mask_inplace
bind_unmask = _mask.bind_unmask
#: Builds a whole outgoing frame as bytes (see _header.build_frame).
build_frame = _header.build_frame
BACKEND = "python"
#: One header per call (see picows._header): pure Python on every interpreter.
decode_header: HeaderDecoder = _header.decode_header
#: All complete headers of a read per call, or None to decode one at a time.
decode_headers: Optional[BatchDecoder] = None
#: FrameReader calls decode_headers only for a read that could hold this many
#: frames like its first one (see picows._frames._BATCH_AT): for fewer frames the
#: fixed price of a batch call is more than their Python decodes cost.
BATCH_MIN_FRAMES = 8

# How WSTransport writes frames (benchmarks/README.md, "Where the time goes").
# CPython: frames of SEND_BUFFER_MIN bytes and more are built in a SendBuffer that
# the connection reuses, because a fresh megabyte page-faults every 4 KiB on first
# touch; unmasked bytes payloads of WRITELINES_MIN and more are handed to
# writelines() with their header (Python 3.12+ sends them without joining).
# PyPy: every frame is built as a bytes object.  Its asyncio copies any other type
# at ~2 GB/s when a write is partial, and sending from a reused buffer measured
# 0.4 of the raw ceiling at 1 MiB against 0.8 for a fresh bytes object.
SendBuffer = _header.SendBuffer
SEND_BUFFER_MIN = sys.maxsize if _PYPY else 65536
#: CPython 3.12.0-3.12.8 and 3.13.0-3.13.1: the selector transport's writelines()
#: never calls pause_writing (CPython gh-127655), so a peer that stops reading would
#: make us buffer without limit.  There every frame goes through write().
WRITELINES_SKIPS_PAUSE = not _PYPY and (
    (3, 12) <= sys.version_info[:3] < (3, 12, 9) or (3, 13) <= sys.version_info[:3] < (3, 13, 2)
)
WRITELINES_MIN = sys.maxsize if _PYPY or WRITELINES_SKIPS_PAUSE else 8192
#: Whether unmasked frames go through build_frame too (else: header + payload).
BUILD_UNMASKED_IN_C = False


if _env_flag("PICOWS_NO_EXTENSIONS"):
    if _env_flag("PICOWS_REQUIRE_EXTENSIONS"):
        raise ImportError("PICOWS_NO_EXTENSIONS and PICOWS_REQUIRE_EXTENSIONS are both set")
else:
    try:
        from _picows_accel import SendBuffer as _CSendBuffer
        from _picows_accel import apply_mask as _c_apply_mask
        from _picows_accel import apply_mask_inplace as _c_apply_mask_inplace
        from _picows_accel import bind_unmask as _c_bind_unmask
        from _picows_accel import build_frame as _c_build_frame
        from _picows_accel import decode_headers as _c_decode_headers
    except ImportError as exc:
        if _env_flag("PICOWS_REQUIRE_EXTENSIONS"):
            raise ImportError(
                "PICOWS_REQUIRE_EXTENSIONS is set but the cffi accelerator is not built "
                f"({exc}); reinstall picows with a C compiler available"
            ) from exc
    else:
        apply_mask = _c_apply_mask
        apply_mask_inplace = _c_apply_mask_inplace
        SendBuffer = _CSendBuffer  # type: ignore[assignment, misc]
        bind_unmask = _c_bind_unmask
        build_frame = _c_build_frame
        # An unmasked frame is one copy in Python (header + payload) and two in C
        # (scratch, then bytes), which is cheaper on CPython; on PyPy the Python
        # copy is the slow one.
        BUILD_UNMASKED_IN_C = _PYPY
        BACKEND = "cffi"
        if not _PYPY:
            # CPython: one C call for every header of a read beats a Python decode
            # per frame from about 8 frames per read on.  On PyPy the JIT-compiled
            # Python decoder beats any cffi call (benchmarks/header_results.md).
            decode_headers = _c_decode_headers
