"""pytest plugin for running upstream picows' tests against this package.

Loaded by ``run_upstream.py`` with ``-p upstream_plugin``.  It

* refuses to run unless ``import picows`` is this package (never upstream's source);
* deselects the test that needs the internet, and the variants of an event loop or
  transport that does not exist for this interpreter (uvloop and aiofastnet have no
  PyPy build), saying so;
* marks as expected failures (strict) the tests in :data:`EXPECTED_FAILURES`, where
  upstream asserts what the RFCs forbid (docs/migration.md explains each one);
* prints ``upstream picows <version> tests: N passed, M failed, ...`` at the end.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

#: Upstream tests that assert behaviour the RFCs call wrong, as node id patterns (regular
#: expressions), with the section that justifies ours and whether the test can run (one
#: would wait forever).  At most four entries; never a wording difference.
EXPECTED_FAILURES: dict[str, tuple[str, bool]] = {
    r"tests/test_handshake_parsing\.py::test_validate_upgrade_request\[\w+-[78]\]$": (
        "RFC 6455 4.1 and 4.2.2: the version is 13; a server answers others (the hybi "
        "drafts 7 and 8) with 426 Upgrade Required",
        True,
    ),
    r"tests/test_handshake_parsing\.py::test_parse_upgrade_response_rejects_invalid_status_line"
    r"\[HTTP/1\.1 101 \\xff-": (
        "RFC 9112 4: a reason phrase may hold obs-text (bytes 0x80-0xFF); it is accepted",
        True,
    ),
    r"tests/test_proxy\.py::test_data_received_rejects_non_success_status\[199\]$": (
        "RFC 9110 15.2: a 1xx answer is interim and the final answer is awaited (bounded "
        "by the handshake timeout); the test would wait forever, so it is not run",
        False,
    ),
}

#: Tests that cannot run here at all, by node id substring, with why.
NEEDS_INTERNET = {"test_proxy_dns_resolution": "resolves a public host name (needs the internet)"}

_MISSING_LOOP_STUBS: list[str] = []


def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


def pytest_configure(config: pytest.Config) -> None:
    import picows

    origin = Path(picows.__file__).resolve()
    scratch = Path(str(config.rootpath)).resolve()
    if scratch in origin.parents or not hasattr(picows, "BACKEND"):
        raise pytest.UsageError(f"picows must be this package, installed; found {origin}")
    config.stash[_ORIGIN] = f"{origin.parent} (backend {picows.BACKEND})"
    # Upstream's fixtures import uvloop at module level on every non-Windows system.
    # Where it does not exist (PyPy), a placeholder lets the modules load; every
    # uvloop-parametrised test is then deselected below, never run on another loop.
    if _missing("uvloop"):
        sys.modules["uvloop"] = types.ModuleType("uvloop")
        _MISSING_LOOP_STUBS.append("uvloop")
    if sys.implementation.name == "pypy":
        _accept_path_certificates()


def _accept_path_certificates() -> None:
    """PyPy 3.9's ssl.SSLContext.load_cert_chain takes str paths only; upstream's
    fixtures pass pathlib.Path, which CPython accepts (any path-like)."""
    import os
    import ssl

    load = ssl.SSLContext.load_cert_chain

    def load_cert_chain(
        self: ssl.SSLContext, certfile: Any, keyfile: Any = None, password: Any = None
    ) -> None:
        key = None if keyfile is None else os.fspath(keyfile)
        load(self, os.fspath(certfile), key, password)

    ssl.SSLContext.load_cert_chain = load_cert_chain  # type: ignore[method-assign]


_ORIGIN = pytest.StashKey[str]()
_DESELECTED = pytest.StashKey[dict[str, int]]()


def _deselect_reason(item: pytest.Item) -> str | None:
    for name, reason in NEEDS_INTERNET.items():
        if name in item.nodeid:
            return reason
    params = getattr(item, "callspec", None)
    ids = set(params.id.split("-")) if params is not None else set()
    if "uvloop" in ids and "uvloop" in _MISSING_LOOP_STUBS:
        return f"uvloop does not exist for {sys.implementation.name}"
    if "aiofastnet" in ids and _missing("aiofastnet"):
        if sys.implementation.name != "cpython":
            return f"aiofastnet does not exist for {sys.implementation.name}"
        return "aiofastnet is not installed (tox's full legs install it)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, dropped = [], []
    reasons: dict[str, int] = {}
    for item in items:
        reason = _deselect_reason(item)
        if reason is not None:
            dropped.append(item)
            reasons[reason] = reasons.get(reason, 0) + 1
            continue
        for pattern, (why, run) in EXPECTED_FAILURES.items():
            if re.search(pattern, item.nodeid):
                item.add_marker(pytest.mark.xfail(reason=why, strict=True, run=run))
        keep.append(item)
    config.stash[_DESELECTED] = reasons
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist, each worker collects (and deselects): it tells the controller."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["upstream_deselected"] = session.config.stash.get(_DESELECTED, {})


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the xdist controller: every worker deselected the same tests; keep one's."""
    reasons = getattr(node, "workeroutput", {}).get("upstream_deselected")
    if reasons:
        node.config.stash[_DESELECTED] = reasons


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    stats = terminalreporter.stats
    counts = {key: len(stats.get(key, [])) for key in ("passed", "failed", "error", "xfailed")}
    counts["xpassed"] = len(stats.get("xpassed", []))
    terminalreporter.write_sep("=", "upstream picows 2.3.1 test suite")
    terminalreporter.write_line(f"picows under test: {config.stash.get(_ORIGIN, '?')}")
    for reason, number in config.stash.get(_DESELECTED, {}).items():
        terminalreporter.write_line(f"deselected {number}: {reason}")
    terminalreporter.write_line(
        f"{counts['passed']} passed, {counts['failed'] + counts['error']} failed, "
        f"{counts['xfailed']} expected failures (RFC 6455), {counts['xpassed']} unexpectedly passed"
    )
