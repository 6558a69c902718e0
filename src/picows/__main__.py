"""``python -m picows``: an echo server, an interactive client, a benchmark, and info."""

from __future__ import annotations

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
