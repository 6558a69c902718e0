"""The Sans-I/O core (URLs, handshake, frames, close, masking, types) imports no asyncio.

``import picows.<sub>`` always runs ``picows/__init__.py``, which pulls in the asyncio
layer, so the check runs in a fresh interpreter where ``picows`` is a bare package
object whose ``__path__`` points at the real sources: only the submodules named here
(and whatever *they* import) get loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import picows

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
]
ASYNC_MODULES = ["_protocol", "_transport", "_listener", "_api"]

SCRIPT = textwrap.dedent(
    """
    import importlib, json, sys, types

    config = json.loads(sys.argv[1])
    sys.path[:0] = config["path"]
    assert "asyncio" not in sys.modules, "the interpreter itself loaded asyncio"
    package = types.ModuleType("picows")
    package.__path__ = [config["package_dir"]]
    sys.modules["picows"] = package
    for name in config["modules"]:
        importlib.import_module("picows." + name)

    # The core must also *work* without the asyncio layer.
    from picows._frames import FrameReader, encode_frame
    reader = FrameReader(is_client=False)
    reader.feed_data(encode_frame(1, b"sans-io", mask_key=b"\\x01\\x02\\x03\\x04"))
    assert reader.next_frame().get_payload_as_bytes() == b"sans-io"
    from picows._url import parse_url
    assert parse_url("ws://example.com/x").port == 80

    print(json.dumps({
        "asyncio": sorted(m for m in sys.modules if m == "asyncio" or m.startswith("asyncio.")),
        "picows": sorted(m for m in sys.modules if m.startswith("picows")),
    }))
    """
)


def run_probe(modules: list[str]) -> dict[str, list[str]]:
    """Import ``picows.<name>`` for each name in a fresh interpreter; report sys.modules."""
    config = {
        "path": [p for p in sys.path if p],
        "package_dir": next(iter(picows.__path__)),
        "modules": modules,
    }
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, list[str]] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


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
