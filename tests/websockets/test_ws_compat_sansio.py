"""The Sans-I/O parts behind picows.websockets, fed bytes only: no socket, no loop.

* ``picows._messages.MessageRules``: RFC 6455 5.4 (fragmentation), 5.2 (RSV bits),
  8.1 (UTF-8, incremental);
* ``permessage_deflate``: RFC 7692 compression, its negotiation tables, and the
  bound on decompression;
* ``headers``: the Sec-WebSocket-Extensions grammar of RFC 6455 9.1.
"""

from __future__ import annotations

import ast
import os
import zlib
from pathlib import Path
from typing import Optional

import pytest

from picows import WSCloseCode, WSMsgType, WSProtocolError
from picows._messages import MessageRules
from picows.websockets import (
    DuplicateParameter,
    InvalidHeaderFormat,
    InvalidParameterName,
    InvalidParameterValue,
    NegotiationError,
)
from picows.websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from picows.websockets.headers import build_extension, parse_extension, parse_subprotocol

TEXT, BINARY, CONT, PING = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION, WSMsgType.PING
SRC = Path(__file__).resolve().parents[2] / "src" / "picows"


def test_sansio_modules_import_no_io() -> None:
    """The rules, the codec, the negotiation and the header grammar never do I/O."""
    for path in (
        SRC / "_messages.py",
        SRC / "websockets" / "extensions" / "permessage_deflate.py",
        SRC / "websockets" / "asyncio" / "negotiation.py",
        SRC / "websockets" / "headers.py",
    ):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not names & {"asyncio", "socket", "ssl", "selectors"}, path


# -- MessageRules ------------------------------------------------------------------


def fails(code: int, rules: MessageRules, *frame: int, payload: bytes = b"") -> None:
    with pytest.raises(WSProtocolError) as info:
        rules.feed(*frame, payload)  # type: ignore[call-arg]
    assert info.value.code == code


def test_rules_accept_fragmented_and_interleaved_control() -> None:
    rules = MessageRules()
    rules.feed(TEXT, 0, 0, 0, 0, b"he")
    rules.feed(PING, 1, 0, 0, 0, b"")  # 5.5: control frames may come in between
    assert rules.in_message
    rules.feed(CONT, 1, 0, 0, 0, b"llo")
    assert not rules.in_message
    rules.feed(BINARY, 1, 0, 0, 0, b"\xff")  # binary is never decoded


@pytest.mark.parametrize(
    "frames",
    [
        [(CONT, 1)],  # continuation outside a message
        [(TEXT, 0), (TEXT, 1)],  # a new message before the first ended
        [(BINARY, 0), (BINARY, 1)],
        [(0x3, 1)],  # reserved opcode
    ],
)
def test_rules_5_4_sequencing(frames: list[tuple[int, int]]) -> None:
    rules = MessageRules()
    *ok, (opcode, fin) = frames
    for op, f in ok:
        rules.feed(op, f, 0, 0, 0, b"")
    fails(WSCloseCode.PROTOCOL_ERROR, rules, opcode, fin, 0, 0, 0)


def test_rules_5_2_rsv_bits() -> None:
    fails(1002, MessageRules(), TEXT, 1, 1, 0, 0)  # RSV1 without permessage-deflate
    fails(1002, MessageRules(rsv1_allowed=True), TEXT, 1, 0, 1, 0)  # RSV2: never
    fails(1002, MessageRules(rsv1_allowed=True), BINARY, 1, 0, 0, 1)  # RSV3: never
    rules = MessageRules(rsv1_allowed=True)
    assert rules.frame(TEXT, 0, 1, 0, 0) is True  # compressed message
    # RFC 7692 6.1: RSV1 only on the first frame.
    with pytest.raises(WSProtocolError, match="RSV1"):
        rules.frame(CONT, 1, 1, 0, 0)
    assert MessageRules(rsv1_allowed=True).frame(TEXT, 1, 0, 0, 0) is False


def test_rules_8_1_utf8_fails_at_first_bad_byte_inside_a_fragment() -> None:
    rules = MessageRules()
    rules.feed(TEXT, 0, 0, 0, 0, "é".encode()[:1])  # an unfinished character is fine
    rules.feed(CONT, 0, 0, 0, 0, "é".encode()[1:] + b"ok")
    # The message is not finished, yet the invalid byte fails it now.
    fails(WSCloseCode.INVALID_TEXT, rules, CONT, 0, 0, 0, 0, payload=b"ab\xff")


