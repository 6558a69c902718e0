"""``picows.proxy``: upstream picows' module path for connecting through proxies.

The objects are the ones of :mod:`picows._connect` and :mod:`picows._proxy` (identity,
not copies): the CONNECT protocol ``HTTPProxyConnectProtocol`` and its answer limit.
"""

from __future__ import annotations

from ._api import WSSocketFactory
from ._connect import HTTPProxyConnectProtocol
from ._proxy import MAX_CONNECT_RESPONSE as _MAX_PROXY_RESPONSE_SIZE

__all__ = ["_MAX_PROXY_RESPONSE_SIZE", "HTTPProxyConnectProtocol", "WSSocketFactory"]
