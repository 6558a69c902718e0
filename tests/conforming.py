"""The conforming echo listeners of ``examples/``, importable from the tests.

``examples/conforming_echo_server.py`` and ``examples/conforming_echo_client.py`` are
the application the conformance, hostile-peer and load tests run: they are what a
careful user writes on top of picows.  :class:`Observed` adds the bookkeeping the
tests assert on (the transport, and how often each callback ran).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any, Optional

import picows

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
if str(EXAMPLES_DIR) not in sys.path:
    sys.path.insert(0, str(EXAMPLES_DIR))

from conforming_echo_client import ConformingEchoClient  # noqa: E402
from conforming_echo_server import (  # noqa: E402
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    ConformingEchoListener,
)

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "ConformingEchoClient",
    "ConformingEchoListener",
    "Observed",
    "ObservedClient",
    "ObservedServer",
]


class Observed:
    """Mixin: records the transport and counts ``on_ws_connected``/``on_ws_disconnected``."""

    def __init__(self, **options: Any) -> None:
        # Keyword-only, like the listeners': the classes are zero-argument factories.
        super().__init__(**options)
        self.transport: Optional[picows.WSTransport] = None
        self.connected_calls = 0
        self.disconnected_calls = 0
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self.transport = transport
        self.connected_calls += 1
        self.connected.set()
        super().on_ws_connected(transport)  # type: ignore[misc]

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        self.disconnected_calls += 1
        self.disconnected.set()
        super().on_ws_disconnected(transport)  # type: ignore[misc]

    async def wait_connected(self, timeout: float = 5) -> picows.WSTransport:
        await asyncio.wait_for(self.connected.wait(), timeout)
        assert self.transport is not None
        return self.transport

    async def wait_disconnected(self, timeout: float = 5) -> None:
        await asyncio.wait_for(self.disconnected.wait(), timeout)


class ObservedServer(Observed, ConformingEchoListener):
    """The example's server listener, observed."""


class ObservedClient(Observed, ConformingEchoClient):
    """The example's client listener, observed."""