@pytest.mark.parametrize(
    "payload",
    [b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xe2\x82"],  # surrogate, >U+10FFFF,
    # overlong, truncated at the end of the message
)
def test_rules_8_1_invalid_utf8(payload: bytes) -> None:
    fails(WSCloseCode.INVALID_TEXT, MessageRules(), TEXT, 1, 0, 0, 0, payload=payload)


def test_rules_text_returns_the_decoded_pieces() -> None:
    rules = MessageRules()
    assert rules.frame(TEXT, 1, 0, 0, 0) is False
    assert rules.text("héllo".encode(), 1) == "héllo"
    rules.frame(TEXT, 0, 0, 0, 0)
    assert rules.text(b"h\xc3", 0) == "h"
    rules.frame(CONT, 1, 0, 0, 0)
    assert rules.text(b"\xa9", 1) == "é"


# -- PerMessageDeflate -----------------------------------------------------------------


def pair(
    client_nct: bool = False, server_nct: bool = False, client_bits: int = 15, server_bits: int = 15
) -> tuple[PerMessageDeflate, PerMessageDeflate]:
    client = PerMessageDeflate(server_nct, client_nct, server_bits, client_bits)
    server = PerMessageDeflate(client_nct, server_nct, client_bits, server_bits)
    return client, server


@pytest.mark.parametrize("nct", [False, True])
@pytest.mark.parametrize("bits", [8, 9, 12, 15])
def test_deflate_roundtrip_and_context_takeover(nct: bool, bits: int) -> None:
    client, server = pair(client_nct=nct, client_bits=bits)
    message = b"the same sentence, again and again; " * 40
    sizes = []
    for _ in range(3):
        wire = client.compress(message, first=True, fin=True)
        # 7.2.1: the trailing 00 00 ff ff is removed before sending.
        assert not wire.endswith(b"\x00\x00\xff\xff")
        sizes.append(len(wire))
        assert server.decompress(wire, first=True, fin=True, max_length=None) == message
    if nct or bits == 8:
        assert sizes[0] == sizes[1] == sizes[2]  # every message starts afresh
    else:
        assert sizes[1] < sizes[0]  # 7.1.1: the window carries over


def test_deflate_window_8_sends_no_back_references() -> None:
    """zlib refuses wbits=-8 for deflate; we send Huffman-only data, which a
    decoder with a 256-byte window (and zlib's own inflate at -8) accepts."""
    client, _ = pair(client_bits=8)
    message = os.urandom(300) * 4  # repeats farther back than 256 bytes
    wire = client.compress(message, first=True, fin=True)
    assert zlib.decompressobj(wbits=-8).decompress(wire + b"\x00\x00\xff\xff") == message


def test_deflate_fragments() -> None:
    client, server = pair()
    parts = [b"a" * 300, b"b" * 300, b"c" * 300]
    wire = [client.compress(p, first=i == 0, fin=i == len(parts) - 1) for i, p in enumerate(parts)]
    out = [
        server.decompress(w, first=i == 0, fin=i == len(wire) - 1, max_length=None)
        for i, w in enumerate(wire)
    ]
    assert b"".join(out) == b"".join(parts)


# 10 MiB of zeros deflate to ~10 KiB (inflated in two calls: the data, then the
# 4-byte tail); 1 MiB to ~1 KiB (a small frame: inflated with its tail in one call).
@pytest.mark.parametrize("bomb_size", [10 * 2**20, 2**20])
@pytest.mark.parametrize("limit", [0, 1, 1000, 65536])
def test_deflate_bounded_one_frame(limit: int, bomb_size: int) -> None:
    """A message over the limit stops after at most limit + 1 inflated bytes."""
    bomb = zlib.compressobj(wbits=-15)
    wire = bomb.compress(bytes(bomb_size)) + bomb.flush(zlib.Z_SYNC_FLUSH)
    assert (len(wire) < 2048) == (bomb_size < 10 * 2**20)
    _, server = pair()
    with pytest.raises(WSProtocolError) as info:
        server.decompress(wire[:-4], first=True, fin=True, max_length=limit)
    assert info.value.code == WSCloseCode.MESSAGE_TOO_BIG
    # Exactly at the limit is fine.
    exact = zlib.compressobj(wbits=-15)
    wire = exact.compress(bytes(limit)) + exact.flush(zlib.Z_SYNC_FLUSH)
    _, server = pair()
    assert server.decompress(wire[:-4], first=True, fin=True, max_length=limit) == bytes(limit)


def test_deflate_bounded_across_fragments() -> None:
    """The budget of a message is shared by its frames: a first fragment that
    fills it exactly, then a bomb, fails at the bomb's first frame."""
    client, server = pair()
    budget = 2**20
    first = client.compress(os.urandom(budget), first=True, fin=False)
    assert len(server.decompress(first, first=True, fin=False, max_length=budget)) == budget
    bomb = client.compress(bytes(64 * 2**20), first=False, fin=False)
    assert len(bomb) < 2**20  # small on the wire
    with pytest.raises(WSProtocolError) as info:
        server.decompress(bomb, first=False, fin=False, max_length=0)
    assert info.value.code == 1009


def test_deflate_invalid_data_is_1002() -> None:
    _, server = pair()
    with pytest.raises(WSProtocolError) as info:
        server.decompress(b"not-a-valid-deflate-stream", first=True, fin=True, max_length=None)
    assert info.value.code == WSCloseCode.PROTOCOL_ERROR


# -- negotiation (RFC 7692 7.1) -----------------------------------------------------------


def server_answer(
    offer: str, **config: object
) -> tuple[Optional[list[tuple[str, Optional[str]]]], Optional[PerMessageDeflate]]:
    factory = ServerPerMessageDeflateFactory(**config)  # type: ignore[arg-type]
    ((_, params),) = parse_extension(offer)
    try:
        answer, ext = factory.process_request_params(params, [])
    except NegotiationError:
        return None, None
    return answer, ext


@pytest.mark.parametrize(
    ("offer", "config", "answer"),
    [
        ("permessage-deflate", {}, ""),
        # 7.1.1.1: a server must honour server_no_context_takeover.
        ("permessage-deflate; server_no_context_takeover", {}, "server_no_context_takeover"),
        ("permessage-deflate", {"server_no_context_takeover": True}, "server_no_context_takeover"),
        ("permessage-deflate; client_no_context_takeover", {}, "client_no_context_takeover"),
        # 7.1.2.1: the client's limit on our window is accepted, capped by ours.
        ("permessage-deflate; server_max_window_bits=10", {}, "server_max_window_bits=10"),
        (
            "permessage-deflate; server_max_window_bits=14",
            {"server_max_window_bits": 12},
            "server_max_window_bits=12",
        ),
        ("permessage-deflate; server_max_window_bits=8", {}, "server_max_window_bits=8"),
        # 7.1.2.2: we may limit the client's window only if it offered the parameter.
        ("permessage-deflate; client_max_window_bits", {}, ""),
        (
            "permessage-deflate; client_max_window_bits",
            {"client_max_window_bits": 10},
            "client_max_window_bits=10",
        ),
        ("permessage-deflate", {"client_max_window_bits": 10}, ""),
        ("permessage-deflate; client_max_window_bits=9", {}, "client_max_window_bits=9"),
    ],
)
def test_server_negotiation(offer: str, config: dict[str, object], answer: str) -> None:
    params, ext = server_answer(offer, **config)
    assert params is not None and ext is not None
    assert build_extension([("permessage-deflate", params)]) == (
        "permessage-deflate" + (f"; {answer}" if answer else "")
    )
    # The codec follows the answer, both ways.
    client_side = ClientPerMessageDeflateFactory(
        client_max_window_bits=True if "client_max_window_bits" in offer else None,
        server_no_context_takeover="server_no_context_takeover" in offer,
    ).process_response_params(params, [])
    message = b"negotiated " * 100
    for a, b in ((ext, client_side), (client_side, ext)):
        assert (
            b.decompress(
                a.compress(message, first=True, fin=True), first=True, fin=True, max_length=None
            )
            == message
        )


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; server_no_context_takeover=1",  # has no value
        "permessage-deflate; server_max_window_bits",  # needs a value
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",  # leading zero
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; unknown",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
    ],
)
def test_server_declines_offers_it_cannot_accept(offer: str) -> None:
    assert server_answer(offer) == (None, None)


