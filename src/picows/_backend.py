"""The one place that decides how frames are masked, decoded and built.

Two implementations give byte-identical results (the tests check it):

* ``PYTHON``: :mod:`picows._mask` and :mod:`picows._header`, always there;
* ``CFFI``: the optional accelerator, :mod:`_picows_accel`, when it was built.

This module decides once, at import, which one connections use (:data:`ACTIVE`):
``PICOWS_NO_EXTENSIONS=1`` forces pure Python, ``PICOWS_REQUIRE_EXTENSIONS=1`` turns a
missing accelerator into an ImportError (release builds and CI use it), and otherwise
the accelerator is used when it was built.  Every connection binds the functions of
the backend active when it is created, once, so the hot paths do no lookups; the tests
switch backends per test with :func:`select`.

The choices per function and per interpreter come from the benchmarks in
``benchmarks/``: cffi masking wins everywhere (``mask_results.md``); one cffi call per
frame header costs more than a Python decode, so C decodes headers only in batches,
and only on CPython (``header_results.md``).  The send-path thresholds below are the
same for both backends; they depend on the interpreter (``benchmarks/README.md``).
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from . import _header, _mask

__all__ = [
    "ACTIVE",
    "BACKEND",
    "BATCH_MIN_FRAMES",
    "CFFI",
    "PYPY",
    "PYTHON",
    "SEND_BUFFER_MIN",
    "WRITELINES_MIN",
    "WRITELINES_SKIPS_PAUSE",
    "Backend",
    "env_flag",
    "select",
]

ReadableBuffer = Union[bytes, bytearray, memoryview]
HeaderDecoder = Callable[
    [ReadableBuffer, int, int, bool, bool, int], Optional["tuple[int, int, int]"]
]
BatchDecoder = Callable[[ReadableBuffer, int, int, bool, bool, int], "list[int]"]

#: PyPy gets its own choices (its JIT changes which code is fast).
PYPY = platform.python_implementation() == "PyPy"

# How WSTransport writes frames (benchmarks/README.md, "Where the time goes").
# CPython: frames of SEND_BUFFER_MIN bytes and more are built in a SendBuffer that
# the connection reuses, because a fresh megabyte page-faults every 4 KiB on first
# touch; unmasked bytes payloads of WRITELINES_MIN and more are handed to
# writelines() with their header (Python 3.12+ sends them without joining).
# PyPy: frames are built as bytes objects.  Its asyncio copies any other type at
# ~2 GB/s when a write is partial, and sending from a reused buffer measured 0.4 of
# the raw ceiling at 1 MiB against 0.8 for a fresh bytes object.
# Both: on asyncio's plain socket transports, the accelerator writes frames of 64 KiB
# and more itself (Backend.write_frame), which needs neither.
SEND_BUFFER_MIN = sys.maxsize if PYPY else 65536
#: CPython 3.12.0-3.12.8 and 3.13.0-3.13.1: the selector transport's writelines()
#: never calls pause_writing (CPython gh-127655), so a peer that stops reading would
#: make us buffer without limit.  There every frame goes through write().
WRITELINES_SKIPS_PAUSE = not PYPY and (
    (3, 12) <= sys.version_info[:3] < (3, 12, 9) or (3, 13) <= sys.version_info[:3] < (3, 13, 2)
)
WRITELINES_MIN = sys.maxsize if PYPY or WRITELINES_SKIPS_PAUSE else 8192
#: A read is decoded with one batch call only if it could hold this many frames like
#: its first one: for fewer, the fixed price of the call is more than their Python
#: decodes cost (benchmarks/header_results.md).
BATCH_MIN_FRAMES = 8


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is set to something true."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True)
class Backend:
    """One implementation of the hot functions, as a connection binds them."""

    #: ``"python"`` or ``"cffi"``: what ``picows.BACKEND`` reports.
    name: str
    #: (buffer, key) -> masked bytes (5.3).
    apply_mask: Callable[..., bytes]
    #: (buffer, start, end, key) -> None: masks in place.
    apply_mask_inplace: Callable[..., None]
    #: buffer -> unmask(start, end) -> 0 (or -1 out of range), reading the key in the
    #: 4 bytes before start.
    bind_unmask: Callable[[bytearray], Callable[[int, int], int]]
    #: (first_byte, payload, mask_key=None) -> the whole frame as bytes.
    build_frame: Callable[..., bytes]
    #: One header per call (picows._header.decode_header's signature).
    decode_header: HeaderDecoder
    #: All complete headers of a read per call, or None to decode one at a time.
    decode_headers: Optional[BatchDecoder]
    #: The reusable buffer big frames are built in (see SEND_BUFFER_MIN).
    SendBuffer: Callable[[int], Any]
    #: Whether unmasked frames go through build_frame too (else: header + payload).
    build_unmasked: bool
    #: (fd, first_byte, payload, size, key) -> the bytes left to send, or -errno: a
    #: masked frame built and written in one call; None where there is none.
    send_frame: Optional[Callable[[int, int, bytes, int, bytes], int]] = None
    #: (fd, first_byte, payload, mask_key=None) -> what the socket did not take: any
    #: frame written to the descriptor from C, the unmasked ones with no copy at all;
    #: None where there is none.
    write_frame: Optional[Callable[..., bytes]] = None


PYTHON = Backend(
    name="python",
    apply_mask=_mask.apply_mask,
    apply_mask_inplace=_mask.apply_mask_inplace,
    bind_unmask=_mask.bind_unmask,
    build_frame=_header.build_frame,
    decode_header=_header.decode_header,
    decode_headers=None,
    SendBuffer=_header.SendBuffer,
    build_unmasked=False,
)


def _load_cffi() -> Optional[Backend]:
    try:
        import _picows_accel as accel
    except ImportError as exc:
        if env_flag("PICOWS_REQUIRE_EXTENSIONS"):
            raise ImportError(
                "PICOWS_REQUIRE_EXTENSIONS is set but the cffi accelerator is not built "
                f"({exc}); reinstall picows with a C compiler available"
            ) from exc
        return None
    # The accelerator imports nothing from picows: it gets our error messages here.
    accel.set_header_error(_header.header_error)
    return Backend(
        name="cffi",
        apply_mask=accel.apply_mask,
        apply_mask_inplace=accel.apply_mask_inplace,
        bind_unmask=accel.bind_unmask,
        build_frame=accel.build_frame,
        # One cffi call per header loses to Python everywhere; a batch call wins on
        # CPython from about 8 frames per read.  On PyPy the JIT-compiled Python
        # decoder beats any cffi call (benchmarks/header_results.md).
        decode_header=_header.decode_header,
        decode_headers=None if PYPY else accel.decode_headers,
        SendBuffer=accel.SendBuffer,
        # An unmasked frame is one copy in Python (header + payload) and two in C
        # (scratch, then bytes), which is cheaper on CPython; on PyPy the Python copy
        # is the slow one.
        build_unmasked=PYPY,
        # Sockets are file descriptors only off Windows.
        send_frame=None if sys.platform == "win32" else accel.send_frame,
        write_frame=None if sys.platform == "win32" else accel.write_frame,
    )


if env_flag("PICOWS_NO_EXTENSIONS"):
    if env_flag("PICOWS_REQUIRE_EXTENSIONS"):
        raise ImportError("PICOWS_NO_EXTENSIONS and PICOWS_REQUIRE_EXTENSIONS are both set")
    CFFI: Optional[Backend] = None
else:
    #: The accelerator, or None where it was not built (or is switched off).
    CFFI = _load_cffi()

#: The backend new connections use.
ACTIVE: Backend = CFFI if CFFI is not None else PYTHON
#: Its name, as ``picows.BACKEND``.
BACKEND = ACTIVE.name


@contextlib.contextmanager
def select(name: str) -> Iterator[Backend]:
    """Connections created inside the ``with`` block use backend ``name`` (for tests)."""
    global ACTIVE
    chosen = {"python": PYTHON, "cffi": CFFI}.get(name)
    if chosen is None:
        raise ValueError(f"backend {name!r} is not available here")
    previous, ACTIVE = ACTIVE, chosen
    try:
        yield chosen
    finally:
        ACTIVE = previous
