"""The opening handshake (picows._handshake), fed bytes directly: no sockets, no event loop."""

from __future__ import annotations

import ast
import base64
import pathlib
from http import HTTPStatus
from typing import Optional, Union

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from picows._exceptions import (
    WSHandshakeError,
    WSInvalidHeaderError,
    WSInvalidMessageError,
    WSInvalidStatusError,
    WSInvalidUpgradeError,
)
from picows._handshake import (
    _MAX_ERROR_BODY,
    ClientHandshake,
    RequestTooLargeError,
    ServerHandshake,
    UnsupportedVersionError,
    accept_key,
    upgrade_required_response,
)
from picows._http11 import (
    MAX_HEADER_BLOCK,
    MAX_HEADERS,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)
from picows._url import parse_url


def head_of(data: bytes) -> bytes:
    """What errors report as ``raw_header``: the header block without its empty line."""
    end = data.find(b"\r\n\r\n")
    return data if end < 0 else data[:end]


# RFC 6455 4.2.2 / 1.3: the example key and its accept value.
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
URL = parse_url("ws://example.com/chat")
FRAME = b"\x81\x05hello"  # an unmasked TEXT frame, as a server sends it

Handshake = Union[ClientHandshake, ServerHandshake]


def block(start: bytes, *lines: bytes) -> bytes:
    return b"\r\n".join((start, *lines)) + b"\r\n\r\n"


def response_101(*extra: bytes, start: bytes = b"HTTP/1.1 101 Switching Protocols") -> bytes:
    lines = (b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Accept: " + ACCEPT)
    return block(start, *lines, *extra)


def request(*extra: bytes, start: bytes = b"GET /chat HTTP/1.1", drop: str = "") -> bytes:
    lines = [
        b"Host: example.com",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Version: 13",
        b"Sec-WebSocket-Key: " + KEY,
    ]
    return block(
        start, *(ln for ln in lines if not drop or not ln.startswith(drop.encode())), *extra
    )


def client(extra_headers: object = None) -> ClientHandshake:
    return ClientHandshake(URL, extra_headers, key=KEY)  # type: ignore[arg-type]


def client_error(data: bytes, extra_headers: object = None) -> WSHandshakeError:
    hs = client(extra_headers)
    with pytest.raises(WSHandshakeError) as info:
        hs.receive_data(data)
    return info.value


def server_error(data: bytes) -> WSHandshakeError:
    with pytest.raises(WSHandshakeError) as info:
        ServerHandshake().receive_data(data)
    return info.value


def validate_error(data: bytes) -> WSHandshakeError:
    server = ServerHandshake()
    parsed = server.receive_data(data)
    assert parsed is not None
    with pytest.raises(WSHandshakeError) as info:
        server.validate_upgrade(parsed)
    assert info.value.raw_header == head_of(data)
    return info.value


def pad_to(make: object, size: int) -> bytes:
    """``make(b"X-Pad: aaa...")`` grown to exactly ``size`` bytes."""
    base = make(b"X-Pad: ")  # type: ignore[operator]
    result = make(b"X-Pad: " + b"a" * (size - len(base)))  # type: ignore[operator]
    assert len(result) == size
    return result  # type: ignore[no-any-return]


# -- accept key, request building -------------------------------------------------------


def test_accept_key_rfc_vector() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert accept_key(KEY) == ACCEPT.decode()


def test_request_bytes_are_exact() -> None:
    hs = ClientHandshake(parse_url("ws://example.com:8080/chat?a=1"), {"X-Extra": "1"}, KEY)
    assert hs.request_bytes() == (
        b"GET /chat?a=1 HTTP/1.1\r\n"
        b"Host: example.com:8080\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"X-Extra: 1\r\n"
        b"\r\n"
    )
    assert hs.request.path == b"/chat?a=1"
    assert hs.request.method == b"GET" and hs.request.version == b"HTTP/1.1"


def test_default_key_is_fresh_base64_of_16_bytes() -> None:
    one, two = ClientHandshake(URL), ClientHandshake(URL)
    assert one.key != two.key
    assert len(base64.b64decode(one.key, validate=True)) == 16
    assert one.request.headers["Sec-WebSocket-Key"] == one.key.decode()


def test_host_in_extra_headers_replaces_the_generated_one() -> None:
    hs = client([("X-A", "1"), ("hOsT", "other.example"), ("X-A", "2")])
    assert hs.request.headers.getall("Host") == ["other.example"]
    lines = hs.request_bytes().split(b"\r\n")
    assert lines[1] == b"hOsT: other.example"  # in place, first
    assert lines[6:9] == [b"X-A: 1", b"X-A: 2", b""]  # others appended, duplicates kept


@pytest.mark.parametrize(
    "extra",
    [
        [(b"X", "v")],
        [("X", 1)],
        {"X": b"v"},
        "X: v",
        [("X",)],
        [("X", "v", "w")],
        ["Xv"],
        [None],
    ],
)
def test_extra_headers_must_be_str_pairs(extra: object) -> None:
    with pytest.raises(TypeError):
        client(extra)


@pytest.mark.parametrize(
    "extra",
    [
        [("X", "a\r\nEvil: 1")],
        [("X", "a\nb")],
        [("X", "a\x00b")],
        [("Bad Name", "v")],
        [("X:Y", "v")],
        [("", "v")],
        [("Nämé", "v")],
    ],
)
def test_extra_headers_cannot_inject(extra: object) -> None:
    with pytest.raises(ValueError):
        client(extra)


def test_resource_name_must_be_visible_ascii() -> None:
    class StandIn:
        netloc = "example.com"
        resource_name = "/a b\r\nX: y"

    with pytest.raises(ValueError):
        ClientHandshake(StandIn(), key=KEY)


@pytest.mark.parametrize("module", ["_http11.py", "_handshake.py"])
def test_module_never_imports_asyncio(module: str) -> None:
    source = pathlib.Path(__file__).parents[2] / "src" / "picows" / module
    names = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    assert names and not any(name.split(".")[0] == "asyncio" for name in names)


# -- the full flow, client <-> server ---------------------------------------------------


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted(set(cuts))
    return [stream[a:b] for a, b in zip([0, *bounds], [*bounds, len(stream)])]


def feed_until_done(hs: Handshake, pieces: list[bytes]) -> tuple[object, bytes]:
    for i, piece in enumerate(pieces):
        result = hs.receive_data(piece)
        if result is not None:
            return result, hs.leftover + b"".join(pieces[i + 1 :])
    raise AssertionError("the handshake never completed")


def run_flow(request_cuts: list[int], response_cuts: list[int]) -> None:
    hs = ClientHandshake(URL, [("Sec-WebSocket-Protocol", "chat, superchat")])
    server = ServerHandshake()
    client_frame = b"\x81\x85abcd" + bytes(b ^ m for b, m in zip(b"hello", b"abcd"))
    stream = hs.request_bytes() + client_frame
    parsed, rest = feed_until_done(server, split(stream, request_cuts))
    assert isinstance(parsed, WSUpgradeRequest)
    assert rest == client_frame
    assert parsed.path == b"/chat" and parsed.headers["Host"] == "example.com"
    key = server.validate_upgrade(parsed)
    assert key == hs.key.decode()
    reply = WSUpgradeResponse.create_101_response([("Sec-WebSocket-Protocol", "superchat")])
    stream = server.build_101_response_bytes(key, reply) + FRAME
    response, rest = feed_until_done(hs, split(stream, response_cuts))
    assert isinstance(response, WSUpgradeResponse)
    assert response.status is HTTPStatus.SWITCHING_PROTOCOLS
    assert response.headers["Sec-WebSocket-Protocol"] == "superchat"
    assert rest == FRAME
    hs.receive_eof()  # after completion, EOF is the frame layer's business


def test_full_flow_in_one_piece() -> None:
    run_flow([], [])


def test_full_flow_byte_by_byte() -> None:
    run_flow(list(range(1, 400)), list(range(1, 400)))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 400), max_size=12), st.lists(st.integers(0, 300), max_size=12))
