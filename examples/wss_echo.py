"""Secure WebSocket (wss://): an echo server and client over TLS.

    python examples/wss_echo.py                          # needs `pip install trustme`
    python examples/wss_echo.py --cert server.pem --key server.key --cafile ca.pem

With trustme installed the example makes a throw-away CA and a certificate for
127.0.0.1; otherwise pass your own certificate (and the CA that signed it).
The server gets an ``ssl.SSLContext`` through ``ws_create_server(ssl=...)``, the
client through ``ws_connect(ssl_context=...)``; hostname checks stay on.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from typing import Optional

import picows
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest


def contexts_from_trustme() -> Optional[tuple[ssl.SSLContext, ssl.SSLContext]]:
    try:
        import trustme
    except ImportError:
        return None
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


def contexts_from_files(
    cert: str, key: Optional[str], cafile: Optional[str]
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    return server_ctx, client_ctx


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            transport.send(frame.msg_type, frame.get_payload_as_bytes())


class Client(WSListener):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.replies.put_nowait(frame.get_payload_as_bytes())


async def main(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
    def route(request: WSUpgradeRequest) -> WSListener:
        return Echo()

    server = await picows.ws_create_server(route, "127.0.0.1", 0, ssl=server_ctx)
    url = f"wss://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    transport, client = await picows.ws_connect(Client, url, ssl_context=client_ctx)
    assert isinstance(client, Client)
    print(f"connected to {url}, is_secure={transport.is_secure}")
    ssl_object = transport.underlying_transport.get_extra_info("ssl_object")
    print("TLS version:", ssl_object.version() if ssl_object is not None else None)
    transport.send(WSMsgType.TEXT, b"secret hello")
    print("echo:", await asyncio.wait_for(client.replies.get(), 5))
    transport.send_close(WSCloseCode.OK)
    await asyncio.wait_for(transport.wait_disconnected(), 5)
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert", help="PEM certificate chain for 127.0.0.1")
    parser.add_argument("--key", help="PEM private key (if not in --cert)")
    parser.add_argument("--cafile", help="PEM CA that signed --cert (client side)")
    args = parser.parse_args()
    if args.cert is not None:
        contexts = contexts_from_files(args.cert, args.key, args.cafile)
    else:
        found = contexts_from_trustme()
        if found is None:
            sys.exit("wss_echo.py: install trustme, or pass --cert/--key/--cafile")
        contexts = found
    asyncio.run(main(*contexts))
