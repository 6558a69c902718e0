"""``picows.url``: upstream picows' module path for URL parsing (RFC 6455 section 3).

The objects are the ones of :mod:`picows._url` (identity, not copies).
"""

from __future__ import annotations

from ._exceptions import WSInvalidURL
from ._url import WSParsedURL, parse_url

__all__ = ["WSInvalidURL", "WSParsedURL", "parse_url"]
