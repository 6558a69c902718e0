"""A hand-driven WebSocket peer for wire-level tests.

:class:`RawPeer` speaks RFC 6455 by hand over asyncio streams on 127.0.0.1: it
sends whatever bytes a test builds (valid frames or deliberate violations) and
parses what picows puts on the wire, mask keys included.  It can play the client
against a picows server (:func:`connect_raw_client`) or the server against a
picows client (:class:`RawServer`).

:class:`Harness` pairs one picows endpoint with one raw peer and cleans up after
the test; :class:`RecordingListener` keeps a copy of everything picows delivered.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional, Union

import picows
from picows._frames import encode_frame

__all__ = [
    "Harness",
    "Pair",
    "RawFrame",
    "RawPeer",
    "RawServer",
    "ReceivedFrame",
    "RecordingListener",
    "accept_for",
    "connect_raw_client",
    "frame_bytes",
]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
DEFAULT_TIMEOUT = 5.0

Headers = Iterable[tuple[str, str]]


def accept_for(key: str) -> str:
    """The Sec-WebSocket-Accept value for ``key`` (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode()


def frame_bytes(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    masked: bool,
) -> bytes:
    """One whole frame; masked with a fresh random key when ``masked``."""
    key = os.urandom(4) if masked else None
    return encode_frame(opcode, payload, fin, rsv1, rsv2, rsv3, key)


def unmask(data: bytes, key: bytes) -> bytes:
    """5.3: XOR with the repeating 4-byte key (written independently of picows)."""
    size = len(data)
    stream = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(size, "big")


class RawFrame(NamedTuple):
    """A frame as the raw peer saw it on the wire (payload already unmasked)."""

    fin: int
    rsv1: int
    rsv2: int
    rsv3: int
    opcode: int
    mask_key: Optional[bytes]
    payload: bytes
    header: bytes

    @property
    def masked(self) -> bool:
        return self.mask_key is not None

    @property
    def close_code(self) -> Optional[int]:
        assert self.opcode == 8, self
        return None if len(self.payload) < 2 else int.from_bytes(self.payload[:2], "big")

    @property
    def close_reason(self) -> str:
        assert self.opcode == 8, self
        return self.payload[2:].decode("utf-8")


class RawPeer:
    """One end of a WebSocket connection, driven byte by byte by the test."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        is_client: bool,
        leftover: bytes = b"",
    ) -> None:
        self.reader = reader
        self.writer = writer
        #: A raw client masks what it sends, a raw server does not.
        self.is_client = is_client
        self._buffer = bytearray(leftover)
        #: Headers of the 101 response (raw client only), names lower-cased.
        self.response_headers: dict[str, str] = {}

    # -- sending ------------------------------------------------------------------

    def build(
        self,
        opcode: int,
        payload: bytes = b"",
        *,
        fin: bool = True,
        rsv1: bool = False,
        rsv2: bool = False,
        rsv3: bool = False,
        masked: Optional[bool] = None,
    ) -> bytes:
        """A frame as this peer should send it (masked iff it is the client)."""
        return frame_bytes(
            opcode,
            payload,
            fin=fin,
            rsv1=rsv1,
            rsv2=rsv2,
            rsv3=rsv3,
            masked=self.is_client if masked is None else masked,
        )

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def send_frame(self, opcode: int, payload: bytes = b"", **flags: Any) -> None:
        self.send_raw(self.build(opcode, payload, **flags))

    def send_close(self, code: Optional[int] = None, reason: bytes = b"") -> None:
        payload = b"" if code is None else struct.pack("!H", code) + reason
        self.send_frame(8, payload)

    # -- receiving ----------------------------------------------------------------

    async def _fill(self, size: int) -> None:
        while len(self._buffer) < size:
            chunk = await self.reader.read(65536)
            if not chunk:
                raise EOFError(f"EOF with {len(self._buffer)} of {size} bytes buffered")
            self._buffer += chunk

    async def _read_frame(self) -> RawFrame:
        await self._fill(2)
        first, second = self._buffer[0], self._buffer[1]
        length = second & 0x7F
        header_size = 2
        if length == 126:
            await self._fill(4)
            length = struct.unpack_from("!H", self._buffer, 2)[0]
            header_size = 4
        elif length == 127:
            await self._fill(10)
            length = struct.unpack_from("!Q", self._buffer, 2)[0]
            header_size = 10
        key = None
        if second & 0x80:
            await self._fill(header_size + 4)
            key = bytes(self._buffer[header_size : header_size + 4])
            header_size += 4
        await self._fill(header_size + length)
        header = bytes(self._buffer[:header_size])
        payload = bytes(self._buffer[header_size : header_size + length])
        del self._buffer[: header_size + length]
        if key is not None:
            payload = unmask(payload, key)
        return RawFrame(
            fin=first >> 7,
            rsv1=(first >> 6) & 1,
            rsv2=(first >> 5) & 1,
            rsv3=(first >> 4) & 1,
            opcode=first & 0x0F,
            mask_key=key,
            payload=payload,
            header=header,
        )

    async def read_frame(self, timeout: float = DEFAULT_TIMEOUT) -> RawFrame:
        """The next frame picows sent; EOFError if the connection closed first."""
        frame = await asyncio.wait_for(self._read_frame(), timeout)
        # picows must follow 5.1 on every frame it sends.
        assert frame.masked == (not self.is_client), frame
        return frame

    async def expect_close(self, timeout: float = DEFAULT_TIMEOUT) -> RawFrame:
        """The next frame, which must be a CLOSE."""
        frame = await self.read_frame(timeout)
        assert frame.opcode == 8, f"expected CLOSE, got {frame}"
        return frame

    async def read_until_eof(self, timeout: float = DEFAULT_TIMEOUT) -> list[RawFrame]:
        """Every frame until picows closes the TCP connection."""

        async def read_all() -> list[RawFrame]:
            frames: list[RawFrame] = []
            while True:
                try:
                    await self._fill(1)
                except (EOFError, ConnectionResetError):
                    return frames
                frames.append(await self._read_frame())

        return await asyncio.wait_for(read_all(), timeout)

    async def expect_eof(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """picows closes the TCP connection without sending anything else."""
        frames = await self.read_until_eof(timeout)
        assert frames == [], f"expected EOF, received {frames}"

    async def read_bytes_until_eof(self, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        async def read_all() -> bytes:
            while True:
                try:
                    chunk = await self.reader.read(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    data = bytes(self._buffer)
                    self._buffer.clear()
                    return data
                self._buffer += chunk

        return await asyncio.wait_for(read_all(), timeout)

    # -- closing ------------------------------------------------------------------

    def close(self) -> None:
        """Close the TCP connection (FIN)."""
        if not self.writer.is_closing():
            self.writer.close()

    def abort(self) -> None:
        """Drop the TCP connection (RST)."""
        self.writer.transport.abort()


async def _read_head(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await reader.read(4096)
        if not chunk:
            raise EOFError(f"EOF during the handshake after {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _parse_headers(lines: list[bytes]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


async def connect_raw_client(
    port: int,
    *,
    path: str = "/",
    extra_headers: Headers = (),
    after_request: bytes = b"",
    rcvbuf: Optional[int] = None,
    stream_limit: int = 2**16,
    timeout: float = DEFAULT_TIMEOUT,
) -> RawPeer:
    """Open a TCP connection to a picows server and perform the upgrade by hand.

    ``rcvbuf`` shrinks the socket's receive buffer (set before connecting, so that
    the TCP window is small from the start).  ``after_request`` is written in the
    same write as the request (frames that arrive together with the upgrade).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), timeout)
    except BaseException:
        sock.close()
        raise
    reader, writer = await asyncio.open_connection(sock=sock, limit=stream_limit)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Key: {key}",
        *(f"{name}: {value}" for name, value in extra_headers),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + after_request)
    head, rest = await asyncio.wait_for(_read_head(reader), timeout)
    status_line, *header_lines = head.split(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 101 "), head
    headers = _parse_headers(header_lines)
    assert headers["sec-websocket-accept"] == accept_for(key), head
    peer = RawPeer(reader, writer, is_client=True, leftover=rest)
    peer.response_headers = headers
    return peer


class RawServer:
    """A TCP server that answers every upgrade request by hand with a 101.

    Each accepted connection becomes a :class:`RawPeer` playing the server, handed
    out by :meth:`accept`.
    """

    def __init__(self, *, extra_headers: Headers = (), after_101: bytes = b"") -> None:
        self.extra_headers = list(extra_headers)
        #: Written in the same write as the 101 response.
        self.after_101 = after_101
        self.requests: list[bytes] = []
        self._peers: asyncio.Queue[RawPeer] = asyncio.Queue()
        self._server: Optional[asyncio.AbstractServer] = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def start(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, rest = await _read_head(reader)
        self.requests.append(head)
        headers = _parse_headers(head.split(b"\r\n")[1:])
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept_for(headers['sec-websocket-key'])}",
            *(f"{name}: {value}" for name, value in self.extra_headers),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + self.after_101)
        self._peers.put_nowait(RawPeer(reader, writer, is_client=False, leftover=rest))

    async def accept(self, timeout: float = DEFAULT_TIMEOUT) -> RawPeer:
        return await asyncio.wait_for(self._peers.get(), timeout)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


