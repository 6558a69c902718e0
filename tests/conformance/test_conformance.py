"""RFC 6455 conformance: the case table of ``conformance_cases`` played in both directions.

Against our **server** (``ConformingEchoListener`` behind ``ws_create_server``) a raw
client plays each script with masked frames; against our **client**
(``ConformingEchoClient`` from ``ws_connect``) a raw server plays it unmasked.  Each
case asserts the whole outcome: every frame our side sent (opcode, payload, FIN, RSV,
masking, minimal length encoding), the CLOSE code, who closed the TCP connection, that
EOF arrived within a bounded time, and how the picows side saw the end
(``on_ws_disconnected`` once; the client's ``wait_disconnected`` raising only for a
failure it detected).

The frames the raw peer sends are encoded here, independently of picows' encoder.
``tests/conformance_report.py`` runs the same functions and prints a summary table.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import struct
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any, Awaitable, Optional, TypeVar

import pytest
from conformance_cases import (
    CASES,
    CLIENT_HANDSHAKE_CASES,
    SERVER_HANDSHAKE_CASES,
    Case,
    ClientHandshakeCase,
    CloseEcho,
    Expect,
    Frame,
    Send,
    ServerHandshakeCase,
    materialize,
)

import picows
from conforming import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    ConformingEchoClient,
    Observed,
    ObservedClient,
    ObservedServer,
)
from rawpeer import RawFrame, RawPeer, RawServer, accept_for, connect_raw_client, unmask

SIDES = ("server", "client")
CLOSE_OPCODE = 0x8
# Long enough that a client which closed TCP before the server did is caught.
CLIENT_CLOSE_TIMEOUT = 5.0
# Bound on every single wait for a frame or EOF (a whole case has its own bound).
STEP_TIMEOUT = 5.0

T = TypeVar("T")


async def within(awaitable: Awaitable[T], timeout: float, what: str) -> T:
    """``awaitable``'s result; a timeout fails the case, saying what did not happen."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"no {what} within {timeout:g} s") from None


# ---------------------------------------------------------------------------
# The raw peer's side of the wire, written independently of picows.


def encode(frame: Frame, masked: bool) -> bytes:
    """RFC 6455 5.2: the header (minimal length form), then the (masked) payload."""
    payload = materialize(frame.payload)
    first = (0x80 if frame.fin else 0) | (frame.rsv << 4) | frame.opcode
    mask_bit = 0x80 if masked else 0
    size = len(payload)
    if size <= 125:
        header = struct.pack("!BB", first, mask_bit | size)
    elif size <= 0xFFFF:
        header = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, size)
    if not masked:
        return header + payload
    key = os.urandom(4)
    return header + key + unmask(payload, key)  # XOR both ways


def segments(data: bytes, step: Send) -> Iterator[bytes]:
    """The TCP writes for ``data``: one, fixed-size chops, or seeded random cuts."""
    if step.chop is not None:
        for start in range(0, len(data), step.chop):
            yield data[start : start + step.chop]
    elif step.split_seed is not None:
        rng = random.Random(step.split_seed)
        pos = 0
        while pos < len(data):
            size = rng.randint(1, 2 * step.max_segment)
            yield data[pos : pos + size]
            pos += size
    else:
        yield data


async def write(peer: RawPeer, step: Send) -> None:
    data = b"".join(
        encode(frame, peer.is_client != frame.wrong_mask) for frame in step.all_frames()
    )
    chunks = list(segments(data, step))
    for chunk in chunks:
        peer.writer.write(chunk)
        await peer.writer.drain()
        if len(chunks) > 1:
            # Not a synchronisation: the bytes are in flight already.  Yielding lets the
            # picows side read each segment on its own instead of all of them at once.
            await asyncio.sleep(0)


def header_size(payload_size: int, masked: bool) -> int:
    """5.2: "the minimal number of bytes MUST be used to encode the length"."""
    size = 2 if payload_size <= 125 else 4 if payload_size <= 0xFFFF else 10
    return size + (4 if masked else 0)


def describe(data: bytes) -> str:
    return repr(data) if len(data) <= 64 else f"<{len(data)} bytes: {data[:32]!r}...>"


