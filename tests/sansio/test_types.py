"""Tests for picows._types (flexible IntEnums) and picows._exceptions (behaviors 2.1, 2.9)."""

from __future__ import annotations

import enum
import pickle
from typing import Any

import pytest

from picows._exceptions import (
    WSError,
    WSHandshakeError,
    WSInvalidHeaderError,
    WSInvalidMessageError,
    WSInvalidStatusError,
    WSInvalidUpgradeError,
    WSInvalidURL,
    WSProtocolError,
)
from picows._types import PICOWS_DEBUG_LL, WSAutoPingStrategy, WSCloseCode, WSMsgType

# --- enum values -----------------------------------------------------------------


def test_msg_type_members() -> None:
    assert {m.name: m.value for m in WSMsgType} == {
        "CONTINUATION": 0,
        "TEXT": 1,
        "BINARY": 2,
        "CLOSE": 8,
        "PING": 9,
        "PONG": 0xA,
    }


def test_close_code_members() -> None:
    assert {m.name: m.value for m in WSCloseCode} == {
        "NO_INFO": 0,
        "OK": 1000,
        "GOING_AWAY": 1001,
        "PROTOCOL_ERROR": 1002,
        "UNSUPPORTED_DATA": 1003,
        "ABNORMAL_CLOSURE": 1006,
        "INVALID_TEXT": 1007,
        "POLICY_VIOLATION": 1008,
        "MESSAGE_TOO_BIG": 1009,
        "MANDATORY_EXTENSION": 1010,
        "INTERNAL_ERROR": 1011,
        "SERVICE_RESTART": 1012,
        "TRY_AGAIN_LATER": 1013,
        "BAD_GATEWAY": 1014,
    }


def test_close_code_has_no_1005_or_1015_member() -> None:
    values = {m.value for m in WSCloseCode}
    assert 1005 not in values
    assert 1015 not in values
    assert WSCloseCode(1005).name is None  # only a pseudo-member
    assert WSCloseCode(1015).name is None


def test_auto_ping_strategy_members() -> None:
    assert {m.name: m.value for m in WSAutoPingStrategy} == {
        "PING_WHEN_IDLE": 1,
        "PING_PERIODICALLY": 2,
    }


@pytest.mark.parametrize("enum_type", [WSMsgType, WSCloseCode, WSAutoPingStrategy])
def test_enums_are_int_enums(enum_type: Any) -> None:
    assert issubclass(enum_type, enum.IntEnum)
    for member in enum_type:
        assert isinstance(member, int)
        assert member == member.value
        assert hash(member) == hash(member.value)


def test_members_compare_equal_to_ints() -> None:
    assert WSMsgType.TEXT == 1
    assert WSCloseCode.OK == 1000
    assert WSMsgType(1) is WSMsgType.TEXT
    assert WSCloseCode(1000) is WSCloseCode.OK
    assert {WSMsgType.PING: "x"}[9] == "x"


def test_debug_level() -> None:
    assert PICOWS_DEBUG_LL == 9
    assert type(PICOWS_DEBUG_LL) is int


# --- flexible enums --------------------------------------------------------------


@pytest.mark.parametrize("value", [4000, 3000, 4999, 1005, 1015, 5000, 65535])
def test_close_code_accepts_unknown_values(value: int) -> None:
    code = WSCloseCode(value)
    assert code == value
    assert int(code) == value
    assert isinstance(code, WSCloseCode)
    assert isinstance(code, int)
    assert repr(code) == f"<WSCloseCode: {value}>"
    assert f"{code}" == str(value)
    assert WSCloseCode(value) is code  # cached: one object per value


def test_pseudo_members_do_not_join_iteration() -> None:
    WSCloseCode(4321)
    WSMsgType(7)
    assert 4321 not in [m.value for m in WSCloseCode]
    assert len(list(WSCloseCode)) == 14
    assert len(list(WSMsgType)) == 6


def test_msg_type_accepts_unknown_opcode() -> None:
    op = WSMsgType(4)
    assert op == 4
    assert isinstance(op, WSMsgType)
    assert repr(op) == "<WSMsgType: 4>"
    assert WSMsgType(4) is op
    assert WSMsgType(0xF) == 0xF


def test_member_repr_and_format() -> None:
    assert repr(WSCloseCode.OK) == "<WSCloseCode.OK: 1000>"
    assert repr(WSMsgType.TEXT) == "<WSMsgType.TEXT: 1>"
    assert f"{WSCloseCode.OK}" == "1000"
    assert f"{WSMsgType.PONG}" == "10"
    assert f"{WSCloseCode.OK:>6}" == "  1000"
    assert f"{WSMsgType.PONG:#x}" == "0xa"
    assert str(int(WSCloseCode.OK)) == "1000"