# -- the picows side ----------------------------------------------------------------


@dataclass
class ReceivedFrame:
    """A copy of what ``on_ws_frame`` saw, taken inside the callback."""

    msg_type: int
    payload: bytes
    fin: int
    rsv1: int
    rsv2: int
    rsv3: int
    last_in_buffer: int
    tail_size: int
    payload_size: int
    close_handshake_recv: Optional[Any] = None
    close_code: Optional[int] = None
    close_reason: Optional[str] = None


class RecordingListener(picows.WSListener):
    """Records every callback; frames are copied while they are valid."""

    def __init__(self) -> None:
        self.transport: Optional[picows.WSTransport] = None
        self.frames: list[ReceivedFrame] = []
        self._frame_queue: asyncio.Queue[ReceivedFrame] = asyncio.Queue()
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.disconnected_calls = 0
        #: Raised from on_ws_frame for the frames whose payload is the key.
        self.raise_on_payload: dict[bytes, BaseException] = {}

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self.transport = transport
        self.connected.set()

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        assert transport is self.transport
        record = ReceivedFrame(
            msg_type=frame.msg_type,
            payload=frame.get_payload_as_bytes(),
            fin=frame.fin,
            rsv1=frame.rsv1,
            rsv2=frame.rsv2,
            rsv3=frame.rsv3,
            last_in_buffer=frame.last_in_buffer,
            tail_size=frame.tail_size,
            payload_size=frame.payload_size,
        )
        if frame.msg_type == picows.WSMsgType.CLOSE:
            handshake = transport.close_handshake
            record.close_handshake_recv = None if handshake is None else handshake.recv
            record.close_code = frame.get_close_code()
            record.close_reason = frame.get_close_reason()
        self.frames.append(record)
        self._frame_queue.put_nowait(record)
        error = self.raise_on_payload.get(record.payload)
        if error is not None:
            raise error

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        assert transport is self.transport
        self.disconnected_calls += 1
        self.disconnected.set()

    async def next_frame(self, timeout: float = DEFAULT_TIMEOUT) -> ReceivedFrame:
        return await asyncio.wait_for(self._frame_queue.get(), timeout)

    async def wait_connected(self, timeout: float = DEFAULT_TIMEOUT) -> picows.WSTransport:
        await asyncio.wait_for(self.connected.wait(), timeout)
        assert self.transport is not None
        return self.transport

    async def wait_disconnected(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        await asyncio.wait_for(self.disconnected.wait(), timeout)


@dataclass
class Pair:
    """A picows endpoint and the raw peer it talks to."""

    transport: picows.WSTransport
    listener: Any
    peer: RawPeer


ListenerFactory = Callable[[], picows.WSListener]


class Harness:
    """Opens picows <-> raw peer connections and tears all of them down."""

    def __init__(self) -> None:
        self._servers: list[Union[asyncio.AbstractServer, RawServer]] = []
        self._peers: list[RawPeer] = []
        self._transports: list[picows.WSTransport] = []

    async def __aenter__(self) -> Harness:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def open(
        self,
        side: str,
        listener_factory: ListenerFactory = RecordingListener,
        **kwargs: Any,
    ) -> Pair:
        """``side`` is the role of picows: ``"client"`` or ``"server"``."""
        if side == "client":
            return await self.picows_client(listener_factory, **kwargs)
        assert side == "server", side
        return await self.picows_server(listener_factory, **kwargs)

    async def picows_client(
        self,
        listener_factory: ListenerFactory = RecordingListener,
        *,
        response_headers: Headers = (),
        after_101: bytes = b"",
        **connect_kwargs: Any,
    ) -> Pair:
        """picows ``ws_connect`` against a :class:`RawServer`."""
        server = await RawServer(extra_headers=response_headers, after_101=after_101).start()
        self._servers.append(server)
        transport, listener = await picows.ws_connect(
            listener_factory, server.url, **connect_kwargs
        )
        self._transports.append(transport)
        peer = await server.accept()
        self._peers.append(peer)
        return Pair(transport, listener, peer)

    async def start_picows_server(
        self,
        listener_factory: ListenerFactory = RecordingListener,
        *,
        response_headers: Optional[Headers] = None,
        **server_kwargs: Any,
    ) -> tuple[int, asyncio.Queue[Any]]:
        """A picows server; its listeners are queued as the factory creates them."""
        listeners: asyncio.Queue[Any] = asyncio.Queue()

        def factory(request: picows.WSUpgradeRequest) -> Any:
            listener = listener_factory()
            listeners.put_nowait(listener)
            if response_headers is None:
                return listener
            response = picows.WSUpgradeResponse.create_101_response(list(response_headers))
            return picows.WSUpgradeResponseWithListener(response, listener)

        server = await picows.ws_create_server(factory, "127.0.0.1", 0, **server_kwargs)
        self._servers.append(server)
        return server.sockets[0].getsockname()[1], listeners

    async def picows_server(
        self,
        listener_factory: ListenerFactory = RecordingListener,
        *,
        response_headers: Optional[Headers] = None,
        client_headers: Headers = (),
        after_request: bytes = b"",
        rcvbuf: Optional[int] = None,
        **server_kwargs: Any,
    ) -> Pair:
        """A picows server with one raw client connected to it."""
        port, listeners = await self.start_picows_server(
            listener_factory, response_headers=response_headers, **server_kwargs
        )
        peer = await connect_raw_client(
            port,
            extra_headers=client_headers,
            after_request=after_request,
            rcvbuf=rcvbuf,
            stream_limit=1024,
        )
        self._peers.append(peer)
        listener = await asyncio.wait_for(listeners.get(), DEFAULT_TIMEOUT)
        transport = await _wait_transport(listener)
        self._transports.append(transport)
        return Pair(transport, listener, peer)

    async def aclose(self) -> None:
        for peer in self._peers:
            peer.abort()
        for transport in self._transports:
            if not transport.is_disconnected:
                transport.disconnect(graceful=False)
        for transport in self._transports:
            try:
                await asyncio.wait_for(transport.wait_disconnected(), DEFAULT_TIMEOUT)
            except Exception:  # the test already judged how the connection ended
                pass
        for server in self._servers:
            if isinstance(server, RawServer):
                await server.close()
            else:
                server.close()
                await server.wait_closed()


async def _wait_transport(listener: Any) -> picows.WSTransport:
    """The transport of a server-side listener, once on_ws_connected ran."""
    if isinstance(listener, RecordingListener):
        return await listener.wait_connected()
    transport = getattr(listener, "transport", None)
    assert isinstance(transport, picows.WSTransport), (
        "server listeners must store the transport in on_ws_connected"
    )
    return transport