def test_full_flow_random_splits(request_cuts: list[int], response_cuts: list[int]) -> None:
    run_flow(request_cuts, response_cuts)


def test_receive_data_after_completion_is_misuse() -> None:
    hs = client()
    assert hs.receive_data(response_101()) is not None
    with pytest.raises(RuntimeError):
        hs.receive_data(FRAME)
    server = ServerHandshake()
    assert server.receive_data(request()) is not None
    with pytest.raises(RuntimeError):
        server.receive_data(b"x")


# -- client: parsing --------------------------------------------------------------------


@pytest.mark.parametrize(
    "start",
    [
        b"HTTP/1.1 101 Switching Protocols",
        b"HTTP/1.1 101 null",
        b"HTTP/1.1 101 ",
        b"HTTP/1.1 101",
        b"http/1.1 101 switching protocols",
        b"HTTP/1.1 101 \xc3\xa9t\xc3\xa9\tok",
    ],
)
def test_client_accepts_odd_reasons(start: bytes) -> None:
    response = client().receive_data(response_101(start=start))
    assert response is not None and response.status == 101


@pytest.mark.parametrize(
    "start",
    [
        b"HTTP/1.0 101 Switching Protocols",
        b"HTTP/2 101 Switching Protocols",
        b"ICY 200 OK",
        b"HTTP/1.1 1010 X",
        b"HTTP/1.1 10 X",
        b"HTTP/1.1 abc X",
        b"HTTP/1.1  101 X",
        b"HTTP/1.1 101 a\x00b",
        b" HTTP/1.1 101 OK",
        b"",
    ],
)
def test_client_rejects_bad_status_lines(start: bytes) -> None:
    data = response_101(start=start)
    exc = client_error(data)
    assert type(exc) is WSInvalidMessageError
    assert exc.raw_header == head_of(data) and exc.response is None


@pytest.mark.parametrize(
    "line",
    [
        b"X : v",
        b" folded",
        b"\tfolded",
        b"X\x00: v",
        b"X: a\x01b",
        b"X: a\x7fb",
        b"NoColon",
        b": empty-name",
        b"X: a\rb",
        b"X Y: v",
        b"(X): v",
    ],
)
def test_client_rejects_bad_header_syntax(line: bytes) -> None:
    data = response_101(line)
    exc = client_error(data)
    assert type(exc) is WSInvalidMessageError
    assert exc.raw_header == head_of(data)
    if line[:1] in b" \t":
        assert "Obsolete folded" in str(exc)  # RFC 9112 5.2 obs-fold, named as such


