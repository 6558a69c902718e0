"""Shared fixtures: both backends, event loops, TLS certificates, echo servers.

Every test runs once per backend that exists here (``backend``: pure Python, and the
cffi accelerator where it is built), as multidict runs its tests over both of its
implementations; ``PICOWS_NO_EXTENSIONS=1`` leaves only the pure one.  Async tests also
run on each event loop: the stock asyncio loop, and uvloop where it exists;
``PICOWS_TEST_LOOPS=asyncio`` (comma-separated names) narrows that, as tox's quick env
does.  Tests marked ``once_per_backend`` run once per backend only, each backend on a
different loop; ``PICOWS_TEST_PAIRING=diagonal`` treats every test so.

Where aiofastnet is installed (CPython), connections use it by default: it stays
visible to the cffi backend's runs and is hidden from the python backend's, so one run
covers both connection paths, as separate pure and accelerated installs used to.

Tools that tests need (daemons, browsers, Node) are found by ``tools.py``; the
``needs`` marker skips a test whose tool is missing (fails it when ``CI`` is set), and
the run ends with one line saying what was skipped for want of what.  Helpers live in
``helpers.py``.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any, Optional

import pytest
import pytest_asyncio.plugin

import picows

# tests/ is on sys.path (this file's folder): the helper modules import as top-level.
import tools
from helpers import ACCEL, ACCEL_IMPORT_ERROR, EchoListener, NetMode
from picows import _backend

try:
    import uvloop
except ImportError:  # PyPy, Windows
    uvloop = None  # type: ignore[assignment]


BACKENDS = ["python"] + (["cffi"] if _backend.CFFI is not None else [])


def _loop_factories() -> dict[str, Any]:
    """The event loops async tests run on: PICOWS_TEST_LOOPS's, of those that exist."""
    factories: dict[str, Any] = {"asyncio": asyncio.new_event_loop}
    if uvloop is not None:
        factories["uvloop"] = uvloop.new_event_loop
    wanted = os.environ.get("PICOWS_TEST_LOOPS", "").replace(",", " ").split()
    unknown = set(wanted) - {"asyncio", "uvloop"}
    if unknown:
        raise pytest.UsageError(f"PICOWS_TEST_LOOPS: unknown loops {sorted(unknown)}")
    if wanted:
        factories = {name: factory for name, factory in factories.items() if name in wanted}
    if not factories:
        raise pytest.UsageError(f"PICOWS_TEST_LOOPS={wanted}: none of them exists here")
    return factories


LOOPS = _loop_factories()
# PICOWS_TEST_PAIRING=diagonal: every test runs as once_per_backend ones do (backend i
# on loop i), halving the async variants; tox's full legs but two use it (tox.ini).
DIAGONAL = os.environ.get("PICOWS_TEST_PAIRING", "cross") == "diagonal"


def pytest_report_header(config: pytest.Config) -> list[str]:
    absent = tools.missing()
    return [
        f"picows backends: {', '.join(BACKENDS)} (default {picows.BACKEND}); "
        f"interpreter: {sys.implementation.name}; event loops: {', '.join(LOOPS)}"
        + (" (paired with the backends: PICOWS_TEST_PAIRING=diagonal)" if DIAGONAL else ""),
        "missing tools: "
        + (", ".join(f"{name} ({how})" for name, how in absent.items()) if absent else "none")
        + (" (CI is set: their tests fail)" if absent and tools.in_ci() else ""),
    ]


@pytest.fixture(params=BACKENDS, autouse=True)
def backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[_backend.Backend]:
    """Connections made during the test use this backend (picows._backend.select).

    The python backend's runs also hide aiofastnet, so that its connections use the
    loop's own transports, while the cffi backend's use aiofastnet's where installed.
    """
    if request.param == "python":
        monkeypatch.setitem(sys.modules, "aiofastnet", None)  # type: ignore[arg-type]
    with _backend.select(request.param) as chosen:
        yield chosen


if hasattr(pytest_asyncio.plugin, "PytestAsyncioSpecs") and hasattr(
    pytest_asyncio.plugin.PytestAsyncioSpecs, "pytest_asyncio_loop_factories"
):

    def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Any:
        """Every async test runs once per event loop implementation."""
        return LOOPS

else:  # pytest-asyncio < 1.3 (PyPy 3.9 gets an older one)

    @pytest.fixture(scope="session", params=list(LOOPS))
    def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
        """Every async test runs once per event loop implementation."""
        if request.param == "uvloop":
            return uvloop.EventLoopPolicy()
        return asyncio.DefaultEventLoopPolicy()


