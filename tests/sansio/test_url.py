"""Tests for picows._url: WebSocket and proxy URL parsing (RFC 6455 section 3)."""

from __future__ import annotations

import ast
import dataclasses
import urllib.parse
from typing import Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from picows._exceptions import WSInvalidURL
from picows._types import WSHost, WSPort
from picows._url import WSParsedURL, parse_url

# --- defaults, ports and netloc ------------------------------------------------


def test_ws_default_port() -> None:
    parsed = parse_url("ws://example.com/chat")
    assert parsed == WSParsedURL(
        url="ws://example.com/chat",
        scheme="ws",
        is_secure=False,
        host=WSHost("example.com"),
        port=WSPort(80),
        netloc="example.com",
        path="/chat",
        query="",
        username=None,
        password=None,
    )


def test_wss_default_port() -> None:
    parsed = parse_url("wss://example.com")
    assert parsed.scheme == "wss"
    assert parsed.is_secure is True
    assert parsed.port == 443
    assert parsed.netloc == "example.com"
    assert parsed.path == ""


@pytest.mark.parametrize(
    ("url", "port", "netloc"),
    [
        ("ws://example.com:8080/", 8080, "example.com:8080"),
        ("wss://example.com:8443", 8443, "example.com:8443"),
        # An explicit default port is left out of the Host header.
        ("ws://example.com:80", 80, "example.com"),
        ("wss://example.com:443/x", 443, "example.com"),
        # ...but the other scheme's default is not a default.
        ("wss://example.com:80", 80, "example.com:80"),
        ("ws://example.com:443", 443, "example.com:443"),
        # Leading zeros are normalized, an empty port means the default.
        ("ws://example.com:0080", 80, "example.com"),
        ("ws://example.com:09000", 9000, "example.com:9000"),
        ("ws://example.com:", 80, "example.com"),
        ("ws://example.com:0", 0, "example.com:0"),
        ("ws://example.com:65535", 65535, "example.com:65535"),
        ("ws://127.0.0.1:9001", 9001, "127.0.0.1:9001"),
    ],
)
def test_ports_and_netloc(url: str, port: int, netloc: str) -> None:
    parsed = parse_url(url)
    assert parsed.port == port
    assert parsed.netloc == netloc


@pytest.mark.parametrize(
    ("url", "host", "port", "netloc"),
    [
        ("ws://[::1]", "::1", 80, "[::1]"),
        ("ws://[::1]:9000", "::1", 9000, "[::1]:9000"),
        ("wss://[2001:DB8::1]/path", "2001:db8::1", 443, "[2001:db8::1]"),
        ("ws://[::ffff:192.0.2.1]:80", "::ffff:192.0.2.1", 80, "[::ffff:192.0.2.1]"),
        # RFC 6874: the zone is "%25" + ZoneID in the URL, "%" for getaddrinfo.
        ("ws://[fe80::1%25eth0]:9000", "fe80::1%eth0", 9000, "[fe80::1%25eth0]:9000"),
    ],
)
def test_ipv6_literals(url: str, host: str, port: int, netloc: str) -> None:
    parsed = parse_url(url)
    assert parsed.host == host
    assert parsed.port == port
    assert parsed.netloc == netloc


def test_upper_case_scheme_and_host_are_lowered() -> None:
    parsed = parse_url("WSS://Example.COM:8443/Path?Q=V")
    assert parsed.scheme == "wss"
    assert parsed.is_secure is True
    assert parsed.host == "example.com"
    assert parsed.netloc == "example.com:8443"
    # Path and query are case-sensitive and kept.
    assert parsed.path == "/Path"
    assert parsed.query == "Q=V"
    assert parsed.url == "WSS://Example.COM:8443/Path?Q=V"


# --- IRIs (RFC 3987 section 3.1) -------------------------------------------------


