"""Choose the masking backend once, at import time.

``PICOWS_NO_EXTENSIONS=1`` forces the pure-Python path; ``PICOWS_REQUIRE_EXTENSIONS=1``
turns a missing accelerator into an ImportError (release builds and CI use it).
With neither set, the cffi accelerator is used when it was built.  Hot paths import
the names below once, so there is no per-frame lookup.
"""

from __future__ import annotations

import os

from . import _mask

__all__ = ["BACKEND", "apply_mask", "apply_mask_inplace"]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


apply_mask = _mask.apply_mask
apply_mask_inplace = _mask.apply_mask_inplace
BACKEND = "python"

if _env_flag("PICOWS_NO_EXTENSIONS"):
    if _env_flag("PICOWS_REQUIRE_EXTENSIONS"):
        raise ImportError("PICOWS_NO_EXTENSIONS and PICOWS_REQUIRE_EXTENSIONS are both set")
else:
    try:
        from _picows_accel import apply_mask as _c_apply_mask
        from _picows_accel import apply_mask_inplace as _c_apply_mask_inplace
    except ImportError as exc:
        if _env_flag("PICOWS_REQUIRE_EXTENSIONS"):
            raise ImportError(
                "PICOWS_REQUIRE_EXTENSIONS is set but the cffi accelerator is not built "
                f"({exc}); reinstall picows with a C compiler available"
            ) from exc
    else:
        apply_mask = _c_apply_mask
        apply_mask_inplace = _c_apply_mask_inplace
        BACKEND = "cffi"
