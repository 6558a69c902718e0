"""The real peers the system tests need (Chromium, Node's ``ws``, nginx), and whether
they are here.

A test whose peer is missing skips, naming what to install; with ``CI`` set it fails
instead (``test_interop_tools_present``), so CI cannot skip them silently.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
from pathlib import Path

import pytest

__all__ = ["CHROMIUM", "CHROMIUM_FLAGS", "NODE_DIR", "missing_tools", "require"]

CHROMIUM = "/usr/bin/chromium"
NODE_DIR = Path(__file__).resolve().parent / "node"
CHROMIUM_FLAGS = [
    "--no-sandbox",  # required as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def missing_tools() -> dict[str, str]:
    """Tool -> how to get it, for every interop peer not available here."""
    missing: dict[str, str] = {}
    if platform.python_implementation() == "CPython":  # playwright has no PyPy wheels
        if importlib.util.find_spec("playwright") is None:
            missing["playwright"] = "pip install playwright (the test extra on CPython)"
        if not os.access(CHROMIUM, os.X_OK):
            missing["chromium"] = "apt-get install chromium"
    if shutil.which("node") is None:
        missing["node"] = "apt-get install nodejs npm"
    elif not (NODE_DIR / "node_modules" / "ws").is_dir():
        missing["npm ws"] = f"npm ci --prefix {NODE_DIR}"
    if shutil.which("nginx") is None:
        missing["nginx"] = "apt-get install nginx"
    return missing


def require(*tools: str) -> None:
    if platform.python_implementation() != "CPython" and {"playwright", "chromium"} & set(tools):
        pytest.skip("playwright has no wheels for this interpreter (CPython only)")
    missing = missing_tools()
    for tool in tools:
        if tool in missing:
            pytest.skip(f"{tool} not available: {missing[tool]}")
