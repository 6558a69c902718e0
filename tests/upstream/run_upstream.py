"""Run upstream picows' own test suite against the installed picows (this package).

The oracle of our API promise: code written for upstream picows 2.3.1 runs unchanged.
This script downloads upstream's published sdist by name and version, checks its
sha256, extracts only its ``tests/`` folder into a scratch directory and runs pytest
there.  Upstream's source is never extracted, so ``import picows`` can only find the
package installed in this interpreter; ``upstream_plugin.py`` (beside this file)
checks that, deselects the one test that needs the internet, marks the expected
failures (each with the RFC section that makes us differ) and prints the counts.

    python tests/upstream/run_upstream.py                 # the whole suite
    python tests/upstream/run_upstream.py -- -k autoping  # extra pytest arguments
    python tests/upstream/run_upstream.py -- tests/test_basics.py   # one file
    python tests/upstream/run_upstream.py --backend python -- -n 4  # pure, 4 workers

``--backend python`` runs it with ``PICOWS_NO_EXTENSIONS=1`` and ``--backend cffi``
with ``PICOWS_REQUIRE_EXTENSIONS=1`` (a missing accelerator fails); by default the
environment decides.  Its tests use free ports and no shared state, so they run with
pytest-xdist (``-n``); most of their time is spent waiting on timers, so more workers
than cores still helps.

The sdist is cached in ``$PICOWS_UPSTREAM_CACHE`` (default ``~/.cache/picows-upstream``);
the test dependencies are the ``upstream`` extra of pyproject.toml.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

UPSTREAM_VERSION = "2.3.1"
SDIST = f"picows-{UPSTREAM_VERSION}.tar.gz"
SDIST_SHA256 = "d850ef8d999691e221ccc644a3708771d3a14d45822bca7723223054b6022198"
HERE = Path(__file__).resolve().parent


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_sdist(cache: Path) -> Path:
    """The verified sdist, downloaded from the package index unless already cached."""
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / SDIST
    if not sdist.exists() or _sha256(sdist) != SDIST_SHA256:
        sdist.unlink(missing_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                # The sdist of picows only: ":all:" would also build its build
                # requirements (Cython) from source, for minutes, to read its metadata.
                "--no-binary",
                "picows",
                f"picows=={UPSTREAM_VERSION}",
                "--dest",
                str(cache),
            ],
            check=True,
        )
    digest = _sha256(sdist)
    if digest != SDIST_SHA256:
        sdist.unlink()
        raise SystemExit(f"{SDIST}: sha256 {digest} is not the published {SDIST_SHA256}")
    return sdist


def extract_tests(sdist: Path, scratch: Path) -> Path:
    """Extracts ``picows-<version>/tests/`` (and nothing else) as ``scratch/tests``."""
    prefix = f"picows-{UPSTREAM_VERSION}/tests/"
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            if not member.name.startswith(prefix) or not (member.isfile() or member.isdir()):
                continue
            relative = Path(member.name[len(prefix) :])
            if ".." in relative.parts or relative.is_absolute():
                raise SystemExit(f"unsafe path in {SDIST}: {member.name}")
            target = scratch / "tests" / relative
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())
    if not (scratch / "tests" / "conftest.py").exists():
        raise SystemExit(f"{SDIST} has no tests/conftest.py")
    return scratch / "tests"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(
            os.environ.get("PICOWS_UPSTREAM_CACHE", Path.home() / ".cache" / "picows-upstream")
        ),
        help="where the sdist is kept between runs",
    )
    parser.add_argument(
        "--backend",
        choices=["python", "cffi"],
        help="force picows' backend (default: whatever the environment selects)",
    )
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    sdist = fetch_sdist(args.cache)
    with tempfile.TemporaryDirectory(prefix="picows-upstream-") as tmp:
        scratch = Path(tmp)
        extract_tests(sdist, scratch)
        env = dict(os.environ)
        # Only our plugin's directory is added: upstream's package is not in scratch.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
        env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
        if args.backend is not None:
            env.pop("PICOWS_NO_EXTENSIONS", None)
            env.pop("PICOWS_REQUIRE_EXTENSIONS", None)
            flag = (
                "PICOWS_NO_EXTENSIONS" if args.backend == "python" else "PICOWS_REQUIRE_EXTENSIONS"
            )
            env[flag] = "1"
        # The whole suite, unless the arguments name test files or directories.
        targets = [] if any(a.startswith("tests") for a in args.pytest_args) else ["tests"]
        command = [
            sys.executable,
            "-m",
            "pytest",
            *targets,
            "-p",
            "upstream_plugin",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(scratch),
            "-o",
            "asyncio_mode=auto",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "-q",
            # A hung test fails instead of holding the run (pytest-timeout, if present).
            *(["--timeout=120"] if importlib.util.find_spec("pytest_timeout") else []),
            *args.pytest_args,
        ]
        return subprocess.run(command, cwd=scratch, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
