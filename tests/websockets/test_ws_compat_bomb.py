"""Decompression bombs against a picows.websockets server (RFC 7692 with max_size).

A raw peer negotiates permessage-deflate, then sends a message whose first
fragment inflates to exactly ``max_size`` (1 MiB, the whole budget) followed by
about 199 MiB of compressed zeros (a few hundred KiB on the wire), or the same
200 MiB in one frame.  The server must close with 1009 and its peak resident
memory (VmHWM, measured in its own process) must stay far below what inflating
the message would take.  Upstream picows grows by ~400 MiB on the fragmented one.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from picows._frames import encode_frame

MiB = 2**20
TIMEOUT = 30
#: The bound on the server's peak memory growth while it refuses a 200 MiB bomb.
RSS_GROWTH_BOUND = 24 * MiB
SERVER = Path(__file__).resolve().parent / "bomb_server.py"

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="needs /proc to measure memory (Linux)"
)


def bomb_frames(fragmented: bool) -> list[bytes]:
    """The frames of the bomb message, masked as a client's (RFC 6455 5.3)."""
    compressor = zlib.compressobj(wbits=-15)
    frames = []
    if fragmented:
        # 1 MiB that fills the budget exactly, then 199 MiB, 1 MiB per frame.
        first = compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_SYNC_FLUSH)
        frames.append(encode_frame(2, first, fin=False, rsv1=True, mask_key=os.urandom(4)))
        chunk = bytes(MiB)
        for i in range(199):
            data = compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
            last = i == 198
            frames.append(
                encode_frame(0, data[:-4] if last else data, fin=last, mask_key=os.urandom(4))
            )
    else:
        data = b"".join(compressor.compress(bytes(MiB)) for _ in range(200))
        data += compressor.flush(zlib.Z_SYNC_FLUSH)
        frames.append(encode_frame(2, data[:-4], fin=True, rsv1=True, mask_key=os.urandom(4)))
    return frames


async def send_bomb(port: int, frames: list[bytes]) -> int:
    """Handshake with permessage-deflate, send the frames, return the close code."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        assert b"permessage-deflate" in head
        for frame in frames:
            writer.write(frame)
        try:
            await writer.drain()
        except ConnectionError:
            pass  # the server may close before taking everything: that's the point
        while True:  # frames from the server until its CLOSE
            first, second = await reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await reader.readexactly(8))
            payload = await reader.readexactly(length)
            if first & 0x0F == 0x8:
                return int.from_bytes(payload[:2], "big")
    finally:
        writer.close()


@pytest.mark.parametrize("fragmented", [True, False], ids=["fragments", "one-frame"])
def test_decompression_bomb_closes_1009_with_bounded_memory(fragmented: bool) -> None:
    frames = bomb_frames(fragmented)
    assert sum(map(len, frames)) < MiB  # a few hundred KiB on the wire
    server = subprocess.Popen(
        [sys.executable, str(SERVER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        port = int(server.stdout.readline())

        def ask(ended: int) -> tuple[int, str]:
            """Peak RSS once ``ended`` connections ended, and the last one's close code."""
            assert server.stdin is not None and server.stdout is not None
            server.stdin.write(f"{ended}\n")
            server.stdin.flush()
            peak, code = server.stdout.readline().split()
            return int(peak), code

        async def run() -> int:
            # Warm up the server's paths with a small compressed message first.
            small = zlib.compressobj(wbits=-15)
            hello = small.compress(b"hello") + small.flush(zlib.Z_SYNC_FLUSH)
            close = encode_frame(8, b"\x03\xe8", mask_key=os.urandom(4))
            warmup = [encode_frame(1, hello[:-4], rsv1=True, mask_key=os.urandom(4)), close]
            assert await asyncio.wait_for(send_bomb(port, warmup), TIMEOUT) == 1000
            return await asyncio.wait_for(send_bomb(port, frames), TIMEOUT)

        baseline, _ = ask(0)
        code = asyncio.run(run())
        peak, seen = ask(2)  # the warm-up connection, then the bomb
        growth = peak - baseline
        print(
            f"\nbomb ({'fragmented' if fragmented else 'one frame'}): server peak RSS "
            f"{baseline / MiB:.1f} -> {peak / MiB:.1f} MiB (+{growth / MiB:.1f} MiB)"
        )
        assert code == 1009
        assert seen == "1009"  # the handler saw ConnectionClosed with the 1009 it sent
        assert growth < RSS_GROWTH_BOUND
    finally:
        server.kill()
        server.wait(TIMEOUT)
