"""Build picows, with the optional cffi accelerator when it can be built.

Everything declarative lives in pyproject.toml; this file exists because cffi's
``cffi_modules`` has no pyproject key.  ``PICOWS_NO_EXTENSIONS=1`` (or
``PICOWS_BUILD_PURE=1``) skips the accelerator and yields a ``py3-none-any``
wheel.  Without a working C compiler the extension is skipped with a warning
(``optional=True`` in src/_picows_accel/_build.py) and picows runs pure Python.
"""

from __future__ import annotations

import os
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))

# Added only for gcc/clang-like compilers; MSVC keeps its own defaults (/Ox already).
GCC_LIKE_FLAGS = ["-O3"]

# The compiled module imports _cffi_backend at run time; PyPy has it built in.
CFFI_RUNTIME = "cffi>=1.15; platform_python_implementation != 'PyPy'"
# pyproject.toml lists "dependencies" as dynamic: this is the one place they live.
BASE_REQUIRES = ["multidict>=6.0"]


def _env_flag(name: str) -> bool:
    # Same spelling rules as src/picows/_backend.py.
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _want_extension() -> bool:
    if _env_flag("PICOWS_NO_EXTENSIONS") or _env_flag("PICOWS_BUILD_PURE"):
        return False
    try:
        import cffi  # noqa: F401
    except ImportError:
        print("warning: cffi is not installed; building picows without its C accelerator")
        return False
    return True


def _install_requires(with_extension: bool) -> list[str]:
    """Runtime dependencies: pyproject.toml declares them dynamic so that only a
    build that carries the compiled accelerator asks for cffi."""
    return [*BASE_REQUIRES, *([CFFI_RUNTIME] if with_extension else [])]


class BuildExt(build_ext):
    """Add optimisation flags, but only where the compiler understands them."""

    def build_extensions(self) -> None:
        if self.compiler.compiler_type in ("unix", "mingw32", "cygwin"):
            for ext in self.extensions:
                ext.extra_compile_args = [*ext.extra_compile_args, *GCC_LIKE_FLAGS]
                # Recorded in the binary for _picows_accel.BACKEND_INFO.
                ext.define_macros = [
                    *ext.define_macros,
                    ("PICOWS_CFLAGS", '"' + " ".join(GCC_LIKE_FLAGS) + '"'),
                ]
        super().build_extensions()


# The C sources ship in the sdist (MANIFEST.in) but have no use inside a wheel.
kwargs: dict[str, Any] = {"exclude_package_data": {"_picows_accel": ["*.c", "*.h"]}}
WITH_EXTENSION = _want_extension()
if WITH_EXTENSION:
    kwargs["cffi_modules"] = ["src/_picows_accel/_build.py:ffibuilder"]
    kwargs["cmdclass"] = {"build_ext": BuildExt}
kwargs["install_requires"] = _install_requires(WITH_EXTENSION)

setup(**kwargs)
