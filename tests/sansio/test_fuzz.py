"""Corpus-driven fuzzing of the three parsers: requests, responses, frames (both sides).

The seed corpus lives in ``tests/corpus/`` (see its README): real-world and edge-case
inputs whose file names say what each must produce.  :func:`test_corpus_outcomes`
checks that first; the property tests then mutate the seeds with hypothesis (bit
flips, interesting bytes, token insertions, deletions, duplications, splices of two
seeds, truncations) and check, for every mutant:

* only the documented exceptions escape: :class:`~picows.WSHandshakeError` subclasses
  from the handshake parsers, :class:`~picows.WSProtocolError` (1002, 1007 or 1009)
  from the frame parser;
* the parsers are incremental and make progress: the same input gives the same
  outcome whether it arrives whole or cut at random points, a complete header block
  is never left waiting, every frame consumes bytes, and no complete frame is left
  unparsed;
* nothing hangs: every feed returns within a bound, and buffers stay bounded.

``test_http.py`` and ``test_frames.py`` fuzz from one built-in seed each and check
the bounds; this file is the complement: many seeds and chunking invariance.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import open_connection
from picows import (
    WSHandshakeError,
    WSInvalidStatusError,
    WSProtocolError,
    WSUpgradeRequest,
    WSUpgradeResponse,
)
from picows._connection import State
from picows._handshake import (
    ClientHandshake,
    RequestTooLargeError,
    ServerHandshake,
    UnsupportedVersionError,
)
from picows._http11 import MAX_HEADER_BLOCK
from picows._types import WSMsgType

CORPUS = Path(__file__).resolve().parents[1] / "corpus"

# The key and the offers that the response seeds answer.
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
CLIENT_HEADERS = [
    ("Sec-WebSocket-Protocol", "chat, superchat"),
    ("Sec-WebSocket-Extensions", "permessage-deflate"),
]
# Over the corpus' 64 KiB frames, under its 1 MiB one.
MAX_FRAME_SIZE = 100_000
# Each feed of at most a few dozen KB must return well within this (seconds): a
# backtracking regex or a quadratic loop would not.
FEED_BOUND = 1.0

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def load(kind: str) -> dict[str, bytes]:
    files = sorted((CORPUS / kind).iterdir())
    return {f.name: f.read_bytes() for f in files if f.suffix in (".txt", ".bin")}


REQUESTS = load("requests")
RESPONSES = load("responses")
FRAMES = load("frames")
MASKED_FRAMES = {name: data for name, data in FRAMES.items() if name.startswith("masked-")}
UNMASKED_FRAMES = {name: data for name, data in FRAMES.items() if name.startswith("unmasked-")}


# ---------------------------------------------------------------------------
# Running a parser over an input, recording everything observable.

Outcome = tuple[Any, ...]


def timed(call: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    try:
        return call()
    finally:
        elapsed = time.perf_counter() - started
        assert elapsed < FEED_BOUND, f"one feed took {elapsed:.2f} s"


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])] or [b""]


def error_outcome(exc: Exception) -> Outcome:
    # The decision, not the wording: a bare LF is caught early ("header lines must end
    # with CRLF") when the input arrives in pieces, by the line parser when it arrives
    # whole; the exception class is the same.
    assert str(exc)
    return ("error", type(exc).__name__)


def run_request_parser(data: bytes, cuts: Sequence[int]) -> Outcome:
    """Feeds a ServerHandshake; returns what the server would do with the request.

    Refusals compare equal whatever the reason: when a request breaks two rules (over
    16 KiB *and* a bare LF, say), the one seen first depends on how it was cut, and
    the server then either closes silently or answers 400 -- refusing it either way.
    """
    handshake = ServerHandshake()
    request: Optional[WSUpgradeRequest] = None
    chunks = split(data, cuts)
    try:
        for index, chunk in enumerate(chunks):
            request = timed(partial(handshake.receive_data, chunk))
            # Never more than the limit plus one feed is held.
            assert len(handshake._reader.buffer) <= MAX_HEADER_BLOCK + len(chunk)
            if request is not None:
                unread = b"".join(chunks[index + 1 :])
                break
        if request is None:
            # Progress: a complete header block within the limit is never left waiting.
            assert b"\r\n\r\n" not in data, "a complete header block is still buffered"
            return ("incomplete",)
        parsed = (request.method, request.path, request.version, tuple(request.headers.items()))
        try:
            key = handshake.validate_upgrade(request)
        except UnsupportedVersionError as exc:
            return ("426", parsed, str(exc))
        except WSHandshakeError as exc:
            return ("400", parsed, str(exc))
        reply = handshake.build_101_response_bytes(key, WSUpgradeResponse.create_101_response())
        assert reply.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        # What followed the header block: the rest of its chunk, then unread chunks.
        return ("101", parsed, key, handshake.leftover + unread)
    except RequestTooLargeError as exc:
        assert str(exc)
        return ("refused", "drop")
    except WSHandshakeError as exc:
        assert exc.raw_header is not None and str(exc)
        return ("refused", "400")


class _URL:
    netloc = "server.example.com"
    resource_name = "/chat"


def run_response_parser(data: bytes, cuts: Sequence[int]) -> Outcome:
    """Feeds a ClientHandshake (then EOF); returns the response or the failure."""
    handshake = ClientHandshake(_URL(), CLIENT_HEADERS, key=KEY)
    response: Optional[WSUpgradeResponse] = None
    chunks = split(data, cuts)
    try:
        for index, chunk in enumerate(chunks):
            response = timed(partial(handshake.receive_data, chunk))
            assert len(handshake._reader.buffer) <= MAX_HEADER_BLOCK + len(chunk)
            if response is not None:
                unread = b"".join(chunks[index + 1 :])
                break
        if response is None:
            timed(handshake.receive_eof)
            raise AssertionError("an unfinished response was accepted at EOF")
        return (
            "101",
            response.version,
            int(response.status),
            tuple(response.headers.items()),
            handshake.leftover + unread,
        )
    except WSHandshakeError as exc:
        assert exc.raw_header is not None
        if isinstance(exc, WSInvalidStatusError):
            # A refusal carries the body the server sent with it.
            assert exc.response is not None and exc.response.body == exc.raw_body
        return error_outcome(exc)


def run_frame_parser(data: bytes, cuts: Sequence[int], is_client: bool) -> Outcome:
    """Feeds an open Connection (every receive rule); returns every frame and how the
    stream ended."""
    conn = open_connection(
        is_client=is_client,
        max_frame_size=MAX_FRAME_SIZE,
        read_buffer_init_size=2048,
        auto_pong=False,
    )
    frames: list[tuple[int, int, int, bytes]] = []
    chunks = split(data, cuts)
    try:
        for chunk in chunks:
            conn.receive_data(chunk)
            # Progress: every frame consumes bytes, so at most one frame per 2 bytes.
            for _ in range(len(data) // 2 + 1):
                before = conn.buffered
                frame = timed(conn.next_frame)
                if frame is None:
                    break
                assert conn.buffered < before
                assert frame.payload_size <= MAX_FRAME_SIZE
                rsv = frame.rsv1 << 2 | frame.rsv2 << 1 | frame.rsv3
                frames.append((int(frame.msg_type), frame.fin, rsv, frame.get_payload_as_bytes()))
                if frame.msg_type == WSMsgType.CLOSE:
                    frame.get_close_code()
                    frame.get_close_reason()  # checked by the parser: never raises
            else:
                raise AssertionError("next_frame kept returning frames")
            # The buffer holds the incomplete frame and one feed, at most.
            assert conn.buffer_capacity <= 4 * (MAX_FRAME_SIZE + 14) + 2 * len(chunk) + 4096
        # Nothing complete is left unparsed (after a CLOSE, nothing is parsed at all).
        reader = conn._reader
        assert conn.state is not State.OPEN or not reader.has_complete_frame_at(reader._start)
        return ("frames", tuple(frames), "pending", conn.buffered)
    except WSProtocolError as exc:
        assert exc.code in (1002, 1007, 1009), exc.code
        assert str(exc)
        return ("frames", tuple(frames), "error", int(exc.code))


# ---------------------------------------------------------------------------
# The corpus itself: each seed gives the outcome its name announces.


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_corpus_requests(name: str) -> None:
    outcome = run_request_parser(REQUESTS[name], [])
    expected = name.split("-")[0]
    if expected == "ok":
        assert outcome[0] == "101", outcome
    elif expected == "426":
        assert outcome[0] == "426", outcome
    elif expected == "drop":
        assert outcome == ("refused", "drop"), outcome
    else:  # a 400, from the parser or from the upgrade checks
        assert outcome[0] == "400" or outcome == ("refused", "400"), outcome


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_corpus_responses(name: str) -> None:
    outcome = run_response_parser(RESPONSES[name], [])
    expected = name.split("-")[0]
    if expected == "ok":
        assert outcome[0] == "101", outcome
    elif expected == "status":
        assert outcome[:2] == ("error", "WSInvalidStatusError"), outcome
    else:
        assert outcome[0] == "error" and outcome[1] != "WSInvalidStatusError", outcome


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_corpus_frames(name: str) -> None:
    masked, expected, _ = name.split("-", 2)
    outcome = run_frame_parser(FRAMES[name], [], is_client=masked == "unmasked")
    if expected == "ok":
        assert outcome[2:] == ("pending", 0), outcome
        assert outcome[1], "no frame parsed"
    else:
        assert outcome[2:] == ("error", int(expected[3:])), outcome


def test_corpus_is_big_enough() -> None:
    assert len(REQUESTS) >= 20 and len(RESPONSES) >= 20 and len(FRAMES) >= 40
    for corpus in (REQUESTS, RESPONSES, FRAMES):
        kinds = {name.split("-")[0] for name in corpus}
        assert len(kinds) >= 2, kinds


# ---------------------------------------------------------------------------
# Mutations, starting from the corpus.

HTTP_TOKENS = [
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n\r\n",
    b": ",
    b":",
    b" ",
    b"\t",
    b",",
    b";",
    b"\x00",
    b"\x7f",
    b"\xff",
    b"HTTP/1.1",
    b"101",
    b"Upgrade",
    b"websocket",
    b"Connection: upgrade\r\n",
    b"Sec-WebSocket-Key: ",
    b"Sec-WebSocket-Version: 13\r\n",
    b"Content-Length: 99999999999999999999\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b" continued\r\n",
    b"X-" + b"a" * 300 + b": v\r\n",
]

FRAME_TOKENS = [
    bytes([first, second])
    for first in (0x00, 0x01, 0x02, 0x08, 0x09, 0x0A, 0x81, 0x82, 0x88, 0x89, 0x8A, 0xC1, 0x83)
    for second in (0x00, 0x02, 0x7D, 0x7E, 0x7F, 0x80, 0x82, 0xFE, 0xFF)
] + [b"\x00\x7e", b"\xff\xff", b"\x00\x00\x00\x00\x00\x01\x00\x00", b"\x7f" + b"\xff" * 7]

INTERESTING_BYTES = [0x00, 0x01, 0x0A, 0x0D, 0x20, 0x3A, 0x7E, 0x7F, 0x80, 0x88, 0xC0, 0xFF]


@st.composite
def mutants(draw: st.DrawFn, corpus: dict[str, bytes], tokens: list[bytes]) -> bytes:
    """A corpus seed with up to 8 mutations."""
    seeds = sorted(corpus)
    data = bytearray(corpus[draw(st.sampled_from(seeds), label="seed")])
    for _ in range(draw(st.integers(0, 8))):
        op = draw(
            st.sampled_from(
                ["flip", "byte", "insert", "delete", "duplicate", "splice", "truncate", "repeat"]
            )
        )
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and pos < len(data):
            data[pos] = draw(st.sampled_from(INTERESTING_BYTES))
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(tokens) | st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == "duplicate":
            size = draw(st.integers(1, 64))
            data[pos:pos] = data[pos : pos + size]
        elif op == "splice":
            other = corpus[draw(st.sampled_from(seeds))]
            cut = draw(st.integers(0, len(other)))
            data[pos:] = other[cut:]
        elif op == "truncate":
            del data[pos:]
        elif op == "repeat":
            # Grow toward the limits: a short region many times over.
            size = draw(st.integers(1, 40))
            data[pos:pos] = bytes(data[pos : pos + size]) * draw(st.integers(2, 500))
    return bytes(data)


cut_lists = st.lists(st.integers(0, 2**20), max_size=30)


def decision(outcome: Outcome) -> Outcome:
    """A request's outcome without the reason of a refusal (see run_request_parser)."""
    return outcome[:1] if outcome[0] == "refused" else outcome


