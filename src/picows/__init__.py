"""picows: an asyncio WebSocket client and server (RFC 6455) in readable pure Python.

The public API is upstream picows 2.x's: ``ws_connect``, ``ws_create_server``,
``WSListener``, ``WSTransport``, ``WSFrame`` and friends.  The private modules
behind it are small and readable beside RFC 6455:

* ``_url``        -- ws:// and wss:// URLs (RFC 6455 3)
* ``_http11``     -- HTTP/1.1 objects and syntax (RFC 9110, 9112)
* ``_handshake``  -- the opening handshake (RFC 6455 4)
* ``_frames``     -- frame parsing and encoding (RFC 6455 5)
* ``_header``     -- frame header decoding and its errors (RFC 6455 5.2, 5.5)
* ``_mask``       -- masking in pure Python (RFC 6455 5.3)
* ``_close``      -- the closing handshake (RFC 6455 5.5.1, 7)
* ``_backend``    -- pure Python or the cffi accelerator, chosen at import
* ``_proxy``      -- HTTP CONNECT through a proxy (RFC 9110 9.3.6)
* ``_connect``    -- opening the connection: direct, socket_factory, proxies, aiofastnet
* ``_protocol``, ``_transport``, ``_listener``, ``_api`` -- the asyncio glue

Upstream's module paths are kept as thin public modules over the private ones:
``picows.picows``, ``picows.url``, ``picows.api``, ``picows.common``, ``picows.proxy``,
``picows.types`` and ``picows.version``.

``BACKEND`` tells which masking implementation is active: ``"cffi"`` or
``"python"``.  Set ``PICOWS_NO_EXTENSIONS=1`` to force pure Python.
"""

from __future__ import annotations

# Upstream's public module paths (picows.picows, picows.url, ...), loaded as upstream's
# __init__ loads them, so that ``import picows; picows.url.parse_url(...)`` works too.
from . import api, common, picows, proxy, types, url, version  # noqa: F401
from ._api import (
    WSListenerFactory,
    WSLoggerLike,
    WSServerListenerFactory,
    WSSocketFactory,
    ws_connect,
    ws_create_server,
)
from ._backend import BACKEND
from ._close import WSCloseHandshake, WSCloseInfo
from ._exceptions import (
    WSError,
    WSHandshakeError,
    WSInvalidHeaderError,
    WSInvalidMessageError,
    WSInvalidStatusError,
    WSInvalidUpgradeError,
    WSInvalidURL,
    WSProtocolError,
    WSProxyError,
)
from ._frames import WSFrame
from ._http11 import WSUpgradeRequest, WSUpgradeResponse, WSUpgradeResponseWithListener
from ._listener import WSListener
from ._transport import WSTransport
from ._types import (
    PICOWS_DEBUG_LL,
    WSAutoPingStrategy,
    WSBuffer,
    WSCloseCode,
    WSHeadersLike,
    WSHost,
    WSMsgType,
    WSPort,
)
from ._url import WSParsedURL, parse_url
from .version import __author__ as __author__
from .version import __version__ as __version__

__all__ = [
    "BACKEND",
    "PICOWS_DEBUG_LL",
    "WSAutoPingStrategy",
    "WSBuffer",
    "WSCloseCode",
    "WSCloseHandshake",
    "WSCloseInfo",
    "WSError",
    "WSFrame",
    "WSHandshakeError",
    "WSHeadersLike",
    "WSHost",
    "WSInvalidHeaderError",
    "WSInvalidMessageError",
    "WSInvalidStatusError",
    "WSInvalidURL",
    "WSInvalidUpgradeError",
    "WSListener",
    "WSListenerFactory",
    "WSLoggerLike",
    "WSMsgType",
    "WSParsedURL",
    "WSPort",
    "WSProtocolError",
    "WSProxyError",
    "WSServerListenerFactory",
    "WSSocketFactory",
    "WSTransport",
    "WSUpgradeRequest",
    "WSUpgradeResponse",
    "WSUpgradeResponseWithListener",
    "parse_url",
    "ws_connect",
    "ws_create_server",
]
