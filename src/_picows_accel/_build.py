"""cffi build script (out-of-line API mode) for the ``_picows_accel._cffi`` extension.

setup.py hands ``ffibuilder`` to cffi through ``cffi_modules``.  For development,
``pip install -e .`` builds the module in place, and so does running this file
(``python src/_picows_accel/_build.py``) without installing anything.
"""

from __future__ import annotations

import os
from typing import Optional

from cffi import FFI

__all__ = ["CDEF", "C_SOURCE", "ffibuilder", "make_builder"]

_HERE = os.path.dirname(os.path.abspath(__file__))


def _path(name: str, root: Optional[str]) -> str:
    # setuptools wants source paths relative to the project root (the cwd of
    # setup.py); FFI.compile() gets absolute ones, so its objects stay in its tmpdir.
    path = os.path.join(_HERE, name)
    return os.path.relpath(path, root) if root is not None else path


# Must match mask.h and header.h; cdef() cannot read them itself (they have
# #include and #ifndef).  "#define NAME ..." lets cffi take the value from the header.
CDEF = """
void picows_mask(const uint8_t *src, uint8_t *dst, size_t n,
                 const uint8_t key[4], unsigned key_offset);
void picows_unmask(uint8_t *buf, size_t start, size_t end);
int picows_unmask_in(uint8_t *buf, size_t size, size_t start, size_t end);
const char *picows_build_info(void);

#define PICOWS_HDR_OK ...
#define PICOWS_HDR_INCOMPLETE ...
#define PICOWS_HDR_PARTIAL ...
#define PICOWS_HDR_LIMIT ...
#define PICOWS_HDR_BAD_OPCODE ...
#define PICOWS_HDR_BAD_RSV ...
#define PICOWS_HDR_FRAGMENTED_CONTROL ...
#define PICOWS_HDR_CONTROL_TOO_LONG ...
#define PICOWS_HDR_BAD_LENGTH_16 ...
#define PICOWS_HDR_BAD_LENGTH_64 ...
#define PICOWS_HDR_TOO_BIG ...
#define PICOWS_HDR_MASKED ...
#define PICOWS_HDR_UNMASKED ...
int picows_decode_header(const uint8_t *buf, size_t avail, int expect_masked,
                         int allow_rsv, int64_t max_frame_size, uint64_t out[3]);
size_t picows_decode_headers(const uint8_t *buf, size_t avail, int expect_masked,
                             int allow_rsv, int64_t max_frame_size, size_t max_frames,
                             uint64_t *out);
size_t picows_build_frame(uint8_t *dst, uint8_t first_byte, const uint8_t *payload,
                          size_t n, const uint8_t *key);
long picows_send_frame(int fd, uint8_t first_byte, const uint8_t *payload, size_t n,
                       const uint8_t *key);
long picows_send_frame_in(int fd, uint8_t *frame, uint8_t first_byte,
                          const uint8_t *payload, size_t n, const uint8_t *key);
"""

C_SOURCE = '#include "mask.h"\n#include "header.h"\n'


def make_builder(root: Optional[str]) -> FFI:
    """An FFI builder with source paths relative to ``root`` (None: absolute)."""
    builder = FFI()
    builder.cdef(CDEF)
    builder.set_source(
        "_picows_accel._cffi",
        C_SOURCE,
        sources=[_path("mask.c", root), _path("header.c", root)],
        include_dirs=[_path(".", root)],
        depends=[_path("mask.h", root), _path("header.h", root)],
        # A failed compile is a warning, not an error: the install goes on pure Python.
        optional=True,
    )
    return builder


ffibuilder = make_builder(os.getcwd())

if __name__ == "__main__":
    # In-tree build for development: compile in a scratch directory, then put only
    # the module next to the sources (src/_picows_accel/_cffi.*.so).
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as _tmp:
        _module = make_builder(None).compile(tmpdir=_tmp, verbose=True)
        print("copying", shutil.copy(_module, _HERE))
