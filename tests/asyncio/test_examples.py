"""Every example in examples/ runs to completion (or, for servers, serves a real client)."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT = 30  # seconds; each example finishes in well under one

# Self-contained examples and a line each must print.
SELF_CONTAINED = {
    "echo_demo.py": "closed:",
    "echo_client.py": "echoed TEXT of 70000 bytes",
    "async_iteration.py": "iteration ended after 3 messages",
    "fragmented_messages.py": "3 fragments: Hello, fragmented world",
    "custom_ping_pong.py": "server got keep-alive ping #3",
    "roundtrip_time.py": "10 round trips over loopback:",
    "backpressure.py": "consumer: got all 200 chunks",
    "health_check.py": "GET /elsewhere -> 404",
    "broadcast_server.py": "client 4 got b'hello, everyone'",
    "reconnecting_client.py": "client: disconnected after session 2",
    "graceful_shutdown.py": "client 2: closed with 1001 (GOING_AWAY)",
    "subprotocol.py": "offering only 'mqtt': refused with 400",
    "wss_echo.py": "echo: b'secret hello'",
}


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.mark.parametrize("name", sorted(SELF_CONTAINED))
def test_example_runs(name: str) -> None:
    if name == "wss_echo.py":
        pytest.importorskip("trustme")
    result = run_example(name)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith(SELF_CONTAINED[name]) for line in lines), result.stdout


def test_every_example_is_tested() -> None:
    conformance = {"conforming_echo_client.py", "conforming_echo_server.py"}  # tested elsewhere
    # Run with real nginx and Redis by tests/system/test_workers.py, test_redis_broadcast.py.
    system = {"multiprocess_server.py", "broadcast_redis.py"}
    present = {path.name for path in EXAMPLES.glob("*.py")} - conformance - system
    assert present == set(SELF_CONTAINED) | {"echo_server.py"}


def test_echo_server_with_echo_client() -> None:
    server = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "echo_server.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        stdout = server.stdout
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
        first = lines.get(timeout=TIMEOUT).strip()
        assert first.startswith("listening on ws://127.0.0.1:"), first
        url = first.removeprefix("listening on ")

        result = run_example("echo_client.py", "--url", url)
        assert result.returncode == 0, result.stderr
        assert "echoed BINARY of 5 bytes" in result.stdout.splitlines()
        assert lines.get(timeout=TIMEOUT).startswith("client connected from ")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            assert server.wait(TIMEOUT) == 0
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()


def test_wss_echo_with_certificate_files(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    result = run_example(
        "wss_echo.py", "--cert", str(tmp_path / "server.pem"), "--cafile", str(tmp_path / "ca.pem")
    )
    assert result.returncode == 0, result.stderr
    assert "echo: b'secret hello'" in result.stdout.splitlines()
