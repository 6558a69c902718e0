"""A picows.websockets echo server in its own process, for the decompression-bomb test.

Prints its port, then answers each line "N" on stdin, once N connections have
ended, with its peak resident memory (VmHWM, bytes) and the close code the Nth
connection's handler saw it send (1000 for a normal end; "-" for N = 0).
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
    closed: list[int] = []
    ended = asyncio.Condition()

    async def handler(connection: Any) -> None:
        code = 1000
        try:
            async for message in connection:
                await connection.send(message)
        except websockets.ConnectionClosed as exc:
            code = exc.sent.code if exc.sent is not None else 0
        async with ended:
            closed.append(int(code))
            ended.notify_all()

    async with websockets.serve(handler, "127.0.0.1", 0, max_size=2**20) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            count = int(line)
            async with ended:
                await asyncio.wait_for(ended.wait_for(lambda n=count: len(closed) >= n), 30)
            print(peak_rss(), closed[count - 1] if count else "-", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
