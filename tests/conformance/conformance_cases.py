"""The RFC 6455 conformance cases, as data: what a fuzzing peer sends, what must come back.

Each :class:`Case` is a script for a raw-socket peer talking to a conforming echo
endpoint built on picows (``examples/conforming_echo_server.py`` and
``examples/conforming_echo_client.py``).  The same table is played in both directions:

* against our **server**, the raw peer is the client and masks every frame;
* against our **client**, the raw peer is the server and masks nothing.

A script is a sequence of :class:`Send` steps (frames written to the socket, in one
write or chopped into TCP segments) and :class:`Expect` steps (the frames our side must
send next, in order), followed by one outcome:

* :class:`CloseEcho`: the closing handshake completes cleanly.  The raw peer sends a
  CLOSE (unless the script already did), our side answers with exactly the same CLOSE
  payload and nothing else, and the *server* closes the TCP connection first (RFC 6455
  7.1.1): our server in one direction, the raw peer in the other.
* :class:`Fail`: our side fails the connection (7.1.7): it sends CLOSE with ``code``
  and closes the TCP connection itself, while the raw peer keeps it open.

The categories follow the Autobahn test suite's numbering (1 framing, 2 pings, 3
reserved bits, 4 opcodes, 5 fragmentation, 6 UTF-8, 7 closing, 9 big messages, 10 TCP
segmentation), but the cases are written from the RFC, and only outcomes the RFC
decides are asserted.  The handshake rules are in :data:`SERVER_HANDSHAKE_CASES` and
:data:`CLIENT_HANDSHAKE_CASES`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Optional, Union

__all__ = [
    "CASES",
    "CATEGORIES",
    "CLIENT_HANDSHAKE_CASES",
    "SERVER_HANDSHAKE_CASES",
    "Blob",
    "Case",
    "ClientHandshakeCase",
    "CloseEcho",
    "Expect",
    "Fail",
    "Fragmented",
    "Frame",
    "Send",
    "ServerHandshakeCase",
    "close_payload",
    "materialize",
]

# Opcodes (RFC 6455 5.2), as plain ints: the table must not depend on picows' enums.
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# Close codes (7.4.1).
OK, PROTOCOL_ERROR, INVALID_TEXT = 1000, 1002, 1007

KIB = 1024
MIB = 1024 * 1024

CATEGORIES = {
    "1": "Framing",
    "2": "Pings and pongs",
    "3": "Reserved bits",
    "4": "Opcodes",
    "5": "Fragmentation",
    "6": "UTF-8",
    "7": "Closing handshake",
    "9": "Big messages, many fragments",
    "10": "TCP segmentation",
}


# ---------------------------------------------------------------------------
# Payloads


@dataclass(frozen=True)
class Blob:
    """A big payload, built only when a case runs, so the table itself stays small.

    A text blob is valid UTF-8 that mixes 1- to 4-byte characters, so fragmenting it
    at arbitrary byte offsets splits characters across frames.
    """

    size: int
    text: bool


Payload = Union[bytes, Blob]

# 32 bytes: ASCII, 2-, 3- and 4-byte characters.
_TEXT_UNIT = "Hello, κόσμε ∑ 𝄞 UTF-8!".encode()
_TEXT_UNIT += b"." * (32 - len(_TEXT_UNIT))
_BINARY_UNIT = bytes(range(256))


@lru_cache(maxsize=4)
def _blob_bytes(size: int, text: bool) -> bytes:
    unit = _TEXT_UNIT if text else _BINARY_UNIT
    count, rest = divmod(size, len(unit))
    # The tail is ASCII, so a text blob never ends inside a character.
    return unit * count + (b"*" * rest if text else unit[:rest])


def materialize(payload: Payload) -> bytes:
    return _blob_bytes(payload.size, payload.text) if isinstance(payload, Blob) else payload


def payload_size(payload: Payload) -> int:
    return payload.size if isinstance(payload, Blob) else len(payload)


def close_payload(code: Optional[int] = None, reason: bytes = b"") -> bytes:
    """A CLOSE payload (5.5.1): empty, or a 2-byte code and a reason."""
    return b"" if code is None else struct.pack("!H", code) + reason


# ---------------------------------------------------------------------------
# Script steps and outcomes


@dataclass(frozen=True)
class Frame:
    """One frame.  ``rsv`` is the 3 RSV bits as a number: RSV1 = 4, RSV2 = 2, RSV3 = 1.

    ``wrong_mask``: masked although the raw peer is the server, or unmasked although it
    is the client (5.1).
    """

    opcode: int
    payload: Payload = b""
    fin: bool = True
    rsv: int = 0
    wrong_mask: bool = False

    def frames(self) -> Iterator[Frame]:
        yield self

    def __repr__(self) -> str:
        size = payload_size(self.payload)
        shown = repr(self.payload) if size <= 24 else f"<{size} bytes>"
        flags = "" if self.fin else ", fin=0"
        flags += f", rsv={self.rsv}" if self.rsv else ""
        flags += ", wrong mask" if self.wrong_mask else ""
        return f"Frame(0x{self.opcode:X}, {shown}{flags})"


@dataclass(frozen=True)
class Fragmented:
    """A data message sent as frames of ``fragment_size`` payload bytes each."""

    opcode: int
    payload: Payload
    fragment_size: int

    def frames(self) -> Iterator[Frame]:
        data = materialize(self.payload)
        step = self.fragment_size
        starts = range(0, max(len(data), 1), step)
        last = starts[-1]
        for start in starts:
            chunk = data[start : start + step]
            yield Frame(self.opcode if start == 0 else CONT, chunk, fin=start == last)


@dataclass(frozen=True)
class Send:
    """Frames the raw peer writes.

    ``chop`` splits the bytes into TCP segments of that size; ``split_seed`` splits them
    at pseudo-random points (segments of 1 to 2 * ``max_segment`` bytes).  By default
    all the frames go out in one write.
    """

    frames: tuple[Union[Frame, Fragmented], ...]
    chop: Optional[int] = None
    split_seed: Optional[int] = None
    max_segment: int = 64

    def all_frames(self) -> Iterator[Frame]:
        for item in self.frames:
            yield from item.frames()


@dataclass(frozen=True)
class Expect:
    """The frames our side must send next, in this order (FIN set, RSV clear)."""

    frames: tuple[Frame, ...]


Step = Union[Send, Expect]


@dataclass(frozen=True)
class CloseEcho:
    """A clean close: our side echoes the CLOSE with ``payload``; the server drops TCP.

    ``in_script``: the script already sent this CLOSE (otherwise the runner sends it).
    """

    payload: bytes = close_payload(OK)
    in_script: bool = False


@dataclass(frozen=True)
class Fail:
    """Our side fails the connection: CLOSE with ``code``, then it closes TCP itself."""

    code: int


Outcome = Union[CloseEcho, Fail]


@dataclass(frozen=True)
class Case:
    id: str
    title: str
    steps: tuple[Step, ...]
    outcome: Outcome = field(default_factory=CloseEcho)
    #: Over ~4 MiB: marked ``slow`` (still run by default).
    slow: bool = False
    #: Seconds for the whole case.
    timeout: float = 10.0

    @property
    def category(self) -> str:
        return self.id.split(".")[0]


# ---------------------------------------------------------------------------
# Shorthands


def _bytes(payload: Union[str, Payload]) -> Payload:
    return payload.encode() if isinstance(payload, str) else payload


def text(payload: Union[str, Payload] = b"", fin: bool = True, rsv: int = 0) -> Frame:
    return Frame(TEXT, _bytes(payload), fin, rsv)


def binary(payload: Payload = b"", fin: bool = True, rsv: int = 0) -> Frame:
    return Frame(BINARY, payload, fin, rsv)


def cont(payload: Union[str, Payload] = b"", fin: bool = True) -> Frame:
    return Frame(CONT, _bytes(payload), fin)


def ping(payload: Union[str, bytes] = b"", fin: bool = True, rsv: int = 0) -> Frame:
    return Frame(PING, _bytes(payload), fin, rsv)


def pong(payload: Union[str, bytes] = b"", fin: bool = True) -> Frame:
    return Frame(PONG, _bytes(payload), fin)


def close(code: Optional[int] = None, reason: bytes = b"", rsv: int = 0) -> Frame:
    return Frame(CLOSE, close_payload(code, reason), True, rsv)


def send(*frames: Union[Frame, Fragmented], chop: Optional[int] = None) -> Send:
    return Send(tuple(frames), chop=chop)


def expect(*frames: Frame) -> Expect:
    return Expect(tuple(frames))


def echo(
    case_id: str,
    title: str,
    *frames: Union[Frame, Fragmented],
    reply: Frame,
    chop: Optional[int] = None,
) -> Case:
    """Send ``frames`` (one message, maybe fragmented) and expect ``reply`` back."""
    return Case(case_id, title, (Send(tuple(frames), chop=chop), expect(reply)))


def fails(case_id: str, title: str, *steps: Step, code: int = PROTOCOL_ERROR) -> Case:
    return Case(case_id, title, tuple(steps), Fail(code))


# ---------------------------------------------------------------------------
# 1. Framing: every payload length class and its boundaries (5.2).

LENGTHS = (0, 125, 126, 127, 128, 65535, 65536)


def _framing() -> list[Case]:
    cases = []
    for sub, (opcode, name, fill) in enumerate(
        ((TEXT, "TEXT", b"*"), (BINARY, "BINARY", b"\xfe")), 1
    ):
        for n, length in enumerate(LENGTHS, 1):
            frame = Frame(opcode, fill * length)
            cases.append(echo(f"1.{sub}.{n}", f"{name} of {length} bytes", frame, reply=frame))
        frame = Frame(opcode, fill * 65536)
        cases.append(
            echo(
                f"1.{sub}.{len(LENGTHS) + 1}",
                f"{name} of 65536 bytes in 997-byte TCP segments",
                frame,
                reply=frame,
                chop=997,
            )
        )
    # 5.1: "The server MUST close the connection upon receiving a frame that is not
    # masked" and "A client MUST close a connection if it detects a masked frame".
    wrong = (
        ("TEXT", Frame(TEXT, b"Hello", wrong_mask=True)),
        ("BINARY", Frame(BINARY, b"\x00" * 200, wrong_mask=True)),
        ("PING", Frame(PING, b"ping", wrong_mask=True)),
        ("CLOSE", Frame(CLOSE, close_payload(OK), wrong_mask=True)),
    )
    for n, (name, frame) in enumerate(wrong, 1):
        cases.append(
            fails(
                f"1.3.{n}",
                f"{name} masked the wrong way for its direction, after a valid TEXT",
                send(text("valid"), frame),
                expect(text("valid")),
            )
        )
    return cases


# ---------------------------------------------------------------------------
# 2. Pings and pongs (5.5.2, 5.5.3): picows answers every PING itself.

_BINARY_PING = b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"


def _pings() -> list[Case]:
    tens = [ping(f"payload-{i}") for i in range(10)]
    ten_pongs = [pong(f"payload-{i}") for i in range(10)]
    every_size = [bytes([n]) * n for n in range(126)]
    return [
        echo("2.1", "PING without payload", ping(), reply=pong()),
        echo("2.2", "PING with a text payload", ping("Hello, world!"), reply=pong("Hello, world!")),
        echo("2.3", "PING with a binary payload", ping(_BINARY_PING), reply=pong(_BINARY_PING)),
        echo("2.4", "PING with a 125-byte payload", ping(b"\xfe" * 125), reply=pong(b"\xfe" * 125)),
        fails("2.5", "PING with a 126-byte payload", send(ping(b"\xfe" * 126))),
        echo(
            "2.6",
            "PING with a 125-byte payload in 1-byte TCP segments",
            ping(b"\xfe" * 125),
            reply=pong(b"\xfe" * 125),
            chop=1,
        ),
        Case("2.7", "unsolicited PONG without payload is ignored", (send(pong()),)),
        Case("2.8", "unsolicited PONG with payload is ignored", (send(pong("unsolicited")),)),
        echo(
            "2.9",
            "unsolicited PONG, then PING: only the PING is answered",
            pong("unsolicited"),
            ping("solicited"),
            reply=pong("solicited"),
        ),
        Case("2.10", "10 PINGs in a row, answered in order", (send(*tens), expect(*ten_pongs))),
        Case(
            "2.11",
            "10 PINGs in a row in 1-byte TCP segments, answered in order",
            (send(*tens, chop=1), expect(*ten_pongs)),
        ),
        Case(
            "2.12",
            "PINGs with every payload length 0..125, answered in order",
            (send(*map(ping, every_size)), expect(*map(pong, every_size))),
        ),
    ]


# ---------------------------------------------------------------------------
# 3. Reserved bits (5.2): "MUST be 0 unless an extension is negotiated".  Valid frames
# before the bad one are echoed; nothing after it is answered.


def _reserved_bits() -> list[Case]:
    cases = []
    bad_frames: tuple[tuple[str, str, Callable[[int], Frame]], ...] = (
        ("1", "TEXT", lambda rsv: text("bad", rsv=rsv)),
        ("2", "BINARY", lambda rsv: binary(b"\x00\xff", rsv=rsv)),
        ("3", "PING", lambda rsv: ping("bad", rsv=rsv)),
    )
    for sub, name, make in bad_frames:
        for rsv in range(1, 8):
            cases.append(
                fails(
                    f"3.{sub}.{rsv}",
                    f"{name} with RSV={rsv} after a valid TEXT, then a PING",
                    send(text("Hello, world!"), make(rsv), ping("after")),
                    expect(text("Hello, world!")),
                )
            )
    cases.append(fails("3.4", "CLOSE with RSV=7", send(close(OK, rsv=7))))
    cases.append(
        fails(
            "3.5",
            "TEXT with RSV=1 after the previous echo arrived",
            send(text("Hello, world!")),
            expect(text("Hello, world!")),
            send(text("bad", rsv=4), ping("after")),
        )
    )
    return cases


# ---------------------------------------------------------------------------
# 4. Opcodes (5.2): 0x3-0x7 and 0xB-0xF are reserved.


def _opcodes() -> list[Case]:
    cases = []
    for sub, opcodes, kind in (
        ("1", range(0x3, 0x8), "non-control"),
        ("2", range(0xB, 0x10), "control"),
    ):
        for n, opcode in enumerate(opcodes, 1):
            payload = b"" if n % 2 else b"reserved opcode"
            cases.append(
                fails(
                    f"4.{sub}.{n}",
                    f"reserved {kind} opcode 0x{opcode:X} after a valid TEXT, then a PING",
                    send(text("Hello"), Frame(opcode, payload), ping("after")),
                    expect(text("Hello")),
                )
            )
    return cases


# ---------------------------------------------------------------------------
# 5. Fragmentation (5.4): control frames are never fragmented; a message's fragments
# are not interleaved with another message's; control frames may come in between.


def _fragmentation() -> list[Case]:
    f1, f2 = text("fragment1", fin=False), cont("fragment2")
    whole = text("fragment1fragment2")
    ten_text = Fragmented(TEXT, b"0123456789" * 10, 10)
    ten_binary = Fragmented(BINARY, bytes(range(100)), 10)
    many = Fragmented(TEXT, b"many-fragments" * 100, 1)
    five = [text("f0", fin=False)] + [cont(f"f{i}", fin=i == 4) for i in range(1, 5)]
    interleaved: list[Step] = []
    for i, fragment in enumerate(five[:-1]):
        interleaved += [send(fragment, ping(f"ping-{i}")), expect(pong(f"ping-{i}"))]
    # The last fragment completes the message: its echo comes before the last PONG.
    interleaved += [send(five[-1], ping("ping-4")), expect(text("f0f1f2f3f4"), pong("ping-4"))]
    return [
        fails(
            "5.1",
            "PING fragmented into 2 frames",
            send(ping("fragment1", fin=False), cont("fragment2")),
        ),
        fails(
            "5.2",
            "PONG fragmented into 2 frames",
            send(pong("fragment1", fin=False), cont("fragment2")),
        ),
        echo("5.3", "TEXT in 2 fragments", f1, f2, reply=whole),
        echo("5.4", "TEXT in 2 fragments, in 1-byte TCP segments", f1, f2, reply=whole, chop=1),
        Case("5.5", "TEXT in 2 fragments, in separate writes", (send(f1), send(f2), expect(whole))),
        Case(
            "5.6",
            "TEXT in 2 fragments with a PING in between: PONG first, then the echo",
            (send(f1, ping("ping"), f2), expect(pong("ping"), whole)),
        ),
        Case(
            "5.7",
            "TEXT in 2 fragments with a PING in between, the PONG awaited mid-message",
            (send(f1, ping("ping")), expect(pong("ping")), send(f2), expect(whole)),
        ),
        Case(
            "5.8",
            "TEXT in 2 fragments with a PING in between, in 1-byte TCP segments",
            (send(f1, ping("ping"), f2, chop=1), expect(pong("ping"), whole)),
        ),
        fails(
            "5.9", "CONTINUATION (FIN) with nothing to continue", send(cont("fragment1"), text("x"))
        ),
        fails(
            "5.10",
            "CONTINUATION (FIN) with nothing to continue, in 1-byte TCP segments",
            send(cont("fragment1"), text("x"), chop=1),
        ),
        fails(
            "5.11",
            "CONTINUATION (no FIN) with nothing to continue",
            send(cont("fragment1", fin=False)),
        ),
        fails(
            "5.12",
            "CONTINUATION (no FIN) with nothing to continue, then a TEXT",
            send(cont("fragment1", fin=False), text("x", fin=False), cont("y")),
        ),
        fails(
            "5.13",
            "a whole fragmented message, then a CONTINUATION without FIN",
            send(f1, f2, cont("fragment3", fin=False), text("fragment4")),
            expect(whole),
        ),
        fails("5.14", "a new TEXT (FIN) while a TEXT is fragmented", send(f1, text("fragment2"))),
        fails(
            "5.15",
            "a new TEXT (no FIN) while a TEXT is fragmented",
            send(f1, text("fragment2", fin=False)),
        ),
        fails("5.16", "a BINARY while a TEXT is fragmented", send(f1, binary(b"fragment2"))),
        fails(
            "5.17",
            "a TEXT while a BINARY is fragmented",
            send(binary(b"fragment1", fin=False), text("fragment2")),
        ),
        Case(
            "5.18",
            "TEXT in 5 fragments, a PING after each, every PONG awaited",
            tuple(interleaved),
        ),
        echo(
            "5.19",
            "BINARY in 2 fragments",
            binary(b"\x01\x02", fin=False),
            cont(b"\x03"),
            reply=binary(b"\x01\x02\x03"),
        ),
        echo("5.20", "TEXT in 10 fragments", ten_text, reply=text(b"0123456789" * 10)),
        echo("5.21", "BINARY in 10 fragments", ten_binary, reply=binary(bytes(range(100)))),
        echo("5.22", "TEXT in 1400 one-byte fragments", many, reply=text(b"many-fragments" * 100)),
        echo(
            "5.23",
            "TEXT of three empty fragments",
            text(fin=False),
            cont(fin=False),
            cont(),
            reply=text(),
        ),
        echo(
            "5.24",
            "an unsolicited PONG between fragments is ignored",
            f1,
            pong("unsolicited"),
            f2,
            reply=whole,
        ),
        Case(
            "5.25",
            "CLOSE in the middle of a fragmented message",
            (send(f1, close(OK)),),
            CloseEcho(close_payload(OK), in_script=True),
        ),
        Case(
            "5.26",
            "a PING after every fragment of a 10-fragment BINARY",
            (
                send(
                    *(
                        f
                        for i, frag in enumerate(ten_binary.frames())
                        for f in (frag, ping(f"p{i}"))
                    )
                ),
                expect(*(pong(f"p{i}") for i in range(9)), binary(bytes(range(100))), pong("p9")),
            ),
        ),
    ]


# ---------------------------------------------------------------------------
# 6. UTF-8 (8.1): a TEXT message must be valid UTF-8 as a whole; the first invalid byte
# fails the connection with 1007, even before the rest of the message is sent.

_KOSME = "κόσμε".encode()
_HELLO = "Hello-µ@ßöäüàá-UTF-8!!".encode()

_VALID_CHARACTERS = {
    "U+0000": "\x00",
    "U+007F": "\x7f",
    "U+0080": "\x80",
    "U+07FF": "\u07ff",
    "U+0800": "\u0800",
    "U+D7FF": "\ud7ff",
    "U+E000": "\ue000",
    "U+FEFF (BOM)": "\ufeff",
    "U+FFFD": "\ufffd",
    "U+FFFF": "\uffff",
    "U+10000": "\U00010000",
    "U+1F600": "\U0001f600",
    "U+10FFFF": "\U0010ffff",
}

_INVALID_SEQUENCES = {
    "overlong '/' (C0 AF)": b"\xc0\xaf",
    "overlong U+007F (C1 BF)": b"\xc1\xbf",
    "overlong NUL (C0 80)": b"\xc0\x80",
    "overlong '/' in 3 bytes (E0 80 AF)": b"\xe0\x80\xaf",
    "overlong U+07FF (E0 9F BF)": b"\xe0\x9f\xbf",
    "overlong '/' in 4 bytes (F0 80 80 AF)": b"\xf0\x80\x80\xaf",
    "overlong U+FFFF (F0 8F BF BF)": b"\xf0\x8f\xbf\xbf",
    "surrogate U+D800 (ED A0 80)": b"\xed\xa0\x80",
    "surrogate U+DB7F (ED AD BF)": b"\xed\xad\xbf",
    "surrogate U+DC00 (ED B0 80)": b"\xed\xb0\x80",
    "surrogate U+DFFF (ED BF BF)": b"\xed\xbf\xbf",
    "surrogate pair (ED A0 80 ED B0 80)": b"\xed\xa0\x80\xed\xb0\x80",
    "U+110000 (F4 90 80 80)": b"\xf4\x90\x80\x80",
    "start byte F5": b"\xf5\x80\x80\x80",
    "start byte F7 (U+1FFFFF)": b"\xf7\xbf\xbf\xbf",
    "5-byte sequence (F8 88 80 80 80)": b"\xf8\x88\x80\x80\x80",
    "6-byte sequence (FC 84 80 80 80 80)": b"\xfc\x84\x80\x80\x80\x80",
    "byte FE": b"\xfe",
    "byte FF": b"\xff",
    "FE FE FF FF": b"\xfe\xfe\xff\xff",
    "lone continuation 80": b"\x80",
    "lone continuation BF": b"\xbf",
    "continuations 80 BF 80": b"\x80\xbf\x80",
    "2-byte start then ASCII (CE 41)": b"\xceA",
    "3-byte start, 1 continuation, then ASCII (E1 BD 41)": b"\xe1\xbdA",
    "4-byte start, 2 continuations, then ASCII (F0 9F 98 41)": b"\xf0\x9f\x98A",
    "truncated 2-byte sequence at the end (CE)": b"\xce",
    "truncated 3-byte sequence at the end (E1 BD)": b"\xe1\xbd",
    "truncated 4-byte sequence at the end (F0 9F 98)": b"\xf0\x9f\x98",
}

# First fragments that are already invalid whatever follows: 1007 must come before the
# rest of the message is sent (the script never sends it).
_FAIL_FAST_PREFIXES = {
    "U+110000 (F4 90 80 80)": _KOSME + b"\xf4\x90\x80\x80" + b"edited",
    "F4 90 at the end of the fragment": _KOSME + b"\xf4\x90",
    "ED A0 (a surrogate's start) at the end of the fragment": _KOSME + b"\xed\xa0",
    "E0 80 (an overlong start) at the end of the fragment": _KOSME + b"\xe0\x80",
    "C0 at the end of the fragment": _KOSME + b"\xc0",
    "FE in the middle of the fragment": _KOSME + b"\xfe" + _KOSME,
    "lone continuation byte 80 first": b"\x80" + _KOSME,
}


def _utf8() -> list[Case]:
    cases = [
        echo("6.1.1", "empty TEXT", text(), reply=text()),
        echo(
            "6.1.2",
            "TEXT of three empty fragments",
            text(fin=False),
            cont(fin=False),
            cont(),
            reply=text(),
        ),
        echo(
            "6.1.3",
            "TEXT: empty, non-empty, empty fragments",
            text(fin=False),
            cont("middle", fin=False),
            cont(),
            reply=text("middle"),
        ),
        echo("6.2.1", "valid multi-byte TEXT in one frame", text(_HELLO), reply=text(_HELLO)),
        echo(
            "6.2.2",
            "valid multi-byte TEXT in 2 fragments at a character boundary",
            text(_HELLO[:7], fin=False),
            cont(_HELLO[7:]),
            reply=text(_HELLO),
        ),
        echo(
            "6.2.3",
            "valid multi-byte TEXT, one fragment per byte",
            Fragmented(TEXT, _HELLO, 1),
            reply=text(_HELLO),
        ),
        echo(
            "6.2.4",
            "valid TEXT split inside a character",
            text(_KOSME[:3], fin=False),
            cont(_KOSME[3:]),
            reply=text(_KOSME),
        ),
        echo("6.2.5", "valid TEXT 'κόσμε' in one frame", text(_KOSME), reply=text(_KOSME)),
    ]
    for n, (name, char) in enumerate(_VALID_CHARACTERS.items(), 1):
        raw = char.encode()
        cases.append(
            echo(f"6.3.{n}", f"boundary character {name} in one frame", text(raw), reply=text(raw))
        )
        if len(raw) > 1:
            cases.append(
                echo(
                    f"6.4.{n}",
                    f"boundary character {name}, one fragment per byte",
                    Fragmented(TEXT, raw, 1),
                    reply=text(raw),
                )
            )
    for n, (name, bad) in enumerate(_INVALID_SEQUENCES.items(), 1):
        cases.append(
            fails(f"6.5.{n}", f"invalid UTF-8: {name}", send(text(_KOSME + bad)), code=INVALID_TEXT)
        )
        cases.append(
            fails(
                f"6.6.{n}",
                f"invalid UTF-8 in the last of 2 fragments: {name}",
                send(text(_KOSME, fin=False), cont(bad)),
                code=INVALID_TEXT,
            )
        )
    cases += [
        fails(
            "6.7.1",
            "a surrogate split across fragments (ED | A0 80)",
            send(text(_KOSME + b"\xed", fin=False), cont(b"\xa0\x80")),
            code=INVALID_TEXT,
        ),
        fails(
            "6.7.2",
            "a fragmented message ending inside a character",
            send(text(_KOSME, fin=False), cont(b"\xce\xba\xce")),
            code=INVALID_TEXT,
        ),
        fails(
            "6.7.3",
            "a valid TEXT, then an invalid one: the first is echoed",
            send(text(_KOSME), text(b"\xc0\xaf")),
            expect(text(_KOSME)),
            code=INVALID_TEXT,
        ),
    ]
    for n, (name, fragment) in enumerate(_FAIL_FAST_PREFIXES.items(), 1):
        cases.append(
            fails(
                f"6.8.{n}",
                f"fail fast: invalid first fragment, the rest never sent: {name}",
                send(text(fragment, fin=False)),
                code=INVALID_TEXT,
            )
        )
    cases.append(
        fails(
            "6.8.8",
            "fail fast: one fragment per byte, stopped right after F4 90",
            send(Fragmented(TEXT, _KOSME + b"\xf4\x90", 1)),
            code=INVALID_TEXT,
        )
    )
    return cases


# ---------------------------------------------------------------------------
# 7. The closing handshake (5.5.1, 7.1, 7.4).

VALID_CLOSE_CODES = (1000, 1001, 1002, 1003, *range(1007, 1015), 3000, 3999, 4000, 4999)
INVALID_CLOSE_CODES = (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535)


def _closing() -> list[Case]:
    bye = close_payload(OK)
    done = CloseEcho(bye, in_script=True)
    cases = [
        Case("7.1.1", "TEXT, then CLOSE", (send(text("Hello")), expect(text("Hello")))),
        Case("7.1.2", "CLOSE without payload", (send(close()),), CloseEcho(b"", in_script=True)),
        Case(
            "7.1.3",
            "CLOSE, then TEXT: the TEXT is ignored",
            (send(close(OK), text("ignored")),),
            done,
        ),
        Case(
            "7.1.4",
            "CLOSE, then PING: the PING is not answered",
            (send(close(OK), ping("ignored")),),
            done,
        ),
        Case("7.1.5", "a second CLOSE is ignored", (send(close(OK), close(1001)),), done),
        Case(
            "7.1.6",
            "a TEXT fragment, then CLOSE (the message never completes)",
            (send(text("fragment", fin=False), close(OK)),),
            done,
        ),
        Case(
            "7.1.7",
            "256 KiB TEXT, CLOSE, PING: the TEXT is echoed, the PING ignored",
            (
                send(text(Blob(256 * KIB, True)), close(OK), ping("ignored")),
                expect(text(Blob(256 * KIB, True))),
            ),
            done,
        ),
        Case(
            "7.3.1",
            "CLOSE with code 1000 and a reason",
            (send(close(OK, b"Hello World!")),),
            CloseEcho(close_payload(OK, b"Hello World!"), in_script=True),
        ),
        fails("7.3.2", "CLOSE with a 1-byte payload", send(Frame(CLOSE, b"\x03"))),
        Case(
            "7.3.3",
            "CLOSE with a 123-byte reason (125-byte payload)",
            (send(close(OK, b"*" * 123)),),
            CloseEcho(close_payload(OK, b"*" * 123), in_script=True),
        ),
        fails(
            "7.3.4", "CLOSE with a 124-byte reason (126-byte payload)", send(close(OK, b"*" * 124))
        ),
        fails(
            "7.3.5",
            "CLOSE whose reason is not UTF-8",
            send(close(OK, _KOSME + b"\xf4\x90\x80\x80")),
            code=INVALID_TEXT,
        ),
        fails(
            "7.3.6",
            "CLOSE whose reason ends inside a character",
            send(close(OK, _KOSME[:-1])),
            code=INVALID_TEXT,
        ),
        fails(
            "7.3.7",
            "CLOSE whose reason holds a surrogate (ED A0 80)",
            send(close(OK, b"ok \xed\xa0\x80")),
            code=INVALID_TEXT,
        ),
        fails(
            "7.3.8",
            "CLOSE whose reason holds an overlong sequence (C0 AF)",
            send(close(OK, b"\xc0\xaf")),
            code=INVALID_TEXT,
        ),
        Case(
            "7.3.9",
            "CLOSE with a multi-byte UTF-8 reason",
            (send(close(OK, _KOSME)),),
            CloseEcho(close_payload(OK, _KOSME), in_script=True),
        ),
    ]
    for n, code in enumerate(VALID_CLOSE_CODES, 1):
        cases.append(
            Case(
                f"7.7.{n}",
                f"CLOSE with valid code {code} is echoed",
                (send(close(code)),),
                CloseEcho(close_payload(code), in_script=True),
            )
        )
    for n, code in enumerate(INVALID_CLOSE_CODES, 1):
        cases.append(fails(f"7.9.{n}", f"CLOSE with invalid code {code}", send(close(code))))
    return cases


# ---------------------------------------------------------------------------
# 9. Big messages and many fragments.

_SINGLE_SIZES = (64 * KIB, 256 * KIB, 1 * MIB, 4 * MIB, 8 * MIB, 16 * MIB)
_FRAGMENT_SIZES = (64, 256, 1 * KIB, 4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, 1 * MIB)
_SEGMENT_SIZES = (64, 128, 256, 512, 1024, 2048)


def _size_name(size: int) -> str:
    if size >= MIB:
        return f"{size // MIB} MiB"
    return f"{size // KIB} KiB" if size >= KIB else f"{size} B"


def _big() -> list[Case]:
    cases = []
    for sub, is_text, name in ((1, True, "TEXT"), (2, False, "BINARY")):
        opcode = TEXT if is_text else BINARY
        for n, size in enumerate(_SINGLE_SIZES, 1):
            blob = Blob(size, is_text)
            cases.append(
                Case(
                    f"9.{sub}.{n}",
                    f"{name} of {_size_name(size)} in one frame",
                    (send(Frame(opcode, blob)), expect(Frame(opcode, blob))),
                    slow=size > 4 * MIB,
                    timeout=60,
                )
            )
    for sub, is_text, name in ((3, True, "TEXT"), (4, False, "BINARY")):
        opcode = TEXT if is_text else BINARY
        blob = Blob(4 * MIB, is_text)
        for n, fragment in enumerate(_FRAGMENT_SIZES, 1):
            cases.append(
                Case(
                    f"9.{sub}.{n}",
                    f"{name} of 4 MiB in {_size_name(fragment)} fragments",
                    (send(Fragmented(opcode, blob, fragment)), expect(Frame(opcode, blob))),
                    timeout=60,
                )
            )
    for sub, is_text, name in ((5, True, "TEXT"), (6, False, "BINARY")):
        opcode = TEXT if is_text else BINARY
        blob = Blob(1 * MIB, is_text)
        for n, segment in enumerate(_SEGMENT_SIZES, 1):
            cases.append(
                Case(
                    f"9.{sub}.{n}",
                    f"{name} of 1 MiB in {segment}-byte TCP segments",
                    (send(Frame(opcode, blob), chop=segment), expect(Frame(opcode, blob))),
                    timeout=60,
                )
            )
    return cases


# ---------------------------------------------------------------------------
# 10. TCP segmentation: however the byte stream is cut, the messages come back intact.


def _segmentation() -> list[Case]:
    mixed: list[Union[Frame, Fragmented]] = []
    replies: list[Frame] = []
    for i in range(40):
        kind = i % 5
        if kind == 0:
            mixed.append(text(f"message {i} " * (i + 1)))
            replies.append(text(f"message {i} " * (i + 1)))
        elif kind == 1:
            mixed.append(binary(bytes(range(i * 7 % 256)) * 3))
            replies.append(binary(bytes(range(i * 7 % 256)) * 3))
        elif kind == 2:
            mixed.append(Fragmented(TEXT, _KOSME * i, 5))
            replies.append(text(_KOSME * i))
        elif kind == 3:
            mixed.append(ping(f"ping {i}"))
            replies.append(pong(f"ping {i}"))
        else:
            mixed.append(binary(b"\x00" * 300))
            replies.append(binary(b"\x00" * 300))
    kosme_frames = [
        text(_KOSME[:4], fin=False),
        ping("between"),
        cont(_KOSME[4:7], fin=False),
        cont(_KOSME[7:]),
    ]
    return [
        echo(
            "10.1.1",
            "TEXT of 200 bytes in 1-byte TCP segments",
            text("x" * 200),
            reply=text("x" * 200),
            chop=1,
        ),
        Case(
            "10.1.2",
            "fragmented TEXT with a PING in between, in 1-byte TCP segments",
            (send(*kosme_frames, chop=1), expect(pong("between"), text(_KOSME))),
        ),
        echo(
            "10.1.3",
            "TEXT of 64 KiB in 1300-byte TCP segments",
            text(Blob(64 * KIB, True)),
            reply=text(Blob(64 * KIB, True)),
            chop=1300,
        ),
        Case(
            "10.1.4",
            "40 mixed messages and PINGs cut at random points",
            (Send(tuple(mixed), split_seed=6455), expect(*replies)),
        ),
        Case(
            "10.1.5",
            "BINARY of 64 KiB cut at random points",
            (
                Send((binary(Blob(64 * KIB, False)),), split_seed=1, max_segment=2048),
                expect(binary(Blob(64 * KIB, False))),
            ),
        ),
    ]


CASES: list[Case] = [
    *_framing(),
    *_pings(),
    *_reserved_bits(),
    *_opcodes(),
    *_fragmentation(),
    *_utf8(),
    *_closing(),
    *_big(),
    *_segmentation(),
]

assert len({case.id for case in CASES}) == len(CASES), "duplicate case ids"


# ---------------------------------------------------------------------------
# The opening handshake (4.1, 4.2).

_KEY = "dGhlIHNhbXBsZSBub25jZQ=="

_REQUEST_HEADERS: tuple[tuple[str, str], ...] = (
    ("Host", "127.0.0.1"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", _KEY),
    ("Sec-WebSocket-Version", "13"),
)


@dataclass(frozen=True)
class ServerHandshakeCase:
    """A request to our server: the standard headers with ``replace`` applied.

    ``replace`` maps a header name to its new value (None drops the header).  ``status``
    is the expected answer; ``headers`` must all be in it.
    """

    id: str
    title: str
    replace: tuple[tuple[str, Optional[str]], ...]
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    method: str = "GET"
    version: str = "HTTP/1.1"

    def request(self, key: str = _KEY) -> bytes:
        fields = dict(_REQUEST_HEADERS)
        fields["Sec-WebSocket-Key"] = key
        for name, value in self.replace:
            if value is None:
                fields.pop(name, None)
            else:
                fields[name] = value
        lines = [f"{self.method} / {self.version}", *(f"{n}: {v}" for n, v in fields.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _server_handshakes() -> list[ServerHandshakeCase]:
    version_13 = (("Sec-WebSocket-Version", "13"),)
    cases = [
        ServerHandshakeCase("H.1", "a standard request", (), 101),
        ServerHandshakeCase(
            "H.2",
            "Connection: keep-alive, Upgrade (Firefox)",
            (("Connection", "keep-alive, Upgrade"),),
            101,
        ),
        ServerHandshakeCase(
            "H.3", "Connection: upgrade in lower case", (("Connection", "upgrade"),), 101
        ),
        ServerHandshakeCase(
            "H.4", "Connection: UPGRADE, close", (("Connection", "UPGRADE, close"),), 101
        ),
        ServerHandshakeCase("H.5", "Upgrade: WebSocket", (("Upgrade", "WebSocket"),), 101),
        ServerHandshakeCase("H.6", "Upgrade: WEBSOCKET", (("Upgrade", "WEBSOCKET"),), 101),
        ServerHandshakeCase(
            "H.7", "Connection without the upgrade token", (("Connection", "keep-alive"),), 400
        ),
        ServerHandshakeCase("H.8", "no Upgrade header", (("Upgrade", None),), 400),
        ServerHandshakeCase("H.9", "Upgrade: h2c", (("Upgrade", "h2c"),), 400),
        ServerHandshakeCase("H.10", "no Sec-WebSocket-Key", (("Sec-WebSocket-Key", None),), 400),
        ServerHandshakeCase(
            "H.11", "Sec-WebSocket-Key not base64", (("Sec-WebSocket-Key", "not base64!!"),), 400
        ),
        ServerHandshakeCase(
            "H.12",
            "Sec-WebSocket-Key of 15 bytes",
            (("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAA"),),
            400,
        ),
        ServerHandshakeCase(
            "H.13",
            "Sec-WebSocket-Key of 17 bytes",
            (("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAAA="),),
            400,
        ),
        ServerHandshakeCase("H.14", "method POST", (), 400, method="POST"),
        ServerHandshakeCase("H.15", "HTTP/1.0", (), 400, version="HTTP/1.0"),
        ServerHandshakeCase(
            "H.16", "no Sec-WebSocket-Version", (("Sec-WebSocket-Version", None),), 400
        ),
    ]
    for n, version in enumerate(("8", "7", "12", "14", "0", "abc"), 17):
        cases.append(
            ServerHandshakeCase(
                f"H.{n}",
                f"Sec-WebSocket-Version: {version}",
                (("Sec-WebSocket-Version", version),),
                426,
                version_13,
            )
        )
    return cases


SERVER_HANDSHAKE_CASES = _server_handshakes()


@dataclass(frozen=True)
class ClientHandshakeCase:
    """A 101 response (built by the raw server) that our client must accept or refuse.

    ``extra`` headers are added to a standard 101; ``replace`` rewrites or drops standard
    ones.  ``error`` names the picows exception class ws_connect raises (None: accepted).
    """

    id: str
    title: str
    extra: tuple[tuple[str, str], ...] = ()
    replace: tuple[tuple[str, Optional[str]], ...] = ()
    error: Optional[str] = None
    request_headers: tuple[tuple[str, str], ...] = ()


CLIENT_HANDSHAKE_CASES = [
    ClientHandshakeCase("C.1", "a standard 101"),
    ClientHandshakeCase(
        "C.2", "Connection: Upgrade, keep-alive", replace=(("Connection", "Upgrade, keep-alive"),)
    ),
    ClientHandshakeCase("C.3", "Upgrade: WebSocket", replace=(("Upgrade", "WebSocket"),)),
    ClientHandshakeCase("C.4", "Connection: UPGRADE", replace=(("Connection", "UPGRADE"),)),
    ClientHandshakeCase(
        "C.5",
        "an unrequested extension",
        extra=(("Sec-WebSocket-Extensions", "permessage-deflate"),),
        error="WSInvalidHeaderError",
    ),
    ClientHandshakeCase(
        "C.6",
        "an unrequested subprotocol",
        extra=(("Sec-WebSocket-Protocol", "chat"),),
        error="WSInvalidHeaderError",
    ),
    ClientHandshakeCase(
        "C.7",
        "a subprotocol other than the requested ones",
        extra=(("Sec-WebSocket-Protocol", "superchat"),),
        request_headers=(("Sec-WebSocket-Protocol", "chat, v2.chat"),),
        error="WSInvalidHeaderError",
    ),
    ClientHandshakeCase(
        "C.8",
        "the requested subprotocol",
        extra=(("Sec-WebSocket-Protocol", "v2.chat"),),
        request_headers=(("Sec-WebSocket-Protocol", "chat, v2.chat"),),
    ),
    ClientHandshakeCase(
        "C.9",
        "a wrong Sec-WebSocket-Accept",
        replace=(("Sec-WebSocket-Accept", _KEY),),
        error="WSInvalidHeaderError",
    ),
    ClientHandshakeCase(
        "C.10",
        "no Sec-WebSocket-Accept",
        replace=(("Sec-WebSocket-Accept", None),),
        error="WSInvalidHeaderError",
    ),
    ClientHandshakeCase(
        "C.11", "no Upgrade header", replace=(("Upgrade", None),), error="WSInvalidUpgradeError"
    ),
    ClientHandshakeCase(
        "C.12",
        "Connection without the upgrade token",
        replace=(("Connection", "close"),),
        error="WSInvalidUpgradeError",
    ),
]
