"""``picows.version``: upstream picows' module path for the package version."""

from __future__ import annotations

__all__ = ["__author__", "__version__"]

__version__ = "0.1.0"
__author__ = "picows pure-Python contributors"