def check_frame(got: RawFrame, want: Frame, masked: bool) -> None:
    expected = materialize(want.payload)
    assert got.opcode == want.opcode, f"expected opcode 0x{want.opcode:X}, got {got}"
    assert (got.fin, got.rsv1, got.rsv2, got.rsv3) == (1, 0, 0, 0), got
    assert len(got.header) == header_size(len(got.payload), masked), got.header
    if got.payload != expected:
        diff = next(
            (i for i, (a, b) in enumerate(zip(got.payload, expected)) if a != b),
            min(len(got.payload), len(expected)),
        )
        raise AssertionError(
            f"payload of 0x{want.opcode:X} differs at byte {diff}: got "
            f"{describe(got.payload)}, expected {describe(expected)}"
        )


# ---------------------------------------------------------------------------
# One connection per case, in either direction.


class Session:
    """Our endpoint (server or client) and the raw peer talking to it."""

    def __init__(self, side: str, peer: RawPeer, listener: Observed) -> None:
        self.side = side
        self.peer = peer
        self.listener = listener

    @property
    def transport(self) -> picows.WSTransport:
        assert self.listener.transport is not None
        return self.listener.transport

    @property
    def masked(self) -> bool:
        """Whether the frames our side sends are masked: only a client's are."""
        return self.side == "client"


@asynccontextmanager
async def open_session(side: str, **kwargs: Any) -> AsyncIterator[Session]:
    """A connection from a raw peer to our conforming echo ``side``; torn down after."""
    kwargs.setdefault("max_frame_size", DEFAULT_MAX_FRAME_SIZE)
    if side == "server":
        listeners: asyncio.Queue[ObservedServer] = asyncio.Queue()

        def route(request: picows.WSUpgradeRequest) -> ObservedServer:
            listener = ObservedServer()
            listeners.put_nowait(listener)
            return listener

        server = await picows.ws_create_server(route, "127.0.0.1", 0, **kwargs)
        peer: Optional[RawPeer] = None
        listener: Optional[Observed] = None
        try:
            port = server.sockets[0].getsockname()[1]
            peer = await connect_raw_client(port)
            listener = await asyncio.wait_for(listeners.get(), STEP_TIMEOUT)
            await listener.wait_connected()
            yield Session(side, peer, listener)
        finally:
            if peer is not None:
                peer.abort()
            if listener is not None and listener.transport is not None:
                listener.transport.disconnect(graceful=False)
                await listener.wait_disconnected()
            server.close()
            await server.wait_closed()
    else:
        assert side == "client", side
        raw_server = await RawServer().start()
        transport: Optional[picows.WSTransport] = None
        peer = None
        try:
            transport, client = await picows.ws_connect(
                lambda: ObservedClient(close_timeout=CLIENT_CLOSE_TIMEOUT), raw_server.url, **kwargs
            )
            assert isinstance(client, ObservedClient)
            peer = await raw_server.accept()
            yield Session(side, peer, client)
        finally:
            if peer is not None:
                peer.abort()
            if transport is not None:
                transport.disconnect(graceful=False)
                try:
                    await asyncio.wait_for(transport.wait_disconnected(), STEP_TIMEOUT)
                except picows.WSProtocolError:
                    pass  # the outcome was checked by the case
            await raw_server.close()


async def play(session: Session, case: Case) -> None:
    """Run the script, then check the outcome."""
    peer = session.peer
    for step in case.steps:
        if isinstance(step, Send):
            await write(peer, step)
        else:
            assert isinstance(step, Expect)
            for want in step.frames:
                got = await within(peer.read_frame(case.timeout), case.timeout, f"{want}")
                check_frame(got, want, session.masked)
    outcome = case.outcome
    if isinstance(outcome, CloseEcho):
        await close_cleanly(session, outcome)
    else:
        await expect_failure(session, outcome.code)


async def close_cleanly(session: Session, outcome: CloseEcho) -> None:
    """5.5.1: the CLOSE is answered with the same payload, and nothing else follows."""
    peer = session.peer
    if not outcome.in_script:
        peer.send_raw(encode(Frame(CLOSE_OPCODE, outcome.payload), peer.is_client))
    reply = await within(peer.read_frame(), STEP_TIMEOUT, "CLOSE reply")
    check_frame(reply, Frame(CLOSE_OPCODE, outcome.payload), session.masked)
    transport = session.transport
    if session.side == "server":
        # 7.1.1: the server closes the TCP connection first: EOF, with nothing before it.
        assert await within(peer.read_until_eof(), STEP_TIMEOUT, "EOF from the server") == []
        await within(session.listener.wait_disconnected(), STEP_TIMEOUT, "on_ws_disconnected")
    else:
        # The client waits for the server (the raw peer) to close first...
        assert not transport.is_disconnected, "the client closed TCP before the server"
        peer.writer.write_eof()
        assert await within(peer.read_until_eof(), STEP_TIMEOUT, "EOF from the client") == []
        # ...and a peer-initiated close is not an error.
        await within(transport.wait_disconnected(), STEP_TIMEOUT, "wait_disconnected")
    handshake = transport.close_handshake
    assert handshake is not None and handshake.recv is not None and handshake.sent is not None
    assert handshake.recv_then_sent
    assert handshake.recv == handshake.sent
    assert session.listener.disconnected_calls == 1


