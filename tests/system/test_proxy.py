"""ws_connect through HTTP, HTTPS, SOCKS4 and SOCKS5 proxies: real daemons, no mocks.

The daemons (tinyproxy, danted, microsocks) and the fakes come from ``proxies.py``
(a missing daemon skips its tests, naming the package, or fails them in CI: tools.py);
the servers at the end of the tunnels are picows' own echo servers (``conftest.py``).
The Sans-I/O part (the CONNECT request and the reading of its answer) is tested first,
by feeding bytes.
"""

from __future__ import annotations

import asyncio
import base64
import pickle
import ssl
import struct
import sys
import time
from typing import Any

import pytest

import picows
from picows import WSInvalidStatusError, WSProxyError
from picows._proxy import (
    MAX_CONNECT_RESPONSE,
    ConnectResponseReader,
    authority,
    basic_credentials,
    build_connect_request,
    proxy_display_url,
)

pytest.register_assert_rewrite("proxies")  # before the import: its asserts are tests too

from proxies import (  # noqa: E402
    PROXY_PASSWORD,
    PROXY_USER,
    QUOTED_PASSWORD,
    ProxyCase,
    RecordingHTTPProxy,
    answer_garbage,
    assert_tls_in_tls_refused,
    echo_roundtrip,
    fake_proxy,
    never_answer,
    tls_in_tls_unavailable,
)

pytest_plugins = ["proxies"]

PROXY = "http://127.0.0.1:3128"


# ---------------------------------------------------------------------------
# Sans-I/O: the CONNECT request (RFC 9110 9.3.6) and Basic credentials (RFC 7617).


def test_connect_request_uses_the_authority_form() -> None:
    assert build_connect_request("server.example", 443) == (
        b"CONNECT server.example:443 HTTP/1.1\r\nHost: server.example:443\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1:80"),
        ("::1", "[::1]:80"),
        ("fe80::1%eth0", "[fe80::1%25eth0]:80"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example:80"),
    ],
)
def test_authority_brackets_ipv6(host: str, expected: str) -> None:
    assert authority(host, 80) == expected


def test_connect_request_with_credentials() -> None:
    request = build_connect_request("::1", 8080, ("Aladdin", "open sesame"))
    assert request == (
        b"CONNECT [::1]:8080 HTTP/1.1\r\nHost: [::1]:8080\r\n"
        b"Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
    )


def test_basic_credentials_are_utf8_and_refuse_a_colon_in_the_user() -> None:
    # RFC 7617 2.1: the example of a UTF-8 user-id "test" and password "123£".
    assert basic_credentials("test", "123\u00a3") == "Basic dGVzdDoxMjPCow=="
    assert basic_credentials("user", "a:b") == "Basic " + base64.b64encode(b"user:a:b").decode()
    with pytest.raises(ValueError, match="':'"):
        basic_credentials("us:er", "pass")


def test_display_url_hides_the_password() -> None:
    proxy = picows.parse_url("socks5://us%40er:se%3Acret@[::1]:1080/", check_scheme=False)
    assert proxy_display_url(proxy) == "socks5://us%40er@[::1]:1080"
    proxy = picows.parse_url("https://proxy.example", check_scheme=False)
    assert proxy_display_url(proxy) == "https://proxy.example:443"


# ---------------------------------------------------------------------------
# Sans-I/O: reading the proxy's answer.


def test_reader_accepts_http10_and_keeps_the_tunnel_bytes() -> None:
    reader = ConnectResponseReader(PROXY)
    answer = b"HTTP/1.0 200 Connection established\r\nProxy-agent: tinyproxy/1.11.1\r\n\r\n"
    assert reader.feed(answer[:10]) is None
    assert reader.feed(answer[10:-1]) is None
    result = reader.feed(answer[-1:] + b"\x16\x03\x01")
    assert result is not None
    response, leftover = result
    assert (response.version, response.status, response.reason) == (
        b"HTTP/1.0",
        200,
        "Connection established",
    )
    assert response.is_success and response.headers["proxy-agent"] == "tinyproxy/1.11.1"
    assert leftover == b"\x16\x03\x01"


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_reader_any_2xx_is_success(status: int) -> None:
    result = ConnectResponseReader(PROXY).feed(b"HTTP/1.1 %d\r\n\r\n" % status)
    assert result is not None and result[0].is_success and result[0].reason == ""


