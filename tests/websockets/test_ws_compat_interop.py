"""picows.websockets against the real ``websockets`` library, both directions, over
a matrix of permessage-deflate parameters (RFC 7692 7.1).

For each case the two sides must agree on the parameters (the same
``Sec-WebSocket-Extensions`` answer a websockets server gives for that offer and
configuration), and messages must go both ways intact: text, binary, repeated
(so context takeover matters), fragmented, and empty.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Optional

import pytest
from websockets.asyncio.client import connect as upstream_connect
from websockets.asyncio.server import serve as upstream_serve
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory as UpstreamClientFactory,
)
from websockets.extensions.permessage_deflate import (
    ServerPerMessageDeflateFactory as UpstreamServerFactory,
)

import picows.websockets as websockets
import websockets as upstream
from picows.websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)

TIMEOUT = 10

#: (client factory kwargs, server factory kwargs); None means compression off.
MATRIX: list[tuple[Optional[dict[str, Any]], Optional[dict[str, Any]]]] = [
    ({}, {}),
    ({}, {"server_max_window_bits": 12, "client_max_window_bits": 12}),  # websockets' default
    ({"server_no_context_takeover": True}, {}),
    ({"client_no_context_takeover": True}, {}),
    ({}, {"server_no_context_takeover": True, "client_no_context_takeover": True}),
    ({"server_max_window_bits": 10}, {}),
    ({"server_max_window_bits": 11}, {"server_max_window_bits": 9}),
    ({"client_max_window_bits": 9}, {}),
    ({"client_max_window_bits": True}, {"client_max_window_bits": 10}),
    ({"client_max_window_bits": None}, {"client_max_window_bits": 10}),
    (
        {"server_no_context_takeover": True, "client_max_window_bits": 12},
        {"server_max_window_bits": 10, "client_no_context_takeover": True},
    ),
    (None, {}),
    ({}, None),
]
IDS = [f"{c}-{s}".replace(" ", "") for c, s in MATRIX]


def messages() -> list[Any]:
    text = "the same words again " * 200
    return [text, text, os.urandom(3000), b"", "", "é" * 1000, b"\x00" * 50_000]


async def echo(connection: Any) -> None:
    async for message in connection:
        await connection.send(message)


async def exercise(connection: Any) -> None:
    for message in messages():
        await connection.send(message)
        assert await asyncio.wait_for(connection.recv(), TIMEOUT) == message
    fragments = [b"a" * 300, b"b" * 300, b"c" * 300]
    await connection.send(fragments)
    assert await asyncio.wait_for(connection.recv(), TIMEOUT) == b"".join(fragments)


@asynccontextmanager
async def upstream_server(config: Optional[dict[str, Any]]) -> AsyncIterator[str]:
    extensions = None if config is None else [UpstreamServerFactory(**config)]
    async with upstream_serve(echo, "127.0.0.1", 0, extensions=extensions, compression=None) as s:
        yield f"ws://127.0.0.1:{s.sockets[0].getsockname()[1]}/"


@asynccontextmanager
async def our_server(config: Optional[dict[str, Any]]) -> AsyncIterator[str]:
    extensions = None if config is None else [ServerPerMessageDeflateFactory(**config)]
    async with websockets.serve(echo, "127.0.0.1", 0, extensions=extensions, compression=None) as s:
        yield f"ws://127.0.0.1:{s.sockets[0].getsockname()[1]}/"


def extension_header(connection: Any) -> Optional[str]:
    headers = connection.response.headers
    return headers.get("Sec-WebSocket-Extensions")


@pytest.mark.parametrize(("client", "server"), MATRIX, ids=IDS)
async def test_our_client_upstream_server(
    client: Optional[dict[str, Any]], server: Optional[dict[str, Any]]
) -> None:
    extensions = None if client is None else [ClientPerMessageDeflateFactory(**client)]
    async with upstream_server(server) as url:
        async with websockets.connect(url, extensions=extensions, compression=None) as ours:
            await exercise(ours)
        # The reference: websockets' own client with the same offer.
        theirs_ext = None if client is None else [UpstreamClientFactory(**client)]
        async with upstream_connect(url, extensions=theirs_ext, compression=None) as theirs:
            assert extension_header(ours) == extension_header(theirs)
            assert (ours._deflate is None) == (not theirs.protocol.extensions)
            if ours._deflate is not None:
                assert_same_parameters(ours._deflate, theirs.protocol.extensions[0])


@pytest.mark.parametrize(("client", "server"), MATRIX, ids=IDS)
async def test_upstream_client_our_server(
    client: Optional[dict[str, Any]], server: Optional[dict[str, Any]]
) -> None:
    extensions = None if client is None else [UpstreamClientFactory(**client)]
    async with our_server(server) as url:
        async with upstream_connect(url, extensions=extensions, compression=None) as theirs:
            await exercise(theirs)
            ours_answer = extension_header(theirs)
    # Our server answers every offer as a websockets server configured alike does.
    async with upstream_server(server) as url:
        async with upstream_connect(url, extensions=extensions, compression=None) as reference:
            assert ours_answer == extension_header(reference)


def assert_same_parameters(ours: Any, theirs: Any) -> None:
    for name in (
        "remote_no_context_takeover",
        "local_no_context_takeover",
        "remote_max_window_bits",
        "local_max_window_bits",
    ):
        assert getattr(ours, name) == getattr(theirs, name), name


async def test_defaults_interoperate_both_ways() -> None:
    """compression="deflate" on both sides, as applications leave it."""
    async with websockets.serve(echo, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        async with upstream_connect(url) as theirs:
            assert "permessage-deflate" in extension_header(theirs)
            await exercise(theirs)
    async with upstream_serve(echo, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        async with websockets.connect(url) as ours:
            assert ours._deflate is not None
            await exercise(ours)


async def test_close_codes_and_reasons_both_ways() -> None:
    async def close_with(connection: Any) -> None:
        await connection.close(4001, "bye")

    async with upstream_serve(close_with, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        async with websockets.connect(url) as ours:
            with pytest.raises(websockets.ConnectionClosedError) as info:
                await asyncio.wait_for(ours.recv(), TIMEOUT)
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "bye")
            assert info.value.rcvd_then_sent is True
    async with websockets.serve(close_with, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        async with upstream_connect(url) as theirs:
            with pytest.raises(upstream.ConnectionClosedError) as info2:
                await asyncio.wait_for(theirs.recv(), TIMEOUT)
            assert (info2.value.rcvd.code, info2.value.rcvd.reason) == (4001, "bye")