async def expect_failure(session: Session, code: int) -> None:
    """7.1.7: our side sends CLOSE(code) and closes TCP itself; the raw peer never does."""
    peer = session.peer
    reply = await within(peer.read_frame(), STEP_TIMEOUT, f"CLOSE({code})")
    assert reply.opcode == CLOSE_OPCODE, f"expected CLOSE({code}), got {reply}"
    assert reply.close_code == code, f"expected CLOSE({code}), got {reply.close_code}: {reply}"
    reply.close_reason  # noqa: B018 -- the reason must be UTF-8 (this decodes it)
    # The raw peer keeps the connection open: the EOF means our side ended it (a
    # half-close, then a close once the peer has gone quiet).
    assert await within(peer.read_until_eof(), STEP_TIMEOUT, "TCP close after CLOSE") == []
    transport = session.transport
    if session.side == "client":
        # The client detected the failure: wait_disconnected re-raises it.
        with pytest.raises(picows.WSProtocolError) as info:
            await within(transport.wait_disconnected(), STEP_TIMEOUT, "wait_disconnected")
        assert info.value.code == code
    else:
        await within(session.listener.wait_disconnected(), STEP_TIMEOUT, "on_ws_disconnected")
    handshake = transport.close_handshake
    assert handshake is not None and handshake.sent is not None
    assert handshake.sent.code == code
    assert session.listener.disconnected_calls == 1


async def run_case(case: Case, side: str, **kwargs: Any) -> None:
    """Play ``case`` against our ``side`` ("server" or "client"); raises on a mismatch.

    ``kwargs`` go to ``ws_create_server`` or ``ws_connect``.
    """

    async def run() -> None:
        async with open_session(side, **kwargs) as session:
            await play(session, case)

    await asyncio.wait_for(run(), case.timeout)


def _case_params() -> list[Any]:
    return [
        pytest.param(case, id=case.id, marks=[pytest.mark.slow] if case.slow else [])
        for case in CASES
    ]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("case", _case_params())
async def test_case(case: Case, side: str) -> None:
    await run_case(case, side)


def _has_ping(case: Case) -> bool:
    # PINGs are always explicit frames (never inside a Fragmented message).
    return any(
        isinstance(item, Frame) and item.opcode == 0x9
        for step in case.steps
        if isinstance(step, Send)
        for item in step.frames
    )


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.id) for c in CASES if not c.slow and _has_ping(c)]
)
async def test_case_without_auto_pong(case: Case, side: str) -> None:
    """With ``enable_auto_pong=False`` the listener answers PINGs: same outcomes."""
    await run_case(case, side, enable_auto_pong=False)