def test_header_parsing_keeps_case_trims_ows_and_escapes_obs_text() -> None:
    response = client().receive_data(
        response_101(b"x-CUSTOM:   a b \t", b"X-Empty:", b"X-Text: caf\xc3\xa9")
    )
    assert response is not None
    assert "x-CUSTOM" in list(response.headers.keys())
    assert response.headers["X-Custom"] == "a b"
    assert response.headers["x-empty"] == ""
    assert response.headers["X-Text"].encode("ascii", "surrogateescape") == b"caf\xc3\xa9"


def test_client_rejects_bare_lf_without_waiting() -> None:
    exc = client_error(b"HTTP/1.1 101 OK\nUpgrade: websocket\n")
    assert type(exc) is WSInvalidMessageError
    assert "CRLF" in str(exc) and exc.raw_header == b"HTTP/1.1 101 OK\nUpgrade: websocket\n"


def test_client_header_block_limit_is_exact() -> None:
    at_limit = pad_to(response_101, MAX_HEADER_BLOCK)
    assert client().receive_data(at_limit) is not None
    over = pad_to(response_101, MAX_HEADER_BLOCK + 1)
    exc = client_error(over)
    assert type(exc) is WSInvalidMessageError
    assert "max_size" in str(exc) and exc.raw_header == head_of(over)


def test_client_header_block_too_large_fails_before_the_end() -> None:
    hs = client()
    assert hs.receive_data(b"HTTP/1.1 101 OK\r\nX: ") is None
    with pytest.raises(WSInvalidMessageError, match="max_size") as info:
        for _ in range(100):
            hs.receive_data(b"a" * 1000)
    assert len(info.value.raw_header or b"") < MAX_HEADER_BLOCK + 1000
    assert len(hs._reader.buffer) == 0


def test_client_header_count_limit() -> None:
    headers = [b"X-%d: v" % i for i in range(MAX_HEADERS - 3)]
    assert client().receive_data(response_101(*headers)) is not None  # 128 in all
    data = response_101(*headers, b"X-One-More: v")
    exc = client_error(data)
    assert type(exc) is WSInvalidMessageError and exc.raw_header == head_of(data)


# -- client: the 101 response ------------------------------------------------------------


def test_client_rejects_transfer_encoding_on_101() -> None:
    exc = client_error(response_101(b"Transfer-Encoding: chunked"))
    assert type(exc) is WSInvalidHeaderError and exc.name == "Transfer-Encoding"
    assert exc.value == "chunked"
    assert exc.response is not None and exc.response.status == 101


@pytest.mark.parametrize("value", [b"5", b"1", b"-0", b"0x0", b""])
def test_client_rejects_content_length_on_101(value: bytes) -> None:
    exc = client_error(response_101(b"Content-Length: " + value))
    assert type(exc) is WSInvalidHeaderError and exc.response is not None
    assert exc.name == "Content-Length" and exc.value == value.decode()


def test_client_tolerates_content_length_zero_on_101() -> None:
    hs = client()
    assert hs.receive_data(response_101(b"Content-Length: 0") + FRAME) is not None
    assert hs.leftover == FRAME


@pytest.mark.parametrize(
    ("lines", "name"),
    [
        ((b"Connection: Upgrade",), "Upgrade"),
        ((b"Upgrade: h2c", b"Connection: Upgrade"), "Upgrade"),
        ((b"Upgrade: websocket2", b"Connection: Upgrade"), "Upgrade"),
        ((b"Upgrade: websocket",), "Connection"),
        ((b"Upgrade: websocket", b"Connection: close"), "Connection"),
        ((b"Upgrade: websocket", b"Connection: upgraded"), "Connection"),
    ],
)
def test_client_rejects_bad_upgrade_headers(lines: tuple[bytes, ...], name: str) -> None:
    data = block(b"HTTP/1.1 101 Switching Protocols", *lines, b"Sec-WebSocket-Accept: " + ACCEPT)
    exc = client_error(data)
    assert type(exc) is WSInvalidUpgradeError
    assert isinstance(exc, WSInvalidUpgradeError) and exc.name == name
    assert exc.raw_header == head_of(data) and exc.response is not None


@pytest.mark.parametrize(
    "lines",
    [
        (b"Upgrade: WebSocket", b"Connection: keep-alive, Upgrade"),
        (b"Upgrade: foo, websocket", b"Connection: keep-alive", b"Connection: UPGRADE"),
        (b"Upgrade: websocket", b"Connection: ,upgrade ,"),
    ],
)
def test_client_accepts_token_lists(lines: tuple[bytes, ...]) -> None:
    data = block(b"HTTP/1.1 101 Switching Protocols", *lines, b"Sec-WebSocket-Accept: " + ACCEPT)
    assert client().receive_data(data) is not None


