from __future__ import annotations

import picows
from helpers import CollectingListener


async def test_echo_roundtrip(echo_server: str) -> None:
    transport, client = await picows.ws_connect(CollectingListener, echo_server)
    assert isinstance(client, CollectingListener)
    transport.send(picows.WSMsgType.TEXT, "hi")
    assert await client.next() == (picows.WSMsgType.TEXT, b"hi", 1)
    transport.send_close(picows.WSCloseCode.OK)
    await transport.wait_disconnected()
    assert client.disconnected