def _loop_of(item: pytest.Item) -> Optional[str]:
    """The event loop an async test item runs on (None for a synchronous test)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "event_loop_policy" in params:  # pytest-asyncio < 1.3
        return str(params["event_loop_policy"])
    factory = params.get("_asyncio_loop_factory")
    names = [name for name, candidate in LOOPS.items() if candidate is factory]
    if names:
        return names[0]
    # A single loop may not appear as a parameter at all.
    return next(iter(LOOPS)) if len(LOOPS) == 1 else None


def _left_out(item: pytest.Item) -> bool:
    """Whether this variant is one the backend and loop pairing leaves out."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return False
    backend = callspec.params.get("backend")
    if backend == "python":
        # aiofastnet is hidden from the python backend's runs (see ``backend``): its
        # variants (a parameter named "aiofastnet", or the marker) run on cffi's.
        if "aiofastnet" in callspec.id.split("-") or item.get_closest_marker("aiofastnet"):
            return True
    if DIAGONAL or item.get_closest_marker("once_per_backend") is not None:
        loop = _loop_of(item)
        if backend in BACKENDS and loop is not None:
            loops = list(LOOPS)
            return loop != loops[BACKENDS.index(backend) % len(loops)]
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselects the variants nobody needs: aiofastnet's on the python backend, and
    all but one per backend of ``once_per_backend`` tests (backend i on loop i, modulo
    the loops there are), so heavy tests cover every backend and loop once."""
    keep, dropped = [], []
    for item in items:
        (dropped if _left_out(item) else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.needs("tool", ...)``: decided by tools.need, before any fixture."""
    for marker in item.iter_markers("needs"):
        tools.need(*marker.args)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(
    terminalreporter: Any, exitstatus: int, config: pytest.Config
) -> Iterator[None]:
    """One line, after pytest's short summary: the tests skipped because a tool is
    missing, and what to install."""
    yield
    counts: dict[str, int] = {}
    tests = 0
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        if isinstance(longrepr, (tuple, list)) and len(longrepr) == 3:
            names = tools.parse_skip_reason(str(longrepr[2]))
            tests += bool(names)
            for name in names:
                counts[name] = counts.get(name, 0) + 1
    if counts:
        listed = ", ".join(
            f"{name} ({tools.TOOLS[name].install}): {number}"
            for name, number in sorted(counts.items(), key=lambda item: -item[1])
        )
        terminalreporter.write_line(f"{tests} tests skipped for missing tools: {listed}")


@pytest.fixture(scope="session")
def tls_certs() -> Any:
    """A test CA and a server certificate for 127.0.0.1, localhost and ::1."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    return ca, ca.issue_cert("127.0.0.1", "localhost", "::1")


@pytest.fixture(scope="session")
def server_ssl_context(tls_certs: Any) -> ssl.SSLContext:
    _, cert = tls_certs
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_ssl_context(tls_certs: Any) -> ssl.SSLContext:
    ca, _ = tls_certs
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return context


@pytest.fixture(params=["tcp", "tls"])
def net_mode(
    request: pytest.FixtureRequest,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> NetMode:
    """Parametrises a test over plain TCP (ws://) and TLS (wss://)."""
    if request.param == "tcp":
        return NetMode(False)
    return NetMode(True, server_ssl_context, client_ssl_context)


@pytest.fixture(scope="session")
def accel() -> ModuleType:
    """``_picows_accel``; its tests are skipped where it is not built (the pure-only
    install), and fail when PICOWS_REQUIRE_EXTENSIONS says it must be."""
    if ACCEL is None:
        tools.cannot_run(
            f"_picows_accel is not built ({ACCEL_IMPORT_ERROR})",
            required=_backend.env_flag("PICOWS_REQUIRE_EXTENSIONS"),
        )
    return ACCEL


@pytest.fixture
async def echo_server() -> AsyncIterator[str]:
    """A plain-TCP picows echo server; yields its ws:// URL."""
    server = await picows.ws_create_server(lambda request: EchoListener(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/"
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def wss_echo_server(server_ssl_context: ssl.SSLContext) -> AsyncIterator[str]:
    """A TLS picows echo server; yields its wss:// URL."""
    server = await picows.ws_create_server(
        lambda request: EchoListener(), "127.0.0.1", 0, ssl=server_ssl_context
    )
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"wss://127.0.0.1:{port}/"
    finally:
        server.close()
        await server.wait_closed()