@pytest.mark.parametrize(
    "data",
    [
        block(b"HTTP/1.1 101 X", b"Upgrade: websocket", b"Connection: Upgrade"),
        block(
            b"HTTP/1.1 101 X",
            b"Upgrade: websocket",
            b"Connection: Upgrade",
            b"Sec-WebSocket-Accept: " + accept_key(b"x" * 24).encode(),
        ),
        response_101(b"Sec-WebSocket-Accept: " + ACCEPT),  # duplicate
    ],
)
def test_client_rejects_missing_or_wrong_accept(data: bytes) -> None:
    exc = client_error(data)
    assert type(exc) is WSInvalidHeaderError
    assert isinstance(exc, WSInvalidHeaderError) and exc.name == "Sec-WebSocket-Accept"
    assert exc.raw_header == head_of(data) and exc.response is not None


@pytest.mark.parametrize(
    ("requested", "line"),
    [
        (None, b"Sec-WebSocket-Extensions: permessage-deflate"),
        (None, b"Sec-WebSocket-Extensions: "),
        ("permessage-deflate", b"Sec-WebSocket-Extensions: x-other"),
        ("permessage-deflate", b"Sec-WebSocket-Extensions: permessage-deflate, x-other"),
    ],
)
def test_client_rejects_unrequested_extensions(requested: Optional[str], line: bytes) -> None:
    extra = None if requested is None else [("Sec-WebSocket-Extensions", requested)]
    exc = client_error(response_101(line), extra)
    assert type(exc) is WSInvalidHeaderError
    assert isinstance(exc, WSInvalidHeaderError) and exc.name == "Sec-WebSocket-Extensions"
    assert exc.response is not None


def test_client_accepts_requested_extension() -> None:
    hs = client([("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")])
    line = b"Sec-WebSocket-Extensions: PerMessage-Deflate; server_no_context_takeover"
    assert hs.receive_data(response_101(line)) is not None


@pytest.mark.parametrize(
    ("requested", "lines"),
    [
        (None, (b"Sec-WebSocket-Protocol: chat",)),
        ("chat, superchat", (b"Sec-WebSocket-Protocol: other",)),
        ("chat, superchat", (b"Sec-WebSocket-Protocol: chat, superchat",)),
        ("chat", (b"Sec-WebSocket-Protocol: chat", b"Sec-WebSocket-Protocol: chat")),
        ("chat", (b"Sec-WebSocket-Protocol: ",)),
        ("chat", (b"Sec-WebSocket-Protocol: CHAT",)),
    ],
)
def test_client_rejects_unrequested_subprotocols(
    requested: Optional[str], lines: tuple[bytes, ...]
) -> None:
    extra = None if requested is None else [("Sec-WebSocket-Protocol", requested)]
    exc = client_error(response_101(*lines), extra)
    assert type(exc) is WSInvalidHeaderError
    assert isinstance(exc, WSInvalidHeaderError) and exc.name == "Sec-WebSocket-Protocol"


def test_client_accepts_a_requested_subprotocol() -> None:
    hs = client([("Sec-WebSocket-Protocol", "chat"), ("Sec-WebSocket-Protocol", "superchat")])
    response = hs.receive_data(response_101(b"Sec-WebSocket-Protocol: superchat"))
    assert response is not None and response.headers["Sec-WebSocket-Protocol"] == "superchat"


# -- client: non-101 responses -----------------------------------------------------------


def test_redirect_with_body_waits_for_the_body() -> None:
    head = block(b"HTTP/1.1 301 Moved Permanently", b"Location: /new", b"Content-Length: 10")
    hs = client()
    assert hs.receive_data(head + b"moved") is None
    assert hs.receive_data(b"") is None
    with pytest.raises(WSInvalidStatusError) as info:
        hs.receive_data(b" here" + b"ignored")
    exc = info.value
    assert "expected upgrade response with status 101 Switching Protocols, but received " in str(
        exc
    )
    assert "received 301 Moved Permanently" in str(exc)
    assert exc.response is not None and exc.response.headers["Location"] == "/new"
    assert exc.raw_body == b"moved here" == exc.response.body
    assert exc.raw_header == head_of(head) and exc.response.status is HTTPStatus.MOVED_PERMANENTLY


def test_error_without_content_length_keeps_what_came_with_the_block() -> None:
    head = block(b"HTTP/1.1 404 Not Found", b"Content-Type: text/plain")
    exc = client_error(head + b"nothing here")
    assert type(exc) is WSInvalidStatusError
    assert exc.raw_body == b"nothing here" and exc.response is not None
    assert exc.response.body == b"nothing here" and exc.raw_header == head_of(head)


