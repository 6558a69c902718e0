"""docs/api.md is generated from the docstrings; it must match the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.skipif(
    sys.implementation.name != "cpython" or not (3, 10) <= sys.version_info < (3, 14),
    reason="typing reprs in the reference differ on PyPy, CPython 3.9 (NewType) and 3.14+",
)
def test_api_reference_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(DOCS / "gen_api.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr + "\nrun: python docs/gen_api.py"


def test_guides_exist() -> None:
    for name in ("protocol-walkthrough.md", "migration.md", "api.md", "deployment.md"):
        assert (DOCS / name).stat().st_size > 0, name
