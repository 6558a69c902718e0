"""Tests for picows._close: CLOSE payloads (RFC 6455 5.5.1, 7.4) and close bookkeeping."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from picows._close import (
    MAX_CLOSE_REASON,
    WSCloseHandshake,
    WSCloseInfo,
    build_close_payload,
    close_frame_for,
    is_valid_received_close_code,
    parse_close_payload,
    truncate_reason,
)
from picows._exceptions import WSProtocolError
from picows._types import WSCloseCode

# --- parse_close_payload ------------------------------------------------------------


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_parse_empty_payload_is_no_info(kind: Any) -> None:
    info = parse_close_payload(kind(b""))
    assert info == WSCloseInfo(WSCloseCode.NO_INFO, "")
    assert info.code is WSCloseCode.NO_INFO


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_parse_code_only(kind: Any) -> None:
    info = parse_close_payload(kind(b"\x03\xe8"))
    assert info == WSCloseInfo(WSCloseCode.OK, "")
    assert info.code is WSCloseCode.OK


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_parse_code_and_reason(kind: Any) -> None:
    info = parse_close_payload(kind(b"\x03\xe9" + "au revoir, ça va".encode()))
    assert info.code is WSCloseCode.GOING_AWAY
    assert info.reason == "au revoir, ça va"
    assert type(info.reason) is str


def test_parse_unknown_valid_code_gives_pseudo_member() -> None:
    info = parse_close_payload(b"\x0f\xa0app")  # 4000
    assert info.code == 4000
    assert isinstance(info.code, WSCloseCode)
    assert info.reason == "app"


def test_parse_one_byte_payload() -> None:
    with pytest.raises(WSProtocolError) as info:
        parse_close_payload(b"\x03")
    assert info.value.code == WSCloseCode.PROTOCOL_ERROR


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_parse_invalid_code(code: int) -> None:
    with pytest.raises(WSProtocolError) as info:
        parse_close_payload(code.to_bytes(2, "big") + b"reason")
    assert info.value.code == WSCloseCode.PROTOCOL_ERROR
    assert str(code) in str(info.value)


@pytest.mark.parametrize(
    "reason", [b"\xff", b"abc\xe2\x82", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]
)
def test_parse_reason_not_utf8(reason: bytes) -> None:
    with pytest.raises(WSProtocolError) as info:
        parse_close_payload(b"\x03\xe8" + reason)
    assert info.value.code == WSCloseCode.INVALID_TEXT


@given(
    code=st.one_of(st.integers(1000, 1003), st.integers(1007, 1014), st.integers(3000, 4999)),
    reason=st.text(max_size=40),
)
def test_build_then_parse_round_trip(code: int, reason: str) -> None:
    payload = build_close_payload(code, reason)
    assert payload == code.to_bytes(2, "big") + reason.encode("utf-8")
    assert parse_close_payload(payload) == WSCloseInfo(WSCloseCode(code), reason)


# --- build_close_payload ------------------------------------------------------------


@pytest.mark.parametrize("message", [None, "", "bye", b"bye", bytearray(b"bye")])
def test_build_no_info_is_empty(message: Any) -> None:
    """behaviors.md 5 item 4: NO_INFO sends no code (and so no reason either)."""
    assert build_close_payload(WSCloseCode.NO_INFO, message) == b""
    assert build_close_payload(0, message) == b""


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (None, b""),
        ("", b""),
        ("bye", b"bye"),
        ("ça va ✓", "ça va ✓".encode()),
        (b"raw\xff", b"raw\xff"),
        (bytearray(b"ba"), b"ba"),
        (memoryview(b"mv"), b"mv"),
    ],
)
def test_build_messages(message: Any, expected: bytes) -> None:
    payload = build_close_payload(WSCloseCode.OK, message)
    assert payload == b"\x03\xe8" + expected
    assert type(payload) is bytes


@pytest.mark.parametrize("code", [1000, 1003, 1007, 1014, 3000, 4000, 4999])
def test_build_code_is_big_endian(code: int) -> None:
    assert build_close_payload(code, None) == code.to_bytes(2, "big")
    assert build_close_payload(WSCloseCode(code), "x") == code.to_bytes(2, "big") + b"x"


@pytest.mark.parametrize(
    "code", [1, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 0xFFFF, 0x10000, 2**32, -1]
)
def test_codes_that_must_never_be_sent(code: int) -> None:
    """7.4: 1005, 1006 and 1015 "MUST NOT be set", 1004 and 1016-2999 are reserved, and
    codes below 1000 or from 5000 on do not exist: refused before anything is sent."""
    with pytest.raises(ValueError, match="must not be sent"):
        build_close_payload(code, "x")


def test_reason_must_fit_a_control_frame() -> None:
    """5.5: a control payload is at most 125 bytes, 2 of which hold the code."""
    assert len(build_close_payload(1000, "r" * 123)) == 125
    with pytest.raises(ValueError, match="at most 123 bytes"):
        build_close_payload(1000, "r" * 124)
    with pytest.raises(ValueError, match="at most 123 bytes"):
        build_close_payload(1000, "\u20ac" * 42)  # 126 bytes of UTF-8


# --- is_valid_received_close_code --------------------------------------------------


def test_valid_received_close_code_table() -> None:
    """RFC 6455 7.4: registered codes, and 3000-4999; never 0, 1004-1006, 1015, 5000+."""
    valid = {1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)}
    for code in range(0, 70000):
        assert is_valid_received_close_code(code) is (code in valid), code


@pytest.mark.parametrize("code", [0, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
def test_invalid_received_codes_spot_check(code: int) -> None:
    assert not is_valid_received_close_code(code)


@pytest.mark.parametrize("code", [1000, 1003, 1007, 1014, 3000, 4999])
def test_valid_received_codes_spot_check(code: int) -> None:
    assert is_valid_received_close_code(code)


# --- close_frame_for ------------------------------------------------------------


def test_close_frame_for_protocol_error_keeps_code_and_reason() -> None:
    exc = WSProtocolError(WSCloseCode.PROTOCOL_ERROR, "bad frame")
    code, reason = close_frame_for(exc)
    assert code is WSCloseCode.PROTOCOL_ERROR
    assert reason == b"bad frame"


def test_close_frame_for_user_protocol_error_with_int_code() -> None:
    code, reason = close_frame_for(WSProtocolError(4001, "quota exceeded"))
    assert code == 4001
    assert isinstance(code, WSCloseCode)
    assert reason == b"quota exceeded"


def test_close_frame_for_long_reason_is_truncated() -> None:
    code, reason = close_frame_for(WSProtocolError(WSCloseCode.MESSAGE_TOO_BIG, "é" * 200))
    assert code is WSCloseCode.MESSAGE_TOO_BIG
    assert len(reason) <= 123
    assert reason.decode("utf-8") == "é" * (len(reason) // 2)
    assert len(reason) == 122


@pytest.mark.parametrize(
    "exc",
    [ValueError("secret detail"), RuntimeError(), KeyError("k"), KeyboardInterrupt(), Exception()],
)
def test_close_frame_for_other_exceptions_is_internal_error(exc: BaseException) -> None:
    assert close_frame_for(exc) == (WSCloseCode.INTERNAL_ERROR, b"")
    assert close_frame_for(exc)[0] is WSCloseCode.INTERNAL_ERROR


# --- truncate_reason ------------------------------------------------------------


def test_max_close_reason() -> None:
    assert MAX_CLOSE_REASON == 123


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("", b""),
        ("a" * 123, b"a" * 123),
        ("a" * 124, b"a" * 123),
        ("a" * 122 + "é", b"a" * 122),  # a 2-byte character would straddle the limit
        ("a" * 121 + "é", b"a" * 121 + "é".encode()),
        ("a" * 121 + "€", b"a" * 121),  # 3 bytes
        ("a" * 120 + "€", b"a" * 120 + "€".encode()),
        ("a" * 120 + "😀", b"a" * 120),  # 4 bytes
        ("a" * 119 + "😀", b"a" * 119 + "😀".encode()),
    ],
)
def test_truncate_reason_examples(reason: str, expected: bytes) -> None:
    assert truncate_reason(reason) == expected


@settings(max_examples=300, deadline=None)
@given(reason=st.text(max_size=200))
def test_truncate_reason_never_splits_a_character(reason: str) -> None:
    encoded = reason.encode("utf-8")
    result = truncate_reason(reason)
    assert type(result) is bytes
    assert len(result) <= 123
    decoded = result.decode("utf-8")  # never a partial character
    assert reason.startswith(decoded)
    if len(encoded) <= 123:
        assert result == encoded
    else:
        # As much as fits: the next character would have crossed the limit.
        next_char = reason[len(decoded)]
        assert len(result) + len(next_char.encode("utf-8")) > 123


@pytest.mark.parametrize(
    "reason", ["bad \udcff byte", "\ud800", "x" * 130 + "\udc80"], ids=["escaped", "lone", "long"]
)
def test_truncate_reason_survives_lone_surrogates(reason: str) -> None:
    """Error texts may carry surrogateescape-decoded bytes; failing the connection must
    not itself fail, and what goes on the wire must be valid UTF-8 (RFC 6455 5.5.1)."""
    result = truncate_reason(reason)
    assert len(result) <= 123
    result.decode("utf-8")
    code, wire_reason = close_frame_for(WSProtocolError(WSCloseCode.PROTOCOL_ERROR, reason))
    assert code is WSCloseCode.PROTOCOL_ERROR
    wire_reason.decode("utf-8")


# --- WSCloseInfo / WSCloseHandshake ---------------------------------------------


def test_close_info_is_frozen_value() -> None:
    info = WSCloseInfo(WSCloseCode.OK, "bye")
    assert (info.code, info.reason) == (WSCloseCode.OK, "bye")
    assert info == WSCloseInfo(WSCloseCode.OK, "bye")
    assert info != WSCloseInfo(WSCloseCode.GOING_AWAY, "bye")
    assert hash(info) == hash(WSCloseInfo(WSCloseCode.OK, "bye"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.code = WSCloseCode.GOING_AWAY  # type: ignore[misc]


def test_close_handshake_defaults_and_fields() -> None:
    handshake = WSCloseHandshake()
    assert (handshake.recv, handshake.sent, handshake.recv_then_sent) == (None, None, False)
    handshake.recv = WSCloseInfo(WSCloseCode.OK, "")
    handshake.sent = WSCloseInfo(WSCloseCode.OK, "done")
    handshake.recv_then_sent = True
    assert handshake == WSCloseHandshake(
        WSCloseInfo(WSCloseCode.OK, ""), WSCloseInfo(WSCloseCode.OK, "done"), True
    )
