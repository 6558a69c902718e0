"""``python -m picows``, run as a user would: in subprocesses, over real loopback sockets."""

from __future__ import annotations

import http.server
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TIMEOUT = 30  # seconds; a bound, never a synchronisation device


def picows_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "picows", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        **kwargs,
    )


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A ``python -m picows serve`` subprocess and the URL it announced."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "picows", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            self.first_line = lines.get(timeout=TIMEOUT).rstrip("\n")
        except queue.Empty:
            self.stop(signal.SIGKILL)
            raise
        assert self.first_line.startswith("serving on "), self.first_line
        self.url = self.first_line.removeprefix("serving on ")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def cli_server() -> Iterator[Server]:
    server = Server()
    try:
        yield server
    finally:
        server.stop()


def test_serve_announces_its_url_first(cli_server: Server) -> None:
    assert cli_server.url.startswith("ws://127.0.0.1:")
    assert cli_server.url.endswith("/")
    assert int(cli_server.url.rsplit(":", 1)[1].rstrip("/")) > 0


def test_client_through_a_pipe_echoes_text_and_closes(cli_server: Server) -> None:
    result = picows_cli("client", cli_server.url, input="hello\nworld\n\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["< TEXT hello", "< TEXT world", "< TEXT ", "< CLOSE 1000"]


def test_client_binary_prints_size_and_hex(cli_server: Server) -> None:
    result = picows_cli("client", "--binary", cli_server.url, input="\x01\x02\x03\x04\x05\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "< BINARY 5 bytes: 0102030405"


def test_client_sends_extra_headers(tmp_path: Path) -> None:
    seen: queue.Queue[str] = queue.Queue()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.put(self.headers.get("X-Token", ""))
            self.send_error(403)

        def log_message(self, *args: Any) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            port = httpd.server_address[1]
            result = picows_cli(
                "client", "--header", "X-Token: s3cret", f"ws://127.0.0.1:{port}/", input=""
            )
        finally:
            httpd.shutdown()
    assert seen.get(timeout=TIMEOUT) == "s3cret"
    # A refused upgrade is a handshake failure: exit 1, status on one stderr line.
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "python -m picows client: error: handshake failed: HTTP 403 Forbidden"
    ]


def test_serve_sigint_exits_130() -> None:
    server = Server()
    assert server.stop(signal.SIGINT) == 130


def test_serve_sigterm_exits_0() -> None:
    assert Server().stop(signal.SIGTERM) == 0


def test_wss_serve_and_client(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server = Server("--cert", str(tmp_path / "server.pem"))
    try:
        assert server.url.startswith("wss://127.0.0.1:")
        trusted = picows_cli(
            "client", "--cafile", str(tmp_path / "ca.pem"), server.url, input="a\n"
        )
        assert trusted.returncode == 0, trusted.stderr
        assert trusted.stdout.splitlines()[0] == "< TEXT a"
        insecure = picows_cli("client", "--insecure", server.url, input="b\n")
        assert insecure.returncode == 0, insecure.stderr
        assert insecure.stdout.splitlines()[0] == "< TEXT b"
        # The system CAs don't know the test CA: a one-line TLS error, exit 1.
        untrusted = picows_cli("client", server.url, input="c\n")
        assert untrusted.returncode == 1
        assert "TLS error" in untrusted.stderr
        assert len(untrusted.stderr.strip().splitlines()) == 1
    finally:
        server.stop()


def test_info() -> None:
    result = picows_cli("info")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("picows ")
    keys = [line.split(":", 1)[0] for line in lines[1:]]
    assert keys == ["backend", "interpreter", "platform", "uvloop", "aiofastnet", "python-socks"]
    expected = "python" if os.environ.get("PICOWS_NO_EXTENSIONS") == "1" else None
    if expected is not None:
        assert lines[1] == "backend: python"


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "ws://", "ws://127.0.0.1:99999/"])
def test_bad_url_is_a_usage_error(url: str) -> None:
    result = picows_cli("client", url, input="")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("python -m picows client: error: invalid URL: ")


def test_missing_argument_is_a_usage_error() -> None:
    result = picows_cli("client")
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_refused_connection() -> None:
    url = f"ws://127.0.0.1:{free_port()}/"
    result = picows_cli("client", url, input="")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"python -m picows client: error: cannot connect to {url}: connection refused"
    )


def test_proxy_error() -> None:
    proxy = f"http://127.0.0.1:{free_port()}"
    result = picows_cli("client", "--proxy", proxy, "ws://127.0.0.1:9/", input="")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("python -m picows client: error: proxy error: proxy ")


def test_bench_reports_both_backends() -> None:
    result = picows_cli("bench", "--duration", "0.3", "--sizes", "64", "4096")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    legs = [line for line in lines if not line.startswith(" ")][1:]
    assert len(legs) == 2
    assert legs[0].startswith("pure Python (backend python")
    assert legs[1].startswith("accelerated (backend ")
    rates = [line.split() for line in lines if line.startswith(" ")]
    assert [row[0] for row in rates] == ["64", "4096", "64", "4096"]
    assert all(float(row[2].replace(",", "")) > 0 for row in rates)