def test_reader_skips_interim_responses_and_accepts_bare_lf() -> None:
    reader = ConnectResponseReader(PROXY)
    result = reader.feed(b"HTTP/1.1 100 Continue\n\nHTTP/1.1 407 Auth\nProxy-Authenticate: x\n\n")
    assert result is not None
    response, leftover = result
    assert (response.status, response.is_success, leftover) == (407, False, b"")
    assert response.headers["Proxy-Authenticate"] == "x"


def test_reader_is_lenient_with_header_lines() -> None:
    result = ConnectResponseReader(PROXY).feed(b"HTTP/1.1 200 OK\r\nno colon\r\n : x\r\n\r\n")
    assert result is not None and result[0].status == 200 and not result[0].headers


@pytest.mark.parametrize(
    "data",
    [b"SSH-2.0-OpenSSH\r\n", b"\x05\x00", b"HTTP/2 200\r\n\r\n", b"http/1.1 200 OK\r\n\r\n"],
)
def test_reader_fails_fast_on_garbage(data: bytes) -> None:
    reader = ConnectResponseReader(PROXY)
    with pytest.raises(WSProxyError, match="invalid") as info:
        reader.feed(data)
    assert info.value.proxy == PROXY and PROXY in str(info.value)
    with pytest.raises(WSProxyError):  # a failure is final
        reader.feed(b"HTTP/1.1 200 OK\r\n\r\n")


def test_reader_refuses_a_malformed_status_line() -> None:
    with pytest.raises(WSProxyError, match="returned an invalid response"):
        ConnectResponseReader(PROXY).feed(b"HTTP/1.1 2000 OK\r\n\r\n")


def test_reader_caps_the_answer_at_64_kib() -> None:
    reader = ConnectResponseReader(PROXY)
    assert reader.feed(b"HTTP/1.1 200 OK\r\n") is None
    line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    with pytest.raises(WSProxyError, match="headers are too large"):
        for _ in range(MAX_CONNECT_RESPONSE // len(line) + 1):
            assert reader.feed(line) is None
    ok = b"HTTP/1.1 200 OK\r\n" + line * 60 + b"\r\n"
    assert len(ok) < MAX_CONNECT_RESPONSE and ConnectResponseReader(PROXY).feed(ok) is not None


def test_reader_eof() -> None:
    reader = ConnectResponseReader(PROXY)
    reader.feed(b"HTTP/1.1 200")
    with pytest.raises(WSProxyError, match="closed the connection before replying"):
        reader.feed_eof()


def test_proxy_error_is_a_picklable_ws_error() -> None:
    error = WSProxyError(PROXY, "CONNECT x:1 refused with 403 Forbidden", 403)
    assert isinstance(error, picows.WSError)
    assert str(error) == f"proxy {PROXY}: CONNECT x:1 refused with 403 Forbidden"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.proxy, copy.message, copy.status) == (error.proxy, error.message, 403)


def test_proxy_error_is_what_upstream_code_catches() -> None:
    """Upstream raises python_socks.ProxyError for every proxy failure, HTTP ones too."""
    import python_socks  # the test extra installs it

    error = WSProxyError(PROXY, "HTTP proxy rejected connection with status 407", 407)
    assert isinstance(error, python_socks.ProxyError)
    assert error.error_code == 407
    with pytest.raises(python_socks.ProxyError, match="rejected connection with status 407"):
        raise error


# ---------------------------------------------------------------------------
# A real WebSocket through every kind of proxy.


@pytest.fixture(params=["ws", "wss"])
def target(request: pytest.FixtureRequest, client_ssl_context: ssl.SSLContext) -> Any:
    """The echo server behind the proxy (ws or wss), and the ws_connect keywords for it."""
    if request.param == "ws":
        return request.getfixturevalue("echo_server"), {}
    return request.getfixturevalue("wss_echo_server"), {"ssl_context": client_ssl_context}


async def test_echo_through_proxy(proxy_case: ProxyCase, target: Any, use_aiofastnet: bool) -> None:
    url, kwargs = target
    if tls_in_tls_unavailable(proxy_case, url, use_aiofastnet):
        await assert_tls_in_tls_refused(url, proxy_case, use_aiofastnet=use_aiofastnet, **kwargs)
        return
    transport = await echo_roundtrip(
        url, proxy=proxy_case.url, use_aiofastnet=use_aiofastnet, **kwargs, **proxy_case.kwargs
    )
    if url.startswith("wss"):
        assert transport.is_secure
    elif proxy_case.scheme != "https":  # (TLS to an https proxy is not asserted either way)
        assert not transport.is_secure


