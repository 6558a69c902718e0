"""The Sans-I/O core (URLs, handshake, frames, close, masking, types) imports no asyncio.

``import picows.<sub>`` always runs ``picows/__init__.py``, which pulls in the asyncio
layer, so the check runs in a fresh interpreter where ``picows`` is a bare package
object whose ``__path__`` points at the real sources: only the submodules named here
(and whatever *they* import) get loaded.
"""

from __future__ import annotations

import ast
from pathlib import Path

import picows
from helpers import run_probe

SANS_IO_MODULES = [
    "_types",
    "_exceptions",
    "_mask",
    "_backend",
    "_header",
    "_close",
    "_frames",
    "_url",
    "_http11",
    "_handshake",
    "_messages",
    "_connection",
    "_proxy",
]
IO_MODULES = {"asyncio", "socket", "ssl", "selectors"}
ASYNC_MODULES = ["_protocol", "_transport", "_listener", "_api"]


def test_sans_io_core_does_not_import_asyncio() -> None:
    report = run_probe(SANS_IO_MODULES)
    assert report["asyncio"] == [], f"Sans-I/O modules imported {report['asyncio']}"
    loaded = set(report["picows"])
    assert {"picows." + name for name in SANS_IO_MODULES} <= loaded
    # The bare package really kept the asyncio layer out.
    assert not loaded & {"picows." + name for name in ASYNC_MODULES}


def test_probe_notices_asyncio() -> None:
    """Control: the same harness does see asyncio when a module imports it."""
    report = run_probe([*SANS_IO_MODULES, "_protocol"])
    assert "asyncio" in report["asyncio"]


def test_sans_io_modules_import_no_io_module_themselves() -> None:
    """h11's contract, checked in the source: none of these imports asyncio, socket, ssl
    or selectors, not even inside a function."""
    package = Path(next(iter(picows.__path__)))
    for name in SANS_IO_MODULES:
        tree = ast.parse((package / f"{name}.py").read_text(encoding="utf-8"))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
        assert not imported & IO_MODULES, f"picows.{name} imports {imported & IO_MODULES}"
