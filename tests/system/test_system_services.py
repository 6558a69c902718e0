"""CI must have every real service the system tests use: there, none may be skipped."""

from __future__ import annotations

import pytest
from services import NEEDS, in_ci, missing


def test_ci_has_every_service() -> None:
    if not in_ci():
        pytest.skip("only enforced when CI is set")
    absent = missing(*NEEDS)
    assert absent == [], "; ".join(f"{name}: {NEEDS[name]}" for name in absent)