async def test_wss_to_a_host_name_through_proxy(
    proxy_case: ProxyCase, wss_echo_server: str, client_ssl_context: ssl.SSLContext
) -> None:
    # "localhost" is resolved by the proxy (HTTP CONNECT, SOCKS5) or here (SOCKS4); the
    # inner TLS session checks the certificate against "localhost", the server's name.
    url = wss_echo_server.replace("127.0.0.1", "localhost")
    if tls_in_tls_unavailable(proxy_case, url):
        await assert_tls_in_tls_refused(url, proxy_case, ssl_context=client_ssl_context)
        return
    await echo_roundtrip(
        url, proxy=proxy_case.url, ssl_context=client_ssl_context, **proxy_case.kwargs
    )


async def test_server_certificate_is_checked_inside_the_tunnel(
    tinyproxy: str, wss_echo_server: str
) -> None:
    # The default context does not trust the test CA: the inner TLS session must fail.
    with pytest.raises(ssl.SSLCertVerificationError):
        await picows.ws_connect(picows.WSListener, wss_echo_server, proxy=f"http://{tinyproxy}")


# ---------------------------------------------------------------------------
# What the client sends: authority form, Basic auth, and where names are resolved.


async def test_http_proxy_request_on_the_wire(echo_server: str) -> None:
    recorder = RecordingHTTPProxy(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
    url = echo_server.replace("127.0.0.1", "localhost")
    port = url.rsplit(":", 1)[1].strip("/")
    async with fake_proxy(recorder) as address:
        proxy = f"http://{PROXY_USER}:{QUOTED_PASSWORD}@{address}"
        with pytest.raises(WSProxyError) as info:
            await picows.ws_connect(picows.WSListener, url, proxy=proxy)
    assert info.value.status == 407 and "407 Proxy Authentication Required" in str(info.value)
    credentials = base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
    assert recorder.requests == [
        f"CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n"
        f"Proxy-Authorization: Basic {credentials}\r\n\r\n".encode()
    ]


async def _socks_request(version: int, url: str) -> bytes:
    """What the client asks a SOCKS proxy that refuses everything."""
    received = bytearray()

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if version == 5:
            # RFC 1928 3: VER NMETHODS METHODS -> VER METHOD (0: no authentication)
            greeting = await reader.readexactly(2)
            await reader.readexactly(greeting[1])
            writer.write(b"\x05\x00")
            received.extend(await reader.read(512))
            # RFC 1928 6: REP 5 = connection refused
            writer.write(b"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00")
        else:
            received.extend(await reader.read(512))
            writer.write(b"\x00\x5b\x00\x00\x00\x00\x00\x00")  # 91: rejected or failed
        await writer.drain()
        await reader.read()

    async with fake_proxy(refuse) as address:
        with pytest.raises(WSProxyError, match=f"SOCKS{version} handshake failed"):
            await picows.ws_connect(picows.WSListener, url, proxy=f"socks{version}://{address}")
    return bytes(received)


async def test_socks5_lets_the_proxy_resolve_names() -> None:
    request = await _socks_request(5, "ws://localhost:8765/")
    # RFC 1928 4: VER CMD(1: CONNECT) RSV ATYP(3: DOMAINNAME) len name port
    assert request == b"\x05\x01\x00\x03\x09localhost" + struct.pack("!H", 8765)


async def test_socks4_resolves_names_locally() -> None:
    request = await _socks_request(4, "ws://localhost:8765/")
    # SOCKS4: VN(4) CD(1) DSTPORT DSTIP USERID NUL, the address resolved here.
    assert request == b"\x04\x01" + struct.pack("!H", 8765) + bytes([127, 0, 0, 1]) + b"\x00"


# ---------------------------------------------------------------------------
# Failures: each is a WSProxyError that names the proxy, never a hang.


def _assert_names_proxy(error: WSProxyError, proxy: str) -> None:
    userinfo, at, _ = proxy.partition("//")[2].rpartition("@")
    password = userinfo.partition(":")[2] if at else ""
    shown = proxy.replace(f":{password}@", "@") if password else proxy
    assert error.proxy == shown
    assert shown in str(error)
    if password:
        assert f":{password}" not in str(error)


@pytest.mark.parametrize(
    ("fixture", "scheme", "credentials", "expected"),
    [
        ("tinyproxy_auth", "http", f"{PROXY_USER}:wrong@", "401"),  # tinyproxy: 401, not 407
        ("tinyproxy_auth", "http", "", "407 Proxy Authentication Required"),
        ("https_proxy_auth", "https", f"{PROXY_USER}:wrong@", "401"),
        ("microsocks_auth", "socks5", f"{PROXY_USER}:wrong@", "SOCKS5 handshake failed"),
        ("microsocks_auth", "socks5", "", "SOCKS5 handshake failed"),
    ],
)
async def test_wrong_credentials(
    request: pytest.FixtureRequest,
    echo_server: str,
    client_ssl_context: ssl.SSLContext,
    fixture: str,
    scheme: str,
    credentials: str,
    expected: str,
) -> None:
    proxy = f"{scheme}://{credentials}{request.getfixturevalue(fixture)}"
    kwargs = {"proxy_ssl_context": client_ssl_context} if scheme == "https" else {}
    with pytest.raises(WSProxyError, match=expected) as info:
        await picows.ws_connect(picows.WSListener, echo_server, proxy=proxy, **kwargs)
    _assert_names_proxy(info.value, proxy)


async def test_connect_refused_by_proxy_rules(tinyproxy_port_1_only: str, echo_server: str) -> None:
    proxy = f"http://{tinyproxy_port_1_only}"
    with pytest.raises(
        WSProxyError, match="rejected connection with status 403 Access violation"
    ) as info:
        await picows.ws_connect(picows.WSListener, echo_server, proxy=proxy)
    assert info.value.status == 403
    _assert_names_proxy(info.value, proxy)


@pytest.mark.parametrize(
    ("scheme", "fixture", "expected"),
    [
        ("http", "tinyproxy", "rejected connection with status 500 Unable to connect"),
        ("socks5", "danted", "SOCKS5 handshake failed"),
        ("socks4", "danted", "SOCKS4 handshake failed"),
        ("socks5", "microsocks", "SOCKS5 handshake failed"),
    ],
)
async def test_server_unreachable_through_proxy(
    request: pytest.FixtureRequest, closed_port: int, scheme: str, fixture: str, expected: str
) -> None:
    proxy = f"{scheme}://{request.getfixturevalue(fixture)}"
    with pytest.raises(WSProxyError, match=expected) as info:
        await picows.ws_connect(picows.WSListener, f"ws://127.0.0.1:{closed_port}/", proxy=proxy)
    _assert_names_proxy(info.value, proxy)


SCHEMES = ["http", "https", "socks4", "socks5"]


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_proxy_down(
    scheme: str, closed_port: int, echo_server: str, client_ssl_context: ssl.SSLContext
) -> None:
    proxy = f"{scheme}://{PROXY_USER}:{QUOTED_PASSWORD}@127.0.0.1:{closed_port}"
    kwargs = {"proxy_ssl_context": client_ssl_context} if scheme == "https" else {}
    with pytest.raises(WSProxyError, match="connection to the proxy failed") as info:
        await picows.ws_connect(picows.WSListener, echo_server, proxy=proxy, **kwargs)
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
    _assert_names_proxy(info.value, proxy)


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_proxy_answers_garbage(
    scheme: str, echo_server: str, client_ssl_context: ssl.SSLContext
) -> None:
    kwargs = {"proxy_ssl_context": client_ssl_context} if scheme == "https" else {}
    async with fake_proxy(answer_garbage) as address:
        proxy = f"{scheme}://{address}"
        with pytest.raises(WSProxyError) as info:
            await picows.ws_connect(picows.WSListener, echo_server, proxy=proxy, **kwargs)
    _assert_names_proxy(info.value, proxy)
    if scheme == "https":  # the TLS handshake with the proxy fails
        assert isinstance(info.value.__cause__, ssl.SSLError)
    elif scheme == "http":
        assert "returned an invalid response: b'SSH-2.0" in str(info.value)


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_proxy_never_answers(
    scheme: str, echo_server: str, client_ssl_context: ssl.SSLContext
) -> None:
    kwargs = {"proxy_ssl_context": client_ssl_context} if scheme == "https" else {}
    async with fake_proxy(never_answer) as address:
        proxy = f"{scheme}://{address}"
        start = time.monotonic()
        with pytest.raises(WSProxyError, match=r"no answer within 0\.2 s") as info:
            await picows.ws_connect(
                picows.WSListener,
                echo_server,
                proxy=proxy,
                websocket_handshake_timeout=0.2,
                **kwargs,
            )
        assert time.monotonic() - start < 3
    # The original: asyncio's TimeoutError, or python-socks' ProxyTimeoutError (which is
    # a TimeoutError in python-socks 3.x, not in 2.4).
    cause = info.value.__cause__
    assert isinstance(cause, (asyncio.TimeoutError, TimeoutError)) or (
        type(cause).__name__ == "ProxyTimeoutError"
    )
    _assert_names_proxy(info.value, proxy)


async def test_https_proxy_certificate_is_checked(https_proxy: str, echo_server: str) -> None:
    # Without proxy_ssl_context, the default context does not trust the test CA.
    with pytest.raises(WSProxyError) as info:
        await picows.ws_connect(picows.WSListener, echo_server, proxy=f"https://{https_proxy}")
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)


