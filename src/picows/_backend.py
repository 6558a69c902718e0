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
from typing import Callable, Optional, Union

from . import _header, _mask

__all__ = [
    "BACKEND",
    "BATCH_MIN_FRAMES",
    "apply_mask",
    "apply_mask_inplace",
    "bind_unmask",
    "decode_header",
    "decode_headers",
    "encode_masked_frame",
    "mask_into",
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
mask_into = _mask.mask_into
bind_unmask = _mask.bind_unmask
encode_masked_frame = _header.encode_masked_frame
BACKEND = "python"
#: One header per call (see picows._header): pure Python on every interpreter.
decode_header: HeaderDecoder = _header.decode_header
#: All complete headers of a read per call, or None to decode one at a time.
decode_headers: Optional[BatchDecoder] = None
#: FrameReader calls decode_headers only for a read that could hold this many
#: frames like its first one (see picows._frames._BATCH_AT): for fewer frames the
#: fixed price of a batch call is more than their Python decodes cost.
BATCH_MIN_FRAMES = 8

if _env_flag("PICOWS_NO_EXTENSIONS"):
    if _env_flag("PICOWS_REQUIRE_EXTENSIONS"):
        raise ImportError("PICOWS_NO_EXTENSIONS and PICOWS_REQUIRE_EXTENSIONS are both set")
else:
    try:
        from _picows_accel import apply_mask as _c_apply_mask
        from _picows_accel import apply_mask_inplace as _c_apply_mask_inplace
        from _picows_accel import bind_unmask as _c_bind_unmask
        from _picows_accel import decode_headers as _c_decode_headers
        from _picows_accel import encode_masked_frame as _c_encode_masked_frame
        from _picows_accel import mask_into as _c_mask_into
    except ImportError as exc:
        if _env_flag("PICOWS_REQUIRE_EXTENSIONS"):
            raise ImportError(
                "PICOWS_REQUIRE_EXTENSIONS is set but the cffi accelerator is not built "
                f"({exc}); reinstall picows with a C compiler available"
            ) from exc
    else:
        apply_mask = _c_apply_mask
        apply_mask_inplace = _c_apply_mask_inplace
        mask_into = _c_mask_into
        bind_unmask = _c_bind_unmask
        encode_masked_frame = _c_encode_masked_frame
        BACKEND = "cffi"
        if not _PYPY:
            # CPython: one C call for every header of a read beats a Python decode
            # per frame from about 8 frames per read on.  On PyPy the JIT-compiled
            # Python decoder beats any cffi call (benchmarks/header_results.md).
            decode_headers = _c_decode_headers
