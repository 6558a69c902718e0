"""The public API matches upstream picows 2.x: names, signatures and defaults."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
from typing import Any

import pytest

import picows
from picows import WSAutoPingStrategy

UPSTREAM_ALL = {
    "WSError", "WSHandshakeError", "WSInvalidMessageError", "WSInvalidStatusError",
    "WSInvalidHeaderError", "WSInvalidUpgradeError", "WSProtocolError", "WSUpgradeRequest",
    "WSUpgradeResponse", "WSUpgradeResponseWithListener", "PICOWS_DEBUG_LL", "WSInvalidURL",
    "WSParsedURL", "WSMsgType", "WSCloseCode", "WSAutoPingStrategy", "WSFrame", "WSTransport",
    "WSListener", "ws_connect", "ws_create_server",
}  # fmt: skip

ALSO_EXPORTED = {"WSCloseInfo", "WSCloseHandshake", "WSHost", "WSPort", "WSBuffer", "WSHeadersLike"}


def test_every_upstream_name_is_exported() -> None:
    missing = sorted(name for name in UPSTREAM_ALL | ALSO_EXPORTED if not hasattr(picows, name))
    assert missing == []
    assert UPSTREAM_ALL | ALSO_EXPORTED <= set(picows.__all__)
    assert isinstance(picows.__version__, str) and isinstance(picows.__author__, str)


def test_backend_is_visible() -> None:
    assert picows.BACKEND in ("python", "cffi")


def _defaults(func: Any) -> dict[str, Any]:
    return {
        name: param.default
        for name, param in inspect.signature(func).parameters.items()
        if param.kind is not inspect.Parameter.VAR_KEYWORD
    }


def test_ws_connect_signature() -> None:
    assert _defaults(picows.ws_connect) == {
        "ws_listener_factory": inspect.Parameter.empty,
        "url": inspect.Parameter.empty,
        "ssl_context": None,
        "disconnect_on_exception": True,
        "websocket_handshake_timeout": 5,
        "logger_name": None,
        "enable_auto_ping": False,
        "auto_ping_idle_timeout": 10,
        "auto_ping_reply_timeout": 10,
        "auto_ping_strategy": WSAutoPingStrategy.PING_WHEN_IDLE,
        "enable_auto_pong": True,
        "max_frame_size": 10 * 1024 * 1024,
        "extra_headers": None,
        "max_redirects": 5,
        "proxy": None,
        "proxy_ssl_context": None,
        "read_buffer_init_size": 16 * 1024,
        "socket_factory": None,
        "use_aiofastnet": None,
    }
    params = inspect.signature(picows.ws_connect).parameters
    assert [p.kind for p in params.values()][:2] == [inspect.Parameter.POSITIONAL_OR_KEYWORD] * 2
    assert params["ssl_context"].kind is inspect.Parameter.KEYWORD_ONLY
    assert inspect.iscoroutinefunction(picows.ws_connect)


def test_ws_create_server_signature() -> None:
    assert _defaults(picows.ws_create_server) == {
        "ws_listener_factory": inspect.Parameter.empty,
        "host": None,
        "port": None,
        "disconnect_on_exception": True,
        "websocket_handshake_timeout": 5,
        "logger_name": None,
        "enable_auto_ping": False,
        "auto_ping_idle_timeout": 20,
        "auto_ping_reply_timeout": 20,
        "auto_ping_strategy": WSAutoPingStrategy.PING_WHEN_IDLE,
        "enable_auto_pong": True,
        "max_frame_size": 10 * 1024 * 1024,
        "read_buffer_init_size": 16 * 1024,
        "use_aiofastnet": None,
    }
    assert inspect.iscoroutinefunction(picows.ws_create_server)


@pytest.mark.parametrize(
    ("cls", "methods"),
    [
        (
            picows.WSTransport,
            [
                "send", "send_ping", "send_pong", "send_close", "send_reuse_external_bytearray",
                "disconnect", "wait_disconnected", "measure_roundtrip_time",
                "notify_user_specific_pong_received",
            ],
        ),
        (
            picows.WSListener,
            [
                "on_ws_connected", "on_ws_frame", "on_ws_disconnected", "send_user_specific_ping",
                "is_user_specific_pong", "pause_writing", "resume_writing",
            ],
        ),
        (
            picows.WSFrame,
            [
                "get_payload_as_bytes", "get_payload_as_memoryview", "get_payload_as_utf8_text",
                "get_payload_as_ascii_text", "get_close_code", "get_close_message",
                "get_close_reason",
            ],
        ),
        (
            picows.WSUpgradeResponse,
            [
                "create_101_response", "create_error_response", "create_redirect_response",
                "create_ok_response", "to_bytes",
            ],
        ),
    ],
)  # fmt: skip
def test_methods_exist(cls: type, methods: list[str]) -> None:
    assert [m for m in methods if not callable(getattr(cls, m, None))] == []


def test_transport_method_defaults() -> None:
    t = picows.WSTransport
    assert _defaults(t.send)["fin"] is True
    assert [_defaults(t.send)[f] for f in ("rsv1", "rsv2", "rsv3")] == [False] * 3
    assert _defaults(t.send_close) == {
        "self": inspect.Parameter.empty,
        "close_code": picows.WSCloseCode.NO_INFO,
        "close_message": None,
    }
    assert _defaults(t.send_ping)["message"] is None
    assert _defaults(t.disconnect)["graceful"] is True
    assert list(inspect.signature(t.send_reuse_external_bytearray).parameters)[1:4] == [
        "msg_type",
        "buffer",
        "msg_offset",
    ]


# Upstream's module paths, and what each must hold: the very objects of ``picows``.
UPSTREAM_MODULES = {
    "picows.picows": [
        "WSMsgType", "WSCloseCode", "WSAutoPingStrategy", "WSFrame", "WSTransport",
        "WSListener", "WSCloseInfo", "WSCloseHandshake", "WSUpgradeRequest",
        "WSUpgradeResponse", "WSUpgradeResponseWithListener", "WSProtocolError",
        "ws_connect", "ws_create_server",
    ],
    "picows.url": ["WSInvalidURL", "WSParsedURL", "parse_url"],
    "picows.api": ["ws_connect", "ws_create_server"],
    "picows.common": [
        "WSError", "WSHandshakeError", "WSInvalidMessageError", "WSInvalidStatusError",
        "WSInvalidHeaderError", "WSInvalidUpgradeError", "WSProtocolError", "WSUpgradeRequest",
        "WSUpgradeResponse", "WSUpgradeResponseWithListener", "PICOWS_DEBUG_LL", "WSHost",
        "WSPort", "WSBuffer", "WSHeadersLike",
    ],
    "picows.types": ["WSMsgType", "WSCloseCode", "WSAutoPingStrategy", "PICOWS_DEBUG_LL"],
    "picows.version": ["__version__", "__author__"],
}  # fmt: skip


@pytest.mark.parametrize("module_name", sorted(UPSTREAM_MODULES))
def test_upstream_module_paths_hold_the_same_objects(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in UPSTREAM_MODULES[module_name]:
        assert getattr(module, name) is getattr(picows, name), f"{module_name}.{name}"
    # And they are attributes of the package, as after upstream's ``import picows``.
    assert getattr(picows, module_name.rpartition(".")[2]) is module


def test_upstream_helper_names() -> None:
    from picows.api import _maybe_handle_redirect, _resolve_logger
    from picows.picows import (
        _make_test_ws_frame,
        _parse_http_request,
        _parse_upgrade_response,
        _validate_upgrade_request,
    )
    from picows.proxy import _MAX_PROXY_RESPONSE_SIZE, HTTPProxyConnectProtocol

    assert _MAX_PROXY_RESPONSE_SIZE == 64 * 1024
    assert issubclass(HTTPProxyConnectProtocol, asyncio.Protocol)
    request = _parse_http_request(
        b"GET /x HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
    )
    # RFC 6455 1.3: the example key and its accept value.
    assert _validate_upgrade_request(request) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    with pytest.raises(RuntimeError, match="Malformed request line"):
        _parse_http_request(b"GET /x")
    assert _parse_upgrade_response(b"HTTP/1.1 101 OK\r\n", b"k") is None  # incomplete
    frame = _make_test_ws_frame(picows.WSMsgType.TEXT, b"hi", False, True)
    assert (frame.get_payload_as_utf8_text(), frame.fin, frame.rsv1) == ("hi", 0, 1)
    assert str(frame).startswith("WSFrame(TEXT, fin=False, rsv1=True")
    assert _resolve_logger(None, "client") is logging.getLogger("picows.client")
    assert callable(_maybe_handle_redirect)
