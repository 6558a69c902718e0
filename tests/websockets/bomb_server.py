"""A picows.websockets echo server in its own process, for the decompression-bomb test.

Prints its port, then answers each line on stdin with its peak resident memory
(VmHWM, bytes) and, once its handler saw the connection close, the close code.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import picows.websockets as websockets


def peak_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


async def main() -> None:
    closed: list[Any] = []

    async def handler(connection: Any) -> None:
        try:
            async for message in connection:
                await connection.send(message)
        except websockets.ConnectionClosed as exc:
            closed.append(exc.sent.code if exc.sent is not None else 0)

    async with websockets.serve(handler, "127.0.0.1", 0, max_size=2**20) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, sys.stdin.readline):
            print(peak_rss(), int(closed[-1]) if closed else None, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
