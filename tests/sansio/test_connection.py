"""The connection state machine (picows._connection), driven with bytes only.

No socket and no event loop: handshakes and frames go in as bytes, and the tests look
at what comes out (frames, ``pending`` bytes, the state and the close record).  Each
row of the table in _connection's docstring has a test here.
"""

from __future__ import annotations

import pytest

from helpers import feed_connection, open_connection
from picows._connection import Connection, State
from picows._exceptions import WSHandshakeError, WSProtocolError
from picows._frames import FrameReader, encode_frame
from picows._handshake import ClientHandshake, RequestTooLargeError, ServerHandshake
from picows._http11 import WSUpgradeResponse
from picows._types import WSCloseCode, WSMsgType
from picows._url import parse_url

TEXT, BINARY, CONT = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION
PING, PONG, CLOSE = WSMsgType.PING, WSMsgType.PONG, WSMsgType.CLOSE
KEY = b"\x01\x02\x03\x04"


def peer_frame(conn: Connection, opcode: int, payload: bytes = b"", **flags: bool) -> bytes:
    """A frame as the peer of ``conn`` sends it (clients mask, servers don't: 5.1)."""
    return encode_frame(opcode, payload, mask_key=None if conn.is_client else KEY, **flags)


def frames_of(conn: Connection, data: bytes) -> list[tuple[WSMsgType, bytes]]:
    feed_connection(conn, data)
    out = []
    while (frame := conn.next_frame()) is not None:
        out.append((frame.msg_type, frame.get_payload_as_bytes()))
    return out


def decode(data: bytes, *, from_client: bool) -> list[tuple[WSMsgType, int, bytes]]:
    """What a peer reads from bytes ``conn`` sent."""
    reader = FrameReader(is_client=not from_client, allow_rsv=True)
    reader.feed_data(data)
    out = []
    while (frame := reader.next_frame()) is not None:
        out.append((frame.msg_type, frame.fin, frame.get_payload_as_bytes()))
    return out


SIDES = pytest.mark.parametrize("is_client", [True, False], ids=["client", "server"])


# --- CONNECTING ------------------------------------------------------------------------


def test_client_handshake_to_open() -> None:
    conn = open_connection(is_client=True)
    assert conn.state is State.OPEN and conn.is_client