def test_status_error_checks_the_status_before_other_headers() -> None:
    head = block(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked", b"Content-Length: 99")
    exc = client_error(head + b"5\r\nhello")
    assert type(exc) is WSInvalidStatusError
    assert exc.raw_body == b"5\r\nhello"  # not framed: we do not wait for chunked bodies


def test_unknown_status_code_and_empty_reason() -> None:
    exc = client_error(block(b"HTTP/1.1 599 ", b"Content-Length: 0"))
    assert type(exc) is WSInvalidStatusError
    assert str(exc).endswith("but received 599")
    assert exc.response is not None
    status = exc.response.status
    assert status == 599 and status.value == 599 and status.phrase == ""
    assert exc.raw_body == b""


@pytest.mark.parametrize("length", [b"5000000", b"9" * 5000, b"0" * 30 + b"2000000"])
def test_error_body_is_capped(length: bytes) -> None:
    hs = client()
    assert hs.receive_data(block(b"HTTP/1.1 500 Oops", b"Content-Length: " + length)) is None
    chunk = b"z" * 65536
    with pytest.raises(WSInvalidStatusError) as info:
        for _ in range(_MAX_ERROR_BODY // len(chunk) + 1):
            hs.receive_data(chunk)
            assert len(hs._body) <= _MAX_ERROR_BODY
    assert info.value.raw_body == b"z" * _MAX_ERROR_BODY


def test_receive_eof_before_anything() -> None:
    hs = client()
    with pytest.raises(WSInvalidMessageError, match="closed before the upgrade response") as info:
        hs.receive_eof()
    assert type(info.value) is WSInvalidMessageError and info.value.raw_header == b""


def test_receive_eof_mid_header() -> None:
    hs = client()
    assert hs.receive_data(b"HTTP/1.1 101 Switching") is None
    with pytest.raises(WSInvalidMessageError) as info:
        hs.receive_eof()
    assert info.value.raw_header == b"HTTP/1.1 101 Switching"


def test_receive_eof_mid_error_body() -> None:
    head = block(b"HTTP/1.1 503 Service Unavailable", b"Content-Length: 100")
    hs = client()
    assert hs.receive_data(head + b"partial") is None
    with pytest.raises(WSInvalidStatusError) as info:
        hs.receive_eof()
    assert info.value.raw_body == b"partial" and info.value.raw_header == head_of(head)
    assert "503 Service Unavailable" in str(info.value)


def test_failure_is_final() -> None:
    hs = client()
    with pytest.raises(WSInvalidMessageError) as first:
        hs.receive_data(b"garbage\r\n\r\n")
    with pytest.raises(WSInvalidMessageError) as again:
        hs.receive_data(response_101())
    assert again.value is first.value
    with pytest.raises(WSInvalidMessageError) as at_eof:
        hs.receive_eof()
    assert at_eof.value is first.value


# -- server: parsing ---------------------------------------------------------------------


def test_server_parses_request() -> None:
    server = ServerHandshake()
    data = request(b"X-Custom: a, b", start=b"GET /chat?x=1&y=%20 HTTP/1.1")
    parsed = server.receive_data(data + b"frames")
    assert parsed is not None and parsed is server.request
    assert (parsed.method, parsed.path, parsed.version) == (b"GET", b"/chat?x=1&y=%20", b"HTTP/1.1")
    assert parsed.headers["x-custom"] == "a, b"
    assert server.leftover == b"frames"
    assert "WSUpgradeRequest(method=b'GET'" in repr(parsed)


@pytest.mark.parametrize(
    "start",
    [
        b"POST /chat HTTP/1.1",
        b"get /chat HTTP/1.1",
        b"GET /chat HTTP/1.0",
        b"GET /chat HTTP/2.0",
        b"GET /chat http/1.1",
        b"GET  HTTP/1.1",
        b"GET /chat  HTTP/1.1",
        b"GET /chat HTTP/1.1 extra",
        b"GET /ch\x7fat HTTP/1.1",
        b"GET /caf\xc3\xa9 HTTP/1.1",
        b"GET /chat",
        b"",
    ],
)
def test_server_rejects_bad_request_lines(start: bytes) -> None:
    data = request(start=start)
    exc = server_error(data)
    assert type(exc) is WSInvalidMessageError
    assert exc.raw_header == head_of(data)


@pytest.mark.parametrize(
    "line",
    [b"X : v", b" folded", b"X\x00: v", b"X: a\x01b", b"NoColon", b"X: a\rb", b"[X]: v"],
)
def test_server_rejects_bad_header_syntax(line: bytes) -> None:
    data = request(line)
    exc = server_error(data)
    assert type(exc) is WSInvalidMessageError and exc.raw_header == head_of(data)


@pytest.mark.parametrize(
    "lines",
    [
        (b"Transfer-Encoding: chunked",),
        (b"Transfer-Encoding: identity",),
        (b"Content-Length: 5",),
        (b"Content-Length: +0",),
        (b"Content-Length: ",),
        (b"Content-Length: 0", b"Content-Length: 0"),
    ],
)
def test_server_rejects_request_bodies(lines: tuple[bytes, ...]) -> None:
    data = request(*lines)
    exc = server_error(data)
    assert type(exc) is WSInvalidMessageError and exc.raw_header == head_of(data)


@pytest.mark.parametrize("value", [b"0", b"000"])
def test_server_accepts_zero_content_length(value: bytes) -> None:
    assert ServerHandshake().receive_data(request(b"Content-Length: " + value)) is not None


def test_server_header_block_limit_is_exact() -> None:
    at_limit = pad_to(request, MAX_HEADER_BLOCK)
    assert ServerHandshake().receive_data(at_limit) is not None
    over = pad_to(request, MAX_HEADER_BLOCK + 1)
    exc = server_error(over)
    assert type(exc) is RequestTooLargeError and isinstance(exc, WSInvalidMessageError)
    assert "max_size" in str(exc) and exc.raw_header == head_of(over)


def test_server_header_block_too_large_fails_before_the_end() -> None:
    server = ServerHandshake()
    with pytest.raises(RequestTooLargeError) as info:
        server.receive_data(b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEADER_BLOCK)
    assert info.value.raw_header is not None
    assert len(server._reader.buffer) == 0


def test_server_header_count_limit() -> None:
    headers = [b"X-%d: v" % i for i in range(MAX_HEADERS - 5)]
    assert ServerHandshake().receive_data(request(*headers)) is not None  # 128 in all
    data = request(*headers, b"X-One-More: v")
    exc = server_error(data)
    assert type(exc) is RequestTooLargeError and exc.raw_header == head_of(data)


def test_server_rejects_bare_lf_without_waiting() -> None:
    exc = server_error(b"GET / HTTP/1.1\nHost: x\n")
    assert type(exc) is WSInvalidMessageError and "CRLF" in str(exc)


# -- server: validate_upgrade ------------------------------------------------------------


@pytest.mark.parametrize(
    "lines",
    [
        (b"Connection: keep-alive, Upgrade",),
        (b"Connection: keep-alive", b"Connection: Upgrade"),
        (b"Connection: UPGRADE",),
    ],
)
def test_server_accepts_connection_token_lists(lines: tuple[bytes, ...]) -> None:
    data = request(*lines, drop="Connection")
    server = ServerHandshake()
    parsed = server.receive_data(data)
    assert parsed is not None and server.validate_upgrade(parsed) == KEY.decode()


def test_server_accepts_upgrade_case_insensitively() -> None:
    server = ServerHandshake()
    parsed = server.receive_data(request(b"Upgrade: WebSocket", drop="Upgrade"))
    assert parsed is not None and server.validate_upgrade(parsed) == KEY.decode()


@pytest.mark.parametrize(
    ("drop", "lines", "name"),
    [
        ("Upgrade", (), "Upgrade"),
        ("Upgrade", (b"Upgrade: h2c",), "Upgrade"),
        ("Connection", (), "Connection"),
        ("Connection", (b"Connection: keep-alive",), "Connection"),
        ("Connection", (b"Connection: close",), "Connection"),
    ],
)
def test_server_rejects_bad_upgrade_headers(drop: str, lines: tuple[bytes, ...], name: str) -> None:
    exc = validate_error(request(*lines, drop=drop))
    assert type(exc) is WSInvalidUpgradeError
    assert isinstance(exc, WSInvalidUpgradeError) and exc.name == name


@pytest.mark.parametrize("version", [b"8", b"7", b"12", b"14", b"13, 8", b"013", b""])
def test_server_refuses_other_versions_with_426(version: bytes) -> None:
    exc = validate_error(request(b"Sec-WebSocket-Version: " + version, drop="Sec-WebSocket-V"))
    assert type(exc) is UnsupportedVersionError
    assert isinstance(exc, UnsupportedVersionError) and exc.name == "Sec-WebSocket-Version"
    assert exc.value == version.decode()
    answer = ServerHandshake.error_response_bytes(ServerHandshake.upgrade_required_response())
    assert answer == (
        b"HTTP/1.1 426 Upgrade Required\r\n"
        b"Connection: close, Upgrade\r\n"
        b"Upgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"\r\n"
    )
    assert b"\r\nSec-WebSocket-Version: 13\r\n" in answer
    with_body = upgrade_required_response(b"use version 13")
    assert with_body.status == 426 and with_body.body == b"use version 13"
    assert with_body.headers["Sec-WebSocket-Version"] == "13"


@pytest.mark.parametrize(
    ("lines", "drop"),
    [
        ((), "Sec-WebSocket-Version"),
        ((b"Sec-WebSocket-Version: 13",), ""),
        ((), "Sec-WebSocket-Key"),
        ((b"Sec-WebSocket-Key: " + KEY,), ""),
    ],
)
def test_server_needs_exactly_one_version_and_key(lines: tuple[bytes, ...], drop: str) -> None:
    exc = validate_error(request(*lines, drop=drop))
    assert type(exc) is WSInvalidHeaderError
    assert isinstance(exc, WSInvalidHeaderError)
    assert exc.name in ("Sec-WebSocket-Version", "Sec-WebSocket-Key")


@pytest.mark.parametrize(
    "key",
    [
        b"!!!!!!!!!!!!!!!!!!!!!!==",
        base64.b64encode(b"x" * 15),
        base64.b64encode(b"x" * 17),
        b"dGhlIHNhbXBsZSBub25jZR==",  # non-canonical: stray bits before the padding
        b"dGhlIHNhbXBsZSBub25jZQ",
        b"dGhlIHNhbXBs ZSBub25jZQ==",
        b"dGhlIHNhbXBsZSBub25jZQ==\xff",
        b"",
    ],
)
def test_server_rejects_bad_keys(key: bytes) -> None:
    exc = validate_error(request(b"Sec-WebSocket-Key: " + key, drop="Sec-WebSocket-K"))
    assert type(exc) is WSInvalidHeaderError
    assert isinstance(exc, WSInvalidHeaderError) and exc.name == "Sec-WebSocket-Key"


def test_build_101_response_bytes() -> None:
    reply = WSUpgradeResponse.create_101_response(
        [("connection", "keep-alive"), ("X-Server", "1"), ("Sec-WebSocket-Accept", "forged")]
    )
    assert ServerHandshake.build_101_response_bytes(KEY.decode(), reply) == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Connection: upgrade\r\n"
        b"Upgrade: websocket\r\n"
        b"X-Server: 1\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"\r\n"
    )
    with pytest.raises(ValueError):
        ServerHandshake.build_101_response_bytes("k", WSUpgradeResponse.create_error_response(400))


def test_error_response_bytes_forces_connection_close() -> None:
    response = WSUpgradeResponse.create_error_response(
        404, b"404 Not Found", [("Connection", "keep-alive"), ("X-Why", "route")]
    )
    assert ServerHandshake.error_response_bytes(response) == (
        b"HTTP/1.1 404 Not Found\r\n"
        b"Connection: close\r\n"
        b"X-Why: route\r\n"
        b"Content-Type: text/plain\r\n"
        b"Content-Length: 13\r\n"
        b"\r\n"
        b"404 Not Found"
    )
    with pytest.raises(ValueError):
        ServerHandshake.error_response_bytes(WSUpgradeResponse.create_101_response())


def test_client_reads_a_server_error_response() -> None:
    response = WSUpgradeResponse.create_redirect_response(307, "wss://elsewhere/", [("X", "y")])
    exc = client_error(ServerHandshake.error_response_bytes(response))
    assert type(exc) is WSInvalidStatusError and exc.response is not None
    assert exc.response.headers["Location"] == "wss://elsewhere/"
    assert exc.response.status is HTTPStatus.TEMPORARY_REDIRECT


# -- response objects --------------------------------------------------------------------


def test_create_101_response_bytes() -> None:
    response = WSUpgradeResponse.create_101_response({"X-A": "1"})
    assert response.status is HTTPStatus.SWITCHING_PROTOCOLS and response.body is None
    assert response.to_bytes() == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Connection: upgrade\r\n"
        b"Upgrade: websocket\r\n"
        b"X-A: 1\r\n"
        b"\r\n"
    )