@pytest.mark.parametrize("bad", ["1000", "OK", 1.5, None, b"\x03\xe8", [1000]])
@pytest.mark.parametrize("enum_type", [WSMsgType, WSCloseCode, WSAutoPingStrategy])
def test_non_int_raises_value_error(enum_type: Any, bad: Any) -> None:
    with pytest.raises(ValueError):
        enum_type(bad)


def test_members_pickle() -> None:
    assert pickle.loads(pickle.dumps(WSCloseCode.OK)) is WSCloseCode.OK
    assert pickle.loads(pickle.dumps(WSMsgType.BINARY)) is WSMsgType.BINARY


# --- exceptions -------------------------------------------------------------------

ALL_EXCEPTIONS = [
    WSHandshakeError,
    WSInvalidMessageError,
    WSInvalidStatusError,
    WSInvalidHeaderError,
    WSInvalidUpgradeError,
    WSProtocolError,
    WSInvalidURL,
]


@pytest.mark.parametrize("exc_type", ALL_EXCEPTIONS, ids=lambda t: t.__name__)
def test_all_derive_from_ws_error(exc_type: type) -> None:
    assert issubclass(exc_type, WSError)
    assert issubclass(WSError, Exception)


def test_hierarchy() -> None:
    assert issubclass(WSInvalidUpgradeError, WSInvalidHeaderError)
    assert issubclass(WSInvalidHeaderError, WSHandshakeError)
    assert issubclass(WSInvalidMessageError, WSHandshakeError)
    assert issubclass(WSInvalidStatusError, WSHandshakeError)
    assert not issubclass(WSProtocolError, WSHandshakeError)
    assert not issubclass(WSInvalidURL, WSHandshakeError)


def test_handshake_error_attributes() -> None:
    exc = WSHandshakeError("boom")
    assert str(exc) == "boom"
    assert (exc.raw_header, exc.raw_body, exc.response) == (None, None, None)
    response = object()
    exc = WSHandshakeError("boom", b"HTTP/1.1 400 Bad\r\n\r\n", b"body", response)  # type: ignore[arg-type]
    assert exc.raw_header == b"HTTP/1.1 400 Bad\r\n\r\n"
    assert exc.raw_body == b"body"
    assert exc.response is response
    kw = WSInvalidStatusError("no", raw_header=b"h", raw_body=b"b", response=response)  # type: ignore[arg-type]
    assert (kw.raw_header, kw.raw_body, kw.response) == (b"h", b"b", response)
    assert str(kw) == "no"


@pytest.mark.parametrize("exc_type", [WSInvalidHeaderError, WSInvalidUpgradeError])
def test_invalid_header_error_attributes(exc_type: Any) -> None:
    exc = exc_type("bad Upgrade", "Upgrade")
    assert str(exc) == "bad Upgrade"
    assert (exc.name, exc.value) == ("Upgrade", None)
    assert (exc.raw_header, exc.raw_body, exc.response) == (None, None, None)
    exc = exc_type("bad", "Connection", "close", b"raw", b"body", None)
    assert (exc.name, exc.value, exc.raw_header, exc.raw_body) == (
        "Connection",
        "close",
        b"raw",
        b"body",
    )
    exc = exc_type("bad", name="X", value="y", raw_header=b"r")
    assert (exc.name, exc.value, exc.raw_header) == ("X", "y", b"r")


def test_protocol_error() -> None:
    exc = WSProtocolError(WSCloseCode.PROTOCOL_ERROR, "Received frame with invalid opcode=0x3")
    assert exc.code is WSCloseCode.PROTOCOL_ERROR
    assert str(exc) == "Received frame with invalid opcode=0x3"
    assert exc.args == (WSCloseCode.PROTOCOL_ERROR, "Received frame with invalid opcode=0x3")
    user = WSProtocolError(4000, "custom")
    assert (user.code, str(user), user.args) == (4000, "custom", (4000, "custom"))
    with pytest.raises(WSError):
        raise user


def test_invalid_url() -> None:
    exc = WSInvalidURL("ftp://x", "scheme isn't ws or wss")
    assert str(exc) == "ftp://x isn't a valid URL: scheme isn't ws or wss"
    assert exc.url == "ftp://x"
