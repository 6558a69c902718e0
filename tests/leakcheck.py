"""Leak checks for tests over real sockets: connections picows serves, and tasks.

:class:`Guard` wraps ``WSProtocol.connection_made``/``connection_lost`` to keep its own
table of the TCP connections picows is serving (client or server side), and remembers
the tasks alive when the test began.  :meth:`Guard.assert_clean` then proves that every
connection was closed and no task was left behind.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

import pytest

from picows._protocol import WSProtocol

__all__ = ["Guard"]

TIMEOUT = 5.0


class Guard:
    """Tracks every connection picows serves, and the tasks alive when the test began."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.live: set[WSProtocol] = set()
        self.opened = 0
        self._all_closed: Optional[asyncio.Future[None]] = None
        self._tasks_before = asyncio.all_tasks()
        made, lost = WSProtocol.connection_made, WSProtocol.connection_lost

        def connection_made(protocol: WSProtocol, transport: Any) -> None:
            self.live.add(protocol)
            self.opened += 1
            made(protocol, transport)

        def connection_lost(protocol: WSProtocol, exc: Optional[BaseException]) -> None:
            try:
                lost(protocol, exc)
            finally:
                self.live.discard(protocol)
                waiter = self._all_closed
                if not self.live and waiter is not None and not waiter.done():
                    waiter.set_result(None)

        monkeypatch.setattr(WSProtocol, "connection_made", connection_made)
        monkeypatch.setattr(WSProtocol, "connection_lost", connection_lost)

    async def wait_all_closed(self, timeout: float = TIMEOUT) -> None:
        """Until picows has no open connection (connection_lost ran for each)."""
        if self.live:
            self._all_closed = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._all_closed, timeout)
            except asyncio.TimeoutError:
                raise AssertionError(f"{len(self.live)} connection(s) still open") from None

    async def assert_clean(self, timeout: float = TIMEOUT) -> None:
        """No connection open, and every task started during the test has finished."""
        assert self.opened > 0, "picows served no connection: the bookkeeping is not active"
        await self.wait_all_closed(timeout)
        leftover = asyncio.all_tasks() - self._tasks_before - {asyncio.current_task()}
        if leftover:
            _, pending = await asyncio.wait(leftover, timeout=timeout)
            assert not pending, f"tasks left running: {pending}"