def test_create_error_response_bytes() -> None:
    response = WSUpgradeResponse.create_error_response(HTTPStatus.FORBIDDEN, b"no")
    assert response.to_bytes() == (
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nno"
    )
    response = WSUpgradeResponse.create_error_response(
        500, bytearray(b"{}"), [("Content-Type", "application/json"), ("Content-Length", "99")]
    )
    assert response.body == b"{}"
    assert response.to_bytes() == (
        b"HTTP/1.1 500 Internal Server Error\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: 2\r\n"
        b"\r\n"
        b"{}"
    )


def test_create_error_response_with_unknown_status() -> None:
    response = WSUpgradeResponse.create_error_response(599)
    assert response.status == 599 and response.status.phrase == ""
    assert repr(response.status) == "<HTTPStatus: 599>"
    assert response.to_bytes() == b"HTTP/1.1 599 \r\n\r\n"
    assert WSUpgradeResponse.create_error_response(599, b"").to_bytes() == (
        b"HTTP/1.1 599 \r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n"
    )


def test_create_redirect_response_bytes() -> None:
    response = WSUpgradeResponse.create_redirect_response(
        302, "/new", [("Location", "/old"), ("X-A", "1")]
    )
    assert response.headers.getall("Location") == ["/new"]
    assert response.to_bytes() == b"HTTP/1.1 302 Found\r\nX-A: 1\r\nLocation: /new\r\n\r\n"