def test_idna_host_and_quoted_path_and_query() -> None:
    parsed = parse_url("ws://bücher.example/ä?q=ü")
    assert parsed.host == "xn--bcher-kva.example"
    assert parsed.netloc == "xn--bcher-kva.example"
    assert parsed.path == "/%C3%A4"
    assert parsed.query == "q=%C3%BC"
    assert parsed.resource_name == "/%C3%A4?q=%C3%BC"
    assert parsed.url == "ws://bücher.example/ä?q=ü"


def test_idna_host_is_lowered_first_and_keeps_port() -> None:
    parsed = parse_url("wss://BÜCHER.example:8443")
    assert parsed.host == "xn--bcher-kva.example"
    assert parsed.netloc == "xn--bcher-kva.example:8443"


def test_idna_ideographic_full_stop_separates_labels() -> None:
    assert parse_url("ws://bücher\u3002example").host == "xn--bcher-kva.example"


def test_idna_trailing_dot_is_kept() -> None:
    assert parse_url("ws://bücher.example.").host == "xn--bcher-kva.example."


def test_percent_encoded_utf8_host_is_decoded_then_idna_encoded() -> None:
    assert parse_url("ws://b%C3%BCcher.example").host == "xn--bcher-kva.example"


def test_iri_quoting_keeps_reserved_characters_and_valid_escapes() -> None:
    parsed = parse_url("ws://h/a:b@c;d=e,f/%41%e4ä?x=[1]&y=$'()*+!é")
    assert parsed.path == "/a:b@c;d=e,f/%41%e4%C3%A4"
    assert parsed.query == "x=[1]&y=$'()*+!%C3%A9"


def test_ascii_characters_forbidden_in_uris_and_stray_percent_are_quoted() -> None:
    parsed = parse_url('ws://h/a|b{c}"^`\\<>?p=100%&q=%zz%4')
    assert parsed.path == "/a%7Cb%7Bc%7D%22%5E%60%5C%3C%3E"
    assert parsed.query == "p=100%25&q=%25zz%254"


def test_plain_uri_is_not_changed() -> None:
    parsed = parse_url("ws://example.com/a/b%20c/~d_e-f.g?x=1&y=%2F")
    assert parsed.path == "/a/b%20c/~d_e-f.g"
    assert parsed.query == "x=1&y=%2F"


# --- credentials -----------------------------------------------------------------


def test_userinfo_stays_in_uri_form() -> None:
    # As upstream: the credentials are kept as written; whoever sends them decodes them.
    parsed = parse_url("ws://us%40er:p%3Ass%25w@example.com:9000/")
    assert parsed.username == "us%40er"
    assert parsed.password == "p%3Ass%25w"
    assert parsed.user_info == ("us%40er", "p%3Ass%25w")
    # Credentials never reach the Host header.
    assert parsed.netloc == "example.com:9000"
    assert parsed.host == "example.com"


def test_userinfo_non_ascii_is_percent_encoded() -> None:
    # RFC 3987 3.1: an IRI's credentials become UTF-8 percent-escapes.
    parsed = parse_url("ws://jürgen:pässword@example.com")
    assert parsed.user_info == ("j%C3%BCrgen", "p%C3%A4ssword")
    assert [urllib.parse.unquote(part) for part in parsed.user_info] == ["jürgen", "pässword"]


def test_userinfo_password_may_contain_colon_and_at() -> None:
    parsed = parse_url("ws://user:a:b@c@example.com")
    assert parsed.username == "user"
    assert parsed.password == "a:b@c"
    assert parsed.host == "example.com"


def test_username_without_password() -> None:
    parsed = parse_url("ws://user@example.com")
    assert parsed.username == "user"
    assert parsed.password is None
    assert parsed.user_info is None  # as upstream: both or nothing


def test_no_userinfo() -> None:
    parsed = parse_url("ws://example.com")
    assert parsed.username is None
    assert parsed.password is None
    assert parsed.user_info is None