async def test_bytes_that_came_with_the_answer_reach_the_websocket(echo_server: str) -> None:
    # The "server" answers in the same packet as the proxy: the handshake must see it.
    recorder = RecordingHTTPProxy(
        b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
    )
    async with fake_proxy(recorder) as address:
        with pytest.raises(WSInvalidStatusError, match="403") as info:
            await picows.ws_connect(picows.WSListener, echo_server, proxy=f"http://{address}")
    assert info.value.response is not None and info.value.response.status == 403


async def test_bytes_before_tls_are_refused(wss_echo_server: str) -> None:
    recorder = RecordingHTTPProxy(b"HTTP/1.1 200 OK\r\n\r\nnot TLS")
    async with fake_proxy(recorder) as address:
        with pytest.raises(WSProxyError, match="unexpected data before the TLS handshake"):
            await picows.ws_connect(picows.WSListener, wss_echo_server, proxy=f"http://{address}")


# ---------------------------------------------------------------------------
# Arguments.


async def test_proxy_ssl_context_needs_an_https_proxy(client_ssl_context: ssl.SSLContext) -> None:
    for proxy in ("http://127.0.0.1:1", "socks5://127.0.0.1:1"):
        with pytest.raises(ValueError, match="only meaningful with an https:// proxy"):
            await picows.ws_connect(
                picows.WSListener,
                "ws://127.0.0.1:1/",
                proxy=proxy,
                proxy_ssl_context=client_ssl_context,
            )


