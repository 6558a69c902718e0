"""Checks that the installed picows is a pure install, as a machine without a C
compiler gets: a ``py3-none-any`` wheel with no compiled file, ``_picows_accel`` that
does not import (its Python files ship, its C module does not), no cffi requirement,
and the pure backend active.  tox's ``pure`` leg runs it before the tests.

    python tests/check_pure_install.py
"""

from __future__ import annotations

import sys
from importlib.metadata import distribution


def main() -> int:
    dist = distribution("picows")
    wheel = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")]
    requires = [req for req in dist.requires or [] if "extra ==" not in req]
    import picows

    problems = []
    if tags != ["py3-none-any"]:
        problems.append(f"wheel tags {tags}, expected ['py3-none-any']")
    compiled = [str(f) for f in dist.files or [] if f.suffix in (".so", ".pyd")]
    if compiled:
        problems.append(f"compiled files: {compiled}")
    try:
        import _picows_accel  # noqa: F401
    except ImportError:
        pass
    else:
        problems.append("_picows_accel imports")
    if any(req.split(";")[0].strip().startswith("cffi") for req in requires):
        problems.append(f"cffi is required: {requires}")
    if picows.BACKEND != "python":
        problems.append(f"backend {picows.BACKEND}")
    where = dist.locate_file("picows")
    if problems:
        print(f"not a pure install ({where}): " + "; ".join(problems), file=sys.stderr)
        return 1
    print(f"pure install: tags {tags}, requires {requires}, backend {picows.BACKEND} ({where})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
