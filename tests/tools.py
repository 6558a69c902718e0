"""Every real peer and service the tests use, how to find it, and what to install.

The one place that decides what happens to a test whose tool is missing:

* outside CI, the test is skipped, and the reason names what to install
  (``not installed: tinyproxy (apt install tinyproxy)``); the end of the run prints
  one line listing what was skipped for missing tools (``conftest.py``);
* with ``CI`` set (``CI=true``, as ``.ci/run`` runs), the same test fails instead:
  CI installs everything, so nothing real may be skipped there silently;
* a tool that cannot exist for this interpreter (playwright has no PyPy wheels) is
  skipped everywhere, CI included, saying why.

A test says what it needs with the marker ``@pytest.mark.needs("node", "npm ws")``
(checked before its fixtures run); a fixture that starts a tool asks for its path with
:func:`executable`, which decides the same way.  An executable counts as installed
when it is on ``PATH`` (Debian puts ``danted`` and ``nginx`` in ``/usr/sbin``, which a
normal user's ``PATH`` may lack).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NoReturn, Optional

import pytest

__all__ = [
    "CHROMIUM_FLAGS",
    "NODE_DIR",
    "SKIP_PREFIX",
    "TOOLS",
    "Tool",
    "executable",
    "in_ci",
    "missing",
    "need",
    "parse_skip_reason",
]

NODE_DIR = Path(__file__).resolve().parent / "node"
CHROMIUM_FLAGS = [
    "--no-sandbox",  # required as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: Every skip for a missing tool starts with this (the closing summary counts them).
SKIP_PREFIX = "not installed: "


def in_ci() -> bool:
    """Whether this run is CI's, where a missing tool is a failure."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _on_path(name: str) -> Callable[[], Optional[str]]:
    return lambda: shutil.which(name)


def _python_module(name: str) -> Callable[[], Optional[str]]:
    def find() -> Optional[str]:
        spec = importlib.util.find_spec(name)
        return None if spec is None else (spec.origin or name)

    return find


def _node_module(name: str) -> Callable[[], Optional[str]]:
    def find() -> Optional[str]:
        path = NODE_DIR / "node_modules" / name
        return str(path) if (path / "package.json").is_file() else None

    return find


def _cpython_only(what: str) -> Callable[[], Optional[str]]:
    def why() -> Optional[str]:
        if platform.python_implementation() == "CPython":
            return None
        return f"{what} has no wheels for {platform.python_implementation()} (CPython only)"

    return why


@dataclass(frozen=True)
class Tool:
    """A real peer or service: where it is found, and how a newcomer gets it."""

    name: str
    #: The tool's path (or module origin) when installed, else None.
    find: Callable[[], Optional[str]]
    #: What to run to get it, shown in the skip reason and the closing summary.
    install: str
    #: Why it cannot exist for this interpreter at all (skipped even in CI), or None.
    unavailable: Callable[[], Optional[str]] = lambda: None


#: Every tool a test needs, by the name tests use in ``needs(...)`` and ``executable()``.
TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in [
        # HTTP CONNECT proxy, with and without Basic auth (tests/proxies.py).
        Tool("tinyproxy", _on_path("tinyproxy"), "apt install tinyproxy"),
        # SOCKS4 and SOCKS5 proxy (in /usr/sbin).
        Tool("danted", _on_path("danted"), "apt install dante-server"),
        # SOCKS5 proxy with user/password.
        Tool("microsocks", _on_path("microsocks"), "apt install microsocks"),
        # Reverse proxy in front of picows (in /usr/sbin).
        Tool("nginx", _on_path("nginx"), "apt install nginx"),
        # examples/broadcast_redis.py's broker, and its Python client.
        Tool("redis-server", _on_path("redis-server"), "apt install redis-server"),
        Tool("redis", _python_module("redis"), "pip install redis (in the test extra)"),
        # Node's ws package as client and server.
        Tool("node", _on_path("node"), "apt install nodejs npm"),
        Tool("npm ws", _node_module("ws"), "npm ci --prefix tests/node"),
        # A real browser, driven by playwright (never a downloaded browser).
        Tool("chromium", _on_path("chromium"), "apt install chromium"),
        Tool(
            "playwright",
            _python_module("playwright"),
            "pip install 'picows[interop]'",
            _cpython_only("playwright"),
        ),
    ]
}


def missing(*names: str) -> dict[str, str]:
    """Tool -> how to install it, for each of ``names`` (default: every tool) that is
    missing here, leaving out those that cannot exist for this interpreter."""
    found: dict[str, str] = {}
    for name in names or tuple(TOOLS):
        tool = TOOLS[name]
        if tool.unavailable() is None and tool.find() is None:
            found[name] = tool.install
    return found


def cannot_run(reason: str, *, required: bool) -> NoReturn:
    """The one way a test that cannot run here ends: it fails when what it lacks is
    ``required`` (by CI, or by the environment), and is skipped, saying why, when not."""
    if required:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def need(*names: str) -> None:
    """Skip (or, in CI, fail) the running test unless every tool in ``names`` is here."""
    for name in names:
        why = TOOLS[name].unavailable()
        if why is not None:
            cannot_run(why, required=False)  # cannot exist here at all, CI or not
    absent = missing(*names)
    if not absent:
        return
    listed = ", ".join(f"{name} ({install})" for name, install in absent.items())
    if in_ci():
        cannot_run(f"CI is set and a tool is missing: {listed}", required=True)
    cannot_run(SKIP_PREFIX + listed, required=False)


def executable(name: str) -> str:
    """The path of tool ``name``, after :func:`need` has decided that it is here."""
    need(name)
    path = TOOLS[name].find()
    assert path is not None
    return path


def parse_skip_reason(reason: str) -> list[str]:
    """The tools named by a skip reason that :func:`need` made, else []."""
    if SKIP_PREFIX not in reason:
        return []
    return [name for name, tool in TOOLS.items() if f"{name} ({tool.install})" in reason]