@FUZZ
@given(data=mutants(REQUESTS, HTTP_TOKENS), cuts=cut_lists)
def test_request_parser_on_mutants(data: bytes, cuts: list[int]) -> None:
    assert decision(run_request_parser(data, cuts)) == decision(run_request_parser(data, []))


@FUZZ
@given(data=mutants(RESPONSES, HTTP_TOKENS), cuts=cut_lists)
def test_response_parser_on_mutants(data: bytes, cuts: list[int]) -> None:
    assert run_response_parser(data, cuts) == run_response_parser(data, [])


@FUZZ
@given(data=mutants(MASKED_FRAMES, FRAME_TOKENS), cuts=cut_lists)
def test_server_frame_parser_on_mutants(data: bytes, cuts: list[int]) -> None:
    assert run_frame_parser(data, cuts, is_client=False) == run_frame_parser(data, [], False)


@FUZZ
@given(data=mutants(UNMASKED_FRAMES, FRAME_TOKENS), cuts=cut_lists)
def test_client_frame_parser_on_mutants(data: bytes, cuts: list[int]) -> None:
    assert run_frame_parser(data, cuts, is_client=True) == run_frame_parser(data, [], True)


@FUZZ
@given(data=mutants(FRAMES, FRAME_TOKENS), is_client=st.booleans())
def test_frame_parser_byte_by_byte(data: bytes, is_client: bool) -> None:
    """The worst chunking: one byte per read (inputs capped at 4 KiB to stay quick)."""
    data = data[:4096]
    cuts = list(range(len(data)))
    assert run_frame_parser(data, cuts, is_client) == run_frame_parser(data, [], is_client)


Parser = Callable[[bytes, Sequence[int]], Outcome]


@FUZZ
@given(
    data=st.one_of(mutants(REQUESTS, HTTP_TOKENS), mutants(RESPONSES, HTTP_TOKENS)),
    side=st.sampled_from(["server", "client"]),
)
def test_handshake_parsers_byte_by_byte(data: bytes, side: str) -> None:
    data = data[:4096]
    parser: Parser = run_request_parser if side == "server" else run_response_parser
    assert decision(parser(data, list(range(len(data))))) == decision(parser(data, []))


@FUZZ
@given(data=mutants(RESPONSES, HTTP_TOKENS))
def test_frames_after_a_101_reach_the_frame_parser_intact(data: bytes) -> None:
    """Whatever follows an accepted 101 is handed on, byte for byte, as ``leftover``."""
    outcome = run_response_parser(data, [])
    if outcome[0] == "101":
        leftover = outcome[-1]
        assert data.endswith(leftover)
        head = data[: len(data) - len(leftover)]
        assert head.endswith(b"\r\n\r\n") and head.count(b"\r\n\r\n") == 1