def test_create_ok_response_bytes() -> None:
    assert WSUpgradeResponse.create_ok_response(b"OK").to_bytes() == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nOK"
    )
    custom = WSUpgradeResponse.create_ok_response(None, [("Content-Type", "text/html")])
    assert custom.to_bytes() == b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"


@pytest.mark.parametrize(
    ("factory", "error"),
    [
        (lambda: WSUpgradeResponse.create_error_response(399), ValueError),
        (lambda: WSUpgradeResponse.create_error_response(200), ValueError),
        (lambda: WSUpgradeResponse.create_error_response(1000), ValueError),
        (lambda: WSUpgradeResponse.create_error_response(99), ValueError),
        (lambda: WSUpgradeResponse.create_error_response("404"), TypeError),
        (lambda: WSUpgradeResponse.create_error_response(True), TypeError),
        (lambda: WSUpgradeResponse.create_error_response(404, "body"), TypeError),
        (lambda: WSUpgradeResponse.create_error_response(404, None, [("X", 1)]), TypeError),
        (lambda: WSUpgradeResponse.create_error_response(404, None, [("X", "\r\n")]), ValueError),
        (lambda: WSUpgradeResponse.create_redirect_response(200, "/"), ValueError),
        (lambda: WSUpgradeResponse.create_redirect_response(400, "/"), ValueError),
        (lambda: WSUpgradeResponse.create_redirect_response(301, "/\r\nX: y"), ValueError),
        (lambda: WSUpgradeResponse.create_redirect_response(301, b"/"), TypeError),
        (lambda: WSUpgradeResponse.create_101_response([("X", None)]), TypeError),
        (lambda: WSUpgradeResponse.create_ok_response(None, {"Bad:Name": "v"}), ValueError),
        (lambda: WSUpgradeRequest(headers=[("X", b"v")]), TypeError),
    ],
)
def test_constructor_argument_errors(factory: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        factory()  # type: ignore[operator]


def test_to_bytes_refuses_headers_injected_after_construction() -> None:
    response = WSUpgradeResponse.create_error_response(400)
    response.headers.add("X", "a\r\nSet-Cookie: evil")
    with pytest.raises(ValueError):
        response.to_bytes()
    with pytest.raises(ValueError):
        ServerHandshake.error_response_bytes(response)


def test_response_with_listener() -> None:
    listener = object()
    ok = WSUpgradeResponseWithListener(WSUpgradeResponse.create_101_response(), listener)
    assert ok.listener is listener and ok.response.status == 101
    redirect = WSUpgradeResponse.create_redirect_response(301, "/x")
    assert WSUpgradeResponseWithListener(redirect, None).listener is None
    with pytest.raises(ValueError):
        WSUpgradeResponseWithListener(WSUpgradeResponse.create_101_response(), None)
    with pytest.raises(ValueError):
        WSUpgradeResponseWithListener(WSUpgradeResponse.create_error_response(404), listener)


def test_default_objects_and_repr() -> None:
    req = WSUpgradeRequest()
    assert (req.method, req.path, req.version) == (b"GET", b"/", b"HTTP/1.1")
    assert isinstance(req.headers, CIMultiDict) and len(req.headers) == 0
    resp = WSUpgradeResponse()
    assert resp.status is HTTPStatus.SWITCHING_PROTOCOLS and resp.version == b"HTTP/1.1"
    assert "WSUpgradeResponse(version=b'HTTP/1.1'" in repr(resp)
    with pytest.raises(AttributeError):
        resp.other = 1  # type: ignore[attr-defined]


# -- hostile bytes ----------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None)
VALID_RESPONSE = response_101(b"Content-Length: 0", b'X-Filler: a, b;c="d"') + FRAME
VALID_REQUEST = request(b'X-Filler: a, b;c="d"', b"Content-Length: 0") + b"\x88\x80abcd"
INSERTIONS = [b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b",", b"\x00", b"\r\n\r\n", b"\xff"]


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and pos < len(data):
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(INSERTIONS) | st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 4))]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