async def test_invalid_proxy_url() -> None:
    with pytest.raises(picows.WSInvalidURL, match="proxy scheme"):
        await picows.ws_connect(picows.WSListener, "ws://127.0.0.1:1/", proxy="ftp://x:1")


@pytest.mark.parametrize("scheme", ["socks4", "socks5"])
async def test_socks_without_python_socks(
    scheme: str, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setitem(sys.modules, "python_socks", None)
    with pytest.raises(ImportError, match=r"pip install python-socks\[asyncio\]"):
        await picows.ws_connect(
            picows.WSListener, "ws://127.0.0.1:1/", proxy=f"{scheme}://127.0.0.1:{closed_port}"
        )


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="TLS in TLS works on 3.11+")
async def test_tls_in_tls_needs_python_311(
    https_proxy: str, wss_echo_server: str, client_ssl_context: ssl.SSLContext
) -> None:
    if not isinstance(asyncio.get_running_loop(), asyncio.BaseEventLoop):
        # uvloop has TLS in TLS on every Python: the same connection works there.
        await echo_roundtrip(
            wss_echo_server,
            proxy=f"https://{https_proxy}",
            proxy_ssl_context=client_ssl_context,
            ssl_context=client_ssl_context,
            use_aiofastnet=False,
        )
        return
    with pytest.raises(TypeError, match=r"Python 3\.11"):
        await picows.ws_connect(
            picows.WSListener,
            wss_echo_server,
            proxy=f"https://{https_proxy}",
            proxy_ssl_context=client_ssl_context,
            ssl_context=client_ssl_context,
            use_aiofastnet=False,
        )