# --- resource_name ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "resource_name"),
    [
        ("ws://h", "/"),
        ("ws://h/", "/"),
        ("ws://h?", "/"),
        ("ws://h?a=1", "/?a=1"),
        ("ws://h/chat", "/chat"),
        ("ws://h/chat/?a=1&b=2", "/chat/?a=1&b=2"),
        ("ws://h:9000//double", "//double"),
        ("ws://h/p?a?b/c", "/p?a?b/c"),
    ],
)
def test_resource_name(url: str, resource_name: str) -> None:
    assert parse_url(url).resource_name == resource_name


def test_query_without_question_mark_and_may_be_empty() -> None:
    assert parse_url("ws://h/x?").query == ""
    assert parse_url("ws://h/x?k=v").query == "k=v"


# --- errors ----------------------------------------------------------------------

_SCHEME = "scheme isn't ws or wss"
_NO_HOST = "hostname isn't provided"
_FRAGMENT = "fragment identifier is meaningless"
_PORT = "port is invalid"
_IDNA = "hostname can't be IDNA-encoded"
_SPACE = "URL contains whitespace or control characters"
_HOST = "hostname is invalid"


@pytest.mark.parametrize(
    ("url", "msg"),
    [
        ("http://example.com", _SCHEME),
        ("https://example.com", _SCHEME),
        ("example.com", _SCHEME),
        ("", _SCHEME),
        (":ws//example.com", _SCHEME),
        ("wsx://example.com", _SCHEME),
        ("ws", _SCHEME),
        ("ws:", _NO_HOST),
        ("ws://", _NO_HOST),
        ("ws:///path", _NO_HOST),
        ("ws:example.com", _NO_HOST),
        ("ws://:8080/", _NO_HOST),
        ("ws://user:pass@/", _NO_HOST),
        ("ws://[]", _NO_HOST),
        ("ws://example.com#", _FRAGMENT),
        ("ws://example.com/#frag", _FRAGMENT),
        ("ws://example.com/a?b=c#d", _FRAGMENT),
        ("ws://example.com:abc", _PORT),
        ("ws://example.com:65536", _PORT),
        ("ws://example.com:-1", _PORT),
        ("ws://example.com:+80", _PORT),
        ("ws://example.com:80:80", _PORT),
        ("ws://example.com:\u0668\u0660", _PORT),  # Arabic-Indic digits
        ("ws://example.com:" + "9" * 5000, _PORT),
        ("ws://[::1]:x", _PORT),
        ("ws://b\u00fccher..example", _IDNA),
        ("ws://." + "\u00e4" * 70, _IDNA),
        ("ws://\u00e4" + "a" * 70 + ".example", _IDNA),  # label over 63 octets
        ("ws://a\u200eb.\u00e4", _IDNA),  # a bidi mark is prohibited by nameprep
        ("ws://example.com/a b", _SPACE),
        (" ws://example.com", _SPACE),
        ("ws://example.com\t", _SPACE),
        ("ws://example.com/\r\nHost: evil", _SPACE),
        ("ws://exa\x00mple.com", _SPACE),
        ("ws://example.com/\x7f", _SPACE),
        ("ws://example.com/\x85", _SPACE),
        ("ws://example.com/\u00a0", _SPACE),
        ("ws://example.com/\u3000", _SPACE),
        ("ws://[::1", _HOST),
        ("ws://[::1]x", _HOST),
        ("ws://[127.0.0.1]", _HOST),
        ("ws://[v1.future]", _HOST),
        ("ws://[fe80::1%eth0]", _HOST),
        ("ws://[fe80::1%25]", _HOST),
        ("ws://ex[ample.com", _HOST),
        ("ws://ex\\ample.com", _HOST),
        ("ws://ex%2Fample.com", _HOST),
        ("ws://ex%FFample.com", _HOST),
        ("ws://example.com\ud800", "URL contains unpaired surrogates"),
    ],
)
def test_invalid_url(url: str, msg: str) -> None:
    with pytest.raises(WSInvalidURL) as exc_info:
        parse_url(url)
    exc = exc_info.value
    assert type(exc) is WSInvalidURL
    assert exc.url == url
    assert exc.msg == msg
    assert str(exc) == f"{url} isn't a valid URL: {msg}"