def test_server_handshake_to_open_with_frames_in_the_same_read() -> None:
    conn = Connection(ServerHandshake())
    request = (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    data = request + encode_frame(TEXT, b"early", mask_key=KEY)
    room = conn.get_buffer(len(data))
    room[: len(data)] = data
    parsed = conn.handshake_received(len(data))
    assert conn.state is State.CONNECTING and parsed is not None
    answer = conn.accept(parsed, WSUpgradeResponse.create_101_response())  # type: ignore[arg-type]
    assert answer.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert conn.state is State.OPEN
    frame = conn.next_frame()
    assert frame is not None and frame.get_payload_as_bytes() == b"early"


def test_server_rejects_and_is_closed() -> None:
    conn = Connection(ServerHandshake())
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    conn.get_buffer()[: len(request)] = request
    assert conn.handshake_received(len(request)) is not None
    answer = conn.reject(WSUpgradeResponse.create_error_response(404, b"nope"))
    assert answer.startswith(b"HTTP/1.1 404 Not Found\r\n") and answer.endswith(b"nope")
    assert conn.state is State.CLOSED
    assert conn.send_ping(b"x") is None  # nothing is sent on a closed connection


def test_server_too_large_request() -> None:
    conn = Connection(ServerHandshake())
    data = b"GET / HTTP/1.1\r\nX: " + b"a" * 4000
    with pytest.raises(RequestTooLargeError):
        for _ in range(5):
            conn.get_buffer()[: len(data)] = data
            conn.handshake_received(len(data))
            data = b"a" * 4000
    conn.abandon()
    assert conn.state is State.CLOSED


def test_client_handshake_failure_closes() -> None:
    conn = Connection(ClientHandshake(parse_url("ws://h/"), key=b"dGhlIHNhbXBsZSBub25jZQ=="))
    answer = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
    conn.get_buffer()[: len(answer)] = answer
    with pytest.raises(WSHandshakeError) as info:
        conn.handshake_received(len(answer))
    assert conn.state is State.CLOSED and conn.failure is info.value


def test_client_eof_during_handshake_fails() -> None:
    conn = Connection(ClientHandshake(parse_url("ws://h/")))
    with pytest.raises(WSHandshakeError):
        conn.receive_eof()
    assert conn.state is State.CLOSED


# --- OPEN: what arrives --------------------------------------------------------------------


@SIDES
def test_data_frames_are_delivered(is_client: bool) -> None:
    conn = open_connection(is_client=is_client)
    data = peer_frame(conn, TEXT, b"a", fin=False) + peer_frame(conn, CONT, b"b")
    assert frames_of(conn, data) == [(TEXT, b"a"), (CONT, b"b")]
    assert conn.pending == []


@SIDES
def test_ping_is_answered_by_auto_pong(is_client: bool) -> None:
    conn = open_connection(is_client=is_client)
    assert frames_of(conn, peer_frame(conn, PING, b"hi") + peer_frame(conn, BINARY, b"x")) == [
        (BINARY, b"x")
    ]
    # 5.5.2/5.5.3: a PONG with the PING's payload, masked on the client (5.3).
    assert decode(b"".join(conn.pending), from_client=is_client) == [(PONG, 1, b"hi")]


@SIDES
def test_ping_is_delivered_without_auto_pong(is_client: bool) -> None:
    conn = open_connection(is_client=is_client, auto_pong=False)
    assert frames_of(conn, peer_frame(conn, PING, b"hi")) == [(PING, b"hi")]
    assert conn.pending == []


@SIDES
def test_close_received_first(is_client: bool) -> None:
    conn = open_connection(is_client=is_client)
    got = frames_of(conn, peer_frame(conn, CLOSE, b"\x03\xe8bye") + peer_frame(conn, TEXT, b"x"))
    assert got == [(CLOSE, b"\x03\xe8bye")]  # 5.5.1: what follows is dropped unread
    assert conn.state is State.CLOSING
    record = conn.close_handshake
    assert record is not None and record.recv_then_sent and record.sent is None
    assert (record.recv.code, record.recv.reason) == (1000, "bye")  # type: ignore[union-attr]
    # No automatic reply (as upstream): the application answers.
    assert conn.pending == [] and not conn.close_sent
    assert conn.send_frame(0x81, b"still allowed") is not None  # 5.5.1: may finish a message
    data = conn.send_close(1000, "bye")
    assert data is not None and conn.state is State.CLOSED and conn.close_sent
    assert decode(data, from_client=is_client) == [(CLOSE, 1, b"\x03\xe8bye")]
    assert record.sent is not None and record.sent.code == 1000


@SIDES
def test_close_sent_first(is_client: bool) -> None:
    conn = open_connection(is_client=is_client)
    assert conn.send_close(WSCloseCode.GOING_AWAY, "leaving") is not None
    assert conn.state is State.CLOSING and conn.close_sent
    assert conn.send_frame(0x82, b"x") is None and conn.send_close() is None
    # The peer may still send data before it sees our CLOSE: delivered.
    got = frames_of(conn, peer_frame(conn, BINARY, b"late") + peer_frame(conn, CLOSE, b"\x03\xe9"))
    assert got == [(BINARY, b"late"), (CLOSE, b"\x03\xe9")]
    assert conn.state is State.CLOSED
    record = conn.close_handshake
    assert record is not None and not record.recv_then_sent
    assert record.recv is not None and record.recv.code == 1001


def test_no_info_close_has_an_empty_body() -> None:
    conn = open_connection(is_client=False)
    data = conn.send_close()
    assert data is not None and decode(data, from_client=False) == [(CLOSE, 1, b"")]
    assert conn.close_handshake is not None and conn.close_handshake.sent is not None
    assert conn.close_handshake.sent.code == WSCloseCode.NO_INFO


# --- failing the connection (7.1.7) -------------------------------------------------------


@SIDES
def test_protocol_violation_fails_with_its_code(is_client: bool) -> None:
    conn = open_connection(is_client=is_client)
    data = peer_frame(conn, BINARY, b"ok") + bytes([0x83, 0x00])  # then a reserved opcode
    feed_connection(conn, data)
    first = conn.next_frame()
    assert first is not None and first.get_payload_as_bytes() == b"ok"  # delivered first
    with pytest.raises(WSProtocolError) as info:
        conn.next_frame()
    assert conn.state is State.CLOSED and conn.failure is info.value
    # The CLOSE waits in pending; the glue writes it, then drops TCP.
    sent = decode(b"".join(conn.pending), from_client=is_client)
    assert sent == [(CLOSE, 1, b"\x03\xea" + str(info.value).encode())]
    # After the failure nothing is read and nothing more is sent.
    feed_connection(conn, peer_frame(conn, TEXT, b"ignored"))
    assert conn.next_frame() is None and conn.send_frame(0x81, b"x") is None


def test_failure_after_our_close_sends_no_second_close() -> None:
    conn = open_connection(is_client=True)
    conn.send_close(1000)
    feed_connection(conn, b"\x88\x01\x03")  # a 1-byte CLOSE body
    with pytest.raises(WSProtocolError):
        conn.next_frame()
    assert conn.pending == [] and conn.state is State.CLOSED


def test_application_failure_is_an_internal_error() -> None:
    conn = open_connection(is_client=False)
    error = RuntimeError("secret detail")
    conn.fail(error)
    assert conn.failure is error and conn.state is State.CLOSED
    # 7.4.1: 1011; the text of an application's exception is not sent.
    assert decode(b"".join(conn.pending), from_client=False) == [(CLOSE, 1, b"\x03\xf3")]


def test_protocol_error_from_the_application_keeps_its_code_if_sendable() -> None:
    conn = open_connection(is_client=False)
    conn.fail(WSProtocolError(1008, "policy"))
    assert decode(b"".join(conn.pending), from_client=False) == [(CLOSE, 1, b"\x03\xf0policy")]
    conn = open_connection(is_client=False)
    conn.fail(WSProtocolError(1006, "cannot be sent"))  # 7.4.1: never on the wire
    assert decode(b"".join(conn.pending), from_client=False) == [(CLOSE, 1, b"\x03\xf3")]


# --- the send guards ----------------------------------------------------------------------


def test_control_frames_are_checked_before_anything_is_sent() -> None:
    conn = open_connection(is_client=True)
    with pytest.raises(ValueError, match="at most 125"):
        conn.send_ping(b"x" * 126)
    with pytest.raises(ValueError, match="at most 125"):
        conn.send_pong(b"x" * 126)
    with pytest.raises(ValueError, match="send_close"):
        conn.send_frame(0x88, b"")
    with pytest.raises(ValueError, match="must not be sent"):
        conn.send_close(1006)
    with pytest.raises(ValueError, match="at most 123"):
        conn.send_close(1000, b"r" * 124)
    # Nothing was recorded by the refused calls.
    assert conn.close_handshake is None and not conn.close_sent and conn.state is State.OPEN
    assert conn.send_ping(b"x" * 125) is not None


def test_connection_lost_ends_everything() -> None:
    conn = open_connection(is_client=False)
    conn.connection_lost()
    assert conn.state is State.CLOSED and not conn.can_send
    assert conn.send_close(1000) is None


# --- the opt-in message rules (5.2, 5.4, 8.1) --------------------------------------------


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([(CONT, b"x", {})], 1002),  # 5.4: a continuation that continues nothing
        ([(TEXT, b"a", {"fin": False}), (BINARY, b"b", {})], 1002),  # 5.4: interleaved
        ([(BINARY, b"x", {"rsv1": True})], 1002),  # 5.2: no extension negotiated
        ([(TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80", {})], 1007),
        ([(TEXT, b"ok \xff", {"fin": False})], 1007),  # 8.1: fails before the end
    ],
    ids=["stray-continuation", "interleaved", "rsv1", "surrogate", "bad-first-fragment"],
)
def test_message_rules_when_asked(
    frames: list[tuple[int, bytes, dict[str, bool]]], code: int
) -> None:
    def wire(conn: Connection) -> bytes:
        return b"".join(peer_frame(conn, op, data, **flags) for op, data, flags in frames)

    strict = open_connection(is_client=True, check_messages=True)
    with pytest.raises(WSProtocolError) as info:
        frames_of(strict, wire(strict))
    assert info.value.code == code
    assert decode(b"".join(strict.pending), from_client=True)[0][2][:2] == code.to_bytes(2, "big")
    # picows' default leaves these to the application: the frames are delivered.
    lenient = open_connection(is_client=True)
    assert len(frames_of(lenient, wire(lenient))) == len(frames)


def test_message_rules_accept_a_valid_fragmented_text() -> None:
    conn = open_connection(is_client=False, check_messages=True)
    euro = "\u20ac".encode()
    data = (
        peer_frame(conn, TEXT, euro[:1], fin=False)
        + peer_frame(conn, PING, b"p")  # 5.4: control frames may come in between
        + peer_frame(conn, CONT, euro[1:])
    )
    assert frames_of(conn, data) == [(TEXT, euro[:1]), (CONT, euro[1:])]


# --- memory -------------------------------------------------------------------------------


def test_a_header_alone_allocates_nothing() -> None:
    """Memory follows the bytes that arrived, not the length a header announces."""
    conn = open_connection(is_client=False, read_buffer_init_size=4096)
    # A masked BINARY header announcing 8 MiB + 1, then one payload byte.
    header = bytes([0x82, 0xFF]) + ((8 << 20) + 1).to_bytes(8, "big") + KEY
    feed_connection(conn, header + b"x")
    assert conn.next_frame() is None
    assert conn.buffer_capacity == 4096


def test_shrink_buffers_after_a_big_frame() -> None:
    conn = open_connection(is_client=False, read_buffer_init_size=4096)
    assert frames_of(conn, peer_frame(conn, BINARY, bytes(300_000))) == [(BINARY, bytes(300_000))]
    assert conn.buffer_capacity > 300_000
    assert conn.shrink_buffers() and conn.buffer_capacity == 4096