def test_server_requires_client_max_window_bits_when_configured() -> None:
    config = {"client_max_window_bits": 10, "require_client_max_window_bits": True}
    assert server_answer("permessage-deflate", **config) == (None, None)


@pytest.mark.parametrize(
    ("request_config", "answer", "error"),
    [
        ({"server_no_context_takeover": True}, [], "expected server_no_context_takeover"),
        ({"server_max_window_bits": 10}, [], "expected server_max_window_bits"),
        (
            {"server_max_window_bits": 10},
            [("server_max_window_bits", "12")],
            "unsupported server_max_window_bits",
        ),
        ({"client_max_window_bits": None}, [("client_max_window_bits", "10")], "unexpected"),
        ({"client_max_window_bits": 10}, [("client_max_window_bits", "12")], "unsupported"),
    ],
)
def test_client_rejects_answers_it_did_not_allow(
    request_config: dict[str, object], answer: list[tuple[str, Optional[str]]], error: str
) -> None:
    factory = ClientPerMessageDeflateFactory(**request_config)  # type: ignore[arg-type]
    with pytest.raises(NegotiationError, match=error):
        factory.process_response_params(answer, [])


def test_client_parameter_errors() -> None:
    factory = ClientPerMessageDeflateFactory()
    with pytest.raises(DuplicateParameter):
        factory.process_response_params(
            [("server_max_window_bits", "9"), ("server_max_window_bits", "9")], []
        )
    with pytest.raises(InvalidParameterName):
        factory.process_response_params([("x", None)], [])
    with pytest.raises(InvalidParameterValue):
        # Only an offer may carry client_max_window_bits without a value.
        factory.process_response_params([("client_max_window_bits", None)], [])


# -- RFC 6455 9.1 grammar -------------------------------------------------------------------


def test_extension_header_grammar() -> None:
    assert parse_extension(
        'permessage-deflate ; client_max_window_bits="10"; server_no_context_takeover , x-y,,'
    ) == [
        (
            "permessage-deflate",
            [("client_max_window_bits", "10"), ("server_no_context_takeover", None)],
        ),
        ("x-y", []),
    ]
    for bad in ("", "a b", "a; =1", 'a; b="c d"', "a; b=", 'a; b="unterminated'):
        with pytest.raises(InvalidHeaderFormat):
            parse_extension(bad)
    assert parse_subprotocol("chat, superchat ,, v2") == ["chat", "superchat", "v2"]