def test_check_order_scheme_host_fragment_port() -> None:
    with pytest.raises(WSInvalidURL, match="scheme isn't ws or wss"):
        parse_url("http://#")
    with pytest.raises(WSInvalidURL, match="hostname isn't provided"):
        parse_url("ws://#")
    with pytest.raises(WSInvalidURL, match="fragment identifier is meaningless"):
        parse_url("ws://h:bad#")


def test_port_error_does_not_leak_value_error() -> None:
    with pytest.raises(WSInvalidURL) as exc_info:
        parse_url("ws://h:99999999999")
    assert not isinstance(exc_info.value, ValueError)
    assert exc_info.value.__cause__ is None


@pytest.mark.parametrize("value", [None, b"ws://example.com", 42, ["ws://example.com"]])
def test_non_str_raises_type_error(value: object) -> None:
    with pytest.raises(TypeError):
        parse_url(value)  # type: ignore[arg-type]


# --- proxy URLs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "scheme", "is_secure", "port", "netloc"),
    [
        ("http://proxy.local", "http", False, 80, "proxy.local"),
        ("https://proxy.local", "https", True, 443, "proxy.local"),
        ("socks4://proxy.local", "socks4", False, 1080, "proxy.local"),
        ("socks5://proxy.local", "socks5", False, 1080, "proxy.local"),
        ("HTTP://Proxy.Local:3128", "http", False, 3128, "proxy.local:3128"),
        ("socks5://[::1]:1080", "socks5", False, 1080, "[::1]"),
        ("socks5://127.0.0.1:9050", "socks5", False, 9050, "127.0.0.1:9050"),
    ],
)
def test_proxy_urls(url: str, scheme: str, is_secure: bool, port: int, netloc: str) -> None:
    parsed = parse_url(url, check_scheme=False)
    assert parsed.url == url
    assert parsed.scheme == scheme
    assert parsed.is_secure is is_secure
    assert parsed.port == port
    assert parsed.netloc == netloc
    assert parsed.user_info is None


@pytest.mark.parametrize("scheme", ["http", "https", "socks4", "socks5"])
def test_proxy_credentials(scheme: str) -> None:
    parsed = parse_url(f"{scheme}://us%3Aer:s%40cret@proxy.local:8000", check_scheme=False)
    assert parsed.scheme == scheme
    assert parsed.user_info == ("us%3Aer", "s%40cret")
    assert parsed.host == "proxy.local"
    assert parsed.port == 8000


@pytest.mark.parametrize("url", ["ws://proxy.local", "wss://proxy.local", "ftp://p"])
def test_check_scheme_false_accepts_any_scheme(url: str) -> None:
    # As upstream: the caller (the proxy code) decides which schemes it supports.
    assert parse_url(url, check_scheme=False).scheme == url.partition(":")[0]


@pytest.mark.parametrize("url", ["1ws://h", "w_s://h", "://h"])
def test_check_scheme_false_still_needs_a_valid_scheme(url: str) -> None:
    with pytest.raises(WSInvalidURL, match="invalid scheme"):
        parse_url(url, check_scheme=False)


def test_proxy_url_other_errors() -> None:
    with pytest.raises(WSInvalidURL, match="hostname isn't provided"):
        parse_url("http://", check_scheme=False)
    with pytest.raises(WSInvalidURL, match="port is invalid"):
        parse_url("socks5://p:99999", check_scheme=False)


# --- the dataclass ---------------------------------------------------------------


def test_frozen() -> None:
    parsed = parse_url("ws://example.com")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.port = WSPort(81)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.host = WSHost("evil.com")  # type: ignore[misc]
    assert parsed.port == 80


