"""docs/protocol-walkthrough.md stays true: every code name it gives exists.

The "Where" column names code as ``module.name[.attr]`` inside ``src/picows`` and
files as paths from the repository root; a rename that forgets the walkthrough fails
here.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WALKTHROUGH = ROOT / "docs" / "protocol-walkthrough.md"

# `_module.Name.attr`: a private module of picows, then attributes.
CODE_NAME = re.compile(r"`(_[a-z0-9]+(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`")
# `dir/file.py` or `dir/`: a path from the repository root.
PATH_NAME = re.compile(r"`((?:[a-z_]+/)+(?:[a-z_]+\.py)?)`")


def where_cells() -> list[str]:
    cells = []
    for line in WALKTHROUGH.read_text(encoding="utf-8").splitlines():
        columns = line.split(" | ")
        if line.startswith("| ") and len(columns) == 3 and not line.startswith("| ---"):
            cells.append(columns[2])
    assert len(cells) > 25, "the walkthrough table was not found"
    return cells[1:]  # the header row


def code_names() -> list[str]:
    return sorted({name for cell in where_cells() for name in CODE_NAME.findall(cell)})


def path_names() -> list[str]:
    return sorted({name for cell in where_cells() for name in PATH_NAME.findall(cell)})


@pytest.mark.parametrize("name", code_names())
def test_named_code_exists(name: str) -> None:
    module_name, *attributes = name.split(".")
    target: object = importlib.import_module(f"picows.{module_name}")
    for attribute in attributes:
        assert hasattr(target, attribute) or attribute in getattr(target, "__slots__", ()), (
            f"{name}: {target!r} has no {attribute!r}"
        )
        target = getattr(target, attribute, None)


@pytest.mark.parametrize("path", path_names())
def test_named_path_exists(path: str) -> None:
    candidates = [ROOT / path, ROOT / "src" / path, ROOT / "src" / "picows" / path]
    assert any(candidate.exists() for candidate in candidates), path


def test_every_row_names_code() -> None:
    # A row whose "Where" names nothing checkable would escape this test.
    for cell in where_cells():
        assert CODE_NAME.search(cell) or PATH_NAME.search(cell), cell