def fuzz(hs: Handshake, stream: bytes, cuts: list[int]) -> None:
    """Feeds ``stream``; only WSHandshakeError may escape, and buffers stay bounded."""
    try:
        for piece in split(stream, cuts):
            try:
                result = hs.receive_data(piece)
            finally:
                assert len(hs._reader.buffer) <= MAX_HEADER_BLOCK + len(piece)
                if isinstance(hs, ClientHandshake):
                    assert len(hs._body) <= _MAX_ERROR_BODY
            if isinstance(result, WSUpgradeRequest) and isinstance(hs, ServerHandshake):
                key = hs.validate_upgrade(result)
                reply = WSUpgradeResponse.create_101_response()
                assert hs.build_101_response_bytes(key, reply).startswith(b"HTTP/1.1 101 ")
            if result is not None:
                return
        if isinstance(hs, ClientHandshake):
            hs.receive_eof()
    except WSHandshakeError as exc:
        assert exc.raw_header is not None
        if isinstance(exc, WSInvalidStatusError):
            assert exc.response is not None and exc.response.body == exc.raw_body


@FUZZ
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=8))
def test_random_bytes_client(stream: bytes, cuts: list[int]) -> None:
    fuzz(client(), stream, cuts)


@FUZZ
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=8))
def test_random_bytes_server(stream: bytes, cuts: list[int]) -> None:
    fuzz(ServerHandshake(), stream, cuts)


@FUZZ
@given(mutated(VALID_RESPONSE), st.lists(st.integers(0, 300), max_size=8))
def test_mutated_responses(stream: bytes, cuts: list[int]) -> None:
    fuzz(client(), stream, cuts)


@FUZZ
@given(mutated(VALID_REQUEST), st.lists(st.integers(0, 300), max_size=8))
def test_mutated_requests(stream: bytes, cuts: list[int]) -> None:
    fuzz(ServerHandshake(), stream, cuts)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 9000), st.sampled_from([b"a", b"\r", b"\n", b"a:b\r\n"]))
def test_endless_header_block_stays_bounded(chunk_size: int, unit: bytes) -> None:
    for hs in (client(), ServerHandshake()):
        junk = b"HTTP/1.1 101 OK\r\n" if isinstance(hs, ClientHandshake) else b"GET / HTTP/1.1\r\n"
        chunk = (unit * (chunk_size // len(unit) + 1))[:chunk_size]
        with pytest.raises(WSInvalidMessageError):
            hs.receive_data(junk)
            for _ in range(MAX_HEADER_BLOCK // chunk_size + 2):
                hs.receive_data(chunk)
                assert len(hs._reader.buffer) < MAX_HEADER_BLOCK
        assert len(hs._reader.buffer) == 0


def test_valid_fuzz_seeds_complete() -> None:
    """The seeds the mutations start from are themselves accepted."""
    response = client().receive_data(VALID_RESPONSE)
    assert response is not None and response.status == 101
    server = ServerHandshake()
    parsed = server.receive_data(VALID_REQUEST)
    assert parsed is not None and server.validate_upgrade(parsed) == KEY.decode()