def test_field_order_equality_and_hash() -> None:
    names = [field.name for field in dataclasses.fields(WSParsedURL)]
    assert names == [
        "url",
        "scheme",
        "is_secure",
        "netloc",
        "host",
        "port",
        "path",
        "query",
        "username",
        "password",
    ]
    assert parse_url("ws://h/x") == parse_url("ws://h/x")
    assert hash(parse_url("ws://h/x")) == hash(parse_url("ws://h/x"))
    assert parse_url("ws://h/x") != parse_url("ws://h/y")


def test_module_is_sans_io() -> None:
    import picows._url as module

    assert module.__all__ == ["WSParsedURL", "parse_url"]
    assert module.__file__ is not None
    with open(module.__file__, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported  # the walk found the imports at all
    assert not imported & {"asyncio", "socket", "ssl", "selectors"}


# --- properties ------------------------------------------------------------------


def _check_invariants(parsed: WSParsedURL, url: str, is_proxy: bool) -> None:
    assert parsed.url == url
    assert parsed.host
    assert 0 <= parsed.port <= 65535
    assert parsed.resource_name.startswith("/")
    assert parsed.resource_name.isascii()
    assert parsed.resource_name.isprintable()
    assert " " not in parsed.resource_name
    assert parsed.netloc.isascii()
    assert parsed.netloc.isprintable()
    assert " " not in parsed.netloc
    assert "@" not in parsed.netloc
    if not is_proxy:
        assert parsed.scheme in ("ws", "wss")
        assert parsed.is_secure is (parsed.scheme == "wss")
    # Rebuilding the URL from its parts gives the same parts back.
    again = parse_url(
        f"{parsed.scheme}://{parsed.netloc}{parsed.resource_name}", check_scheme=not is_proxy
    )
    assert (again.host, again.port, again.netloc) == (parsed.host, parsed.port, parsed.netloc)
    assert again.resource_name == parsed.resource_name
    assert again.query == parsed.query


def _parse_or_invalid(url: str, is_proxy: bool = False) -> Optional[WSParsedURL]:
    try:
        parsed = parse_url(url, check_scheme=not is_proxy)
    except WSInvalidURL as exc:
        assert exc.url == url
        assert exc.msg
        return None
    assert isinstance(parsed, WSParsedURL)
    _check_invariants(parsed, url, is_proxy)
    return parsed


@given(st.text())
def test_property_arbitrary_text(url: str) -> None:
    _parse_or_invalid(url)
    _parse_or_invalid(url, is_proxy=True)


@given(st.text())
def test_property_ws_prefix(rest: str) -> None:
    _parse_or_invalid("ws://" + rest)
    _parse_or_invalid("socks5://" + rest, is_proxy=True)


_URL_ALPHABET = st.sampled_from(
    [*"aZ09-._~:/?#[]@!$&'()*+,;=%", "%41", "%e4", "ä", "ü", "\u3002", "ß", "\U0001f600"]
)


@given(
    st.sampled_from(["ws", "WSS", "wss", "http"]),
    st.lists(_URL_ALPHABET, max_size=40).map("".join),
)
def test_property_url_like_text(scheme: str, rest: str) -> None:
    _parse_or_invalid(f"{scheme}://{rest}")


@given(
    st.from_regex(
        r"[a-z0-9\u00e0-\u00ff]{1,20}(\.[a-z0-9\u00e0-\u00ff]{1,20}){0,3}", fullmatch=True
    ),
    st.integers(min_value=0, max_value=65535),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"))),
)
def test_property_valid_urls_parse(host: str, port: int, path: str) -> None:
    path = path.replace("#", "").replace("?", "")
    parsed = _parse_or_invalid(f"wss://{host}:{port}/{path}")
    if parsed is not None:
        assert parsed.port == port
        assert parsed.path.startswith("/")
    elif host.isascii():
        pytest.fail(f"ASCII host {host!r} should always parse")