# ---------------------------------------------------------------------------
# The opening handshake.


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """The status, headers (names lower-cased) and the bytes after the header block."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await reader.read(4096)
        assert chunk, f"EOF before the end of the response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ")[1]), headers, rest


async def run_server_handshake_case(case: ServerHandshakeCase) -> None:
    factory_calls: list[picows.WSUpgradeRequest] = []
    listeners: list[ObservedServer] = []

    def route(request: picows.WSUpgradeRequest) -> ObservedServer:
        factory_calls.append(request)
        listener = ObservedServer()
        listeners.append(listener)
        return listener

    server = await picows.ws_create_server(route, "127.0.0.1", 0)
    writer: Optional[asyncio.StreamWriter] = None
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        uses_key = all(name != "Sec-WebSocket-Key" for name, _ in case.replace)
        writer.write(case.request(key if uses_key else "unused"))
        status, headers, rest = await asyncio.wait_for(read_response(reader), STEP_TIMEOUT)
        assert status == case.status, (status, headers)
        for name, value in case.headers:
            assert headers.get(name.lower()) == value, headers
        if status == 101:
            assert headers["sec-websocket-accept"] == accept_for(key)
            # The connection works: a masked TEXT is echoed, the CLOSE answered.
            peer = RawPeer(reader, writer, is_client=True, leftover=rest)
            peer.send_raw(encode(Frame(0x1, b"handshake ok"), masked=True))
            check_frame(await peer.read_frame(STEP_TIMEOUT), Frame(0x1, b"handshake ok"), False)
            await close_cleanly(Session("server", peer, listeners[0]), CloseEcho())
        else:
            # An error response ends the connection; the listener never connects.
            await asyncio.wait_for(_read_to_eof(reader), STEP_TIMEOUT)
            assert all(listener.connected_calls == 0 for listener in listeners)
    finally:
        if writer is not None:
            writer.transport.abort()
        server.close()
        await server.wait_closed()


async def _read_to_eof(reader: asyncio.StreamReader) -> bytes:
    data = b""
    while True:
        try:
            chunk = await reader.read(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


async def run_client_handshake_case(case: ClientHandshakeCase) -> None:
    closed = asyncio.get_running_loop().create_future()
    requests: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await reader.read(4096)
            if not chunk:
                return
            head += chunk
        requests.append(head)
        key = ""
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-key":
                key = value.strip()
        fields: dict[str, Optional[str]] = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Accept": accept_for(key),
        }
        fields.update(case.replace)
        lines = ["HTTP/1.1 101 Switching Protocols"]
        lines += [f"{name}: {value}" for name, value in fields.items() if value is not None]
        lines += [f"{name}: {value}" for name, value in case.extra]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        # Whatever follows, until the client closes: a refused handshake must close TCP.
        await _read_to_eof(reader)
        writer.close()
        if not closed.done():
            closed.set_result(None)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        extra = list(case.request_headers) or None
        if case.error is None:
            transport, client = await picows.ws_connect(ObservedClient, url, extra_headers=extra)
            assert isinstance(client, ObservedClient)
            assert client.connected_calls == 1
            transport.send_close(picows.WSCloseCode.OK)
            transport.disconnect()
            await asyncio.wait_for(transport.wait_disconnected(), STEP_TIMEOUT)
        else:
            error: type[BaseException] = getattr(picows, case.error)
            with pytest.raises(error):
                await picows.ws_connect(ObservedClient, url, extra_headers=extra)
        await asyncio.wait_for(closed, STEP_TIMEOUT)
        assert len(requests) == 1
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("case", SERVER_HANDSHAKE_CASES, ids=lambda c: c.id)
async def test_server_handshake(case: ServerHandshakeCase) -> None:
    await run_server_handshake_case(case)


@pytest.mark.parametrize("case", CLIENT_HANDSHAKE_CASES, ids=lambda c: c.id)
async def test_client_handshake(case: ClientHandshakeCase) -> None:
    await run_client_handshake_case(case)


async def test_listener_classes_with_keyword_only_options_are_zero_argument_factories() -> None:
    """``ws_connect(ConformingEchoClient, url)``: options after ``*`` take no request/response."""
    server = await picows.ws_create_server(lambda request: ObservedServer(), "127.0.0.1", 0)
    try:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        transport, client = await picows.ws_connect(ConformingEchoClient, url)
        assert isinstance(client, ConformingEchoClient)
        assert client.max_message_size == DEFAULT_MAX_MESSAGE_SIZE
        transport.disconnect()
        await within(transport.wait_disconnected(), STEP_TIMEOUT, "wait_disconnected")

        def options_only(*, verbose: bool = False, name: str = "x") -> ObservedClient:
            return ObservedClient()

        def two_positional(request: Any, response: Any, *, verbose: bool = False) -> Any:
            assert isinstance(request, picows.WSUpgradeRequest)
            assert isinstance(response, picows.WSUpgradeResponse)
            return ObservedClient()

        for factory in (options_only, two_positional):
            transport, client = await picows.ws_connect(factory, url)
            assert isinstance(client, ObservedClient)
            transport.disconnect()
            await within(transport.wait_disconnected(), STEP_TIMEOUT, "wait_disconnected")
    finally:
        server.close()
        await server.wait_closed()


def test_case_table_is_well_formed() -> None:
    """The table exercises clean closes and failures, and each case id is unique."""
    outcomes = {type(case.outcome).__name__ for case in CASES}
    assert outcomes == {"CloseEcho", "Fail"}
    assert len({case.id for case in CASES}) == len(CASES)
