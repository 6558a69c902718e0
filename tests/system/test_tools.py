"""The tools the tests need (tools.py): here or not, and what a missing one does.

``test_tool_is_here`` is the one list of presence checks: outside CI it skips a missing
tool naming its package, and in CI (where ``.ci/run`` installs everything) it fails.
"""

from __future__ import annotations

import os
import subprocess

import pytest

import tools

#: A flag that makes each executable print its version and exit 0, proving it runs.
VERSION_FLAGS = {
    "tinyproxy": "-v",
    "danted": "-v",
    "nginx": "-v",
    "redis-server": "--version",
    "node": "--version",
    "chromium": "--version",
}


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.needs(name)) for name in tools.TOOLS]
)
def test_tool_is_here(name: str) -> None:
    path = tools.TOOLS[name].find()
    assert path is not None and os.path.exists(path), path
    if name in VERSION_FLAGS:
        flag = VERSION_FLAGS[name]
        result = subprocess.run(
            [tools.executable(name), flag], capture_output=True, timeout=60, check=False
        )
        assert result.returncode == 0, result


@pytest.fixture
def absent_tool(monkeypatch: pytest.MonkeyPatch) -> str:
    """A tool that is never installed, in the registry for the test's duration."""
    tool = tools.Tool("absent-tool", lambda: None, "apt install absent-package")
    monkeypatch.setitem(tools.TOOLS, tool.name, tool)
    return tool.name


def test_a_missing_tool_skips_naming_its_package(
    absent_tool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as info:
        tools.need(absent_tool)
    reason = str(info.value)
    assert reason == "not installed: absent-tool (apt install absent-package)"
    assert tools.parse_skip_reason(reason) == [absent_tool]
    assert tools.missing(absent_tool) == {absent_tool: "apt install absent-package"}


@pytest.mark.parametrize("value", ["true", "1", "yes", "TRUE"])
def test_a_missing_tool_fails_in_ci(
    absent_tool: str, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"absent-tool \(apt install absent-package\)"):
        tools.executable(absent_tool)


def test_a_tool_this_interpreter_cannot_have_skips_even_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tool = tools.Tool("no-wheels", lambda: None, "pip install x", lambda: "no wheels here")
    monkeypatch.setitem(tools.TOOLS, tool.name, tool)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.skip.Exception, match=r"^no wheels here$"):
        tools.need(tool.name)
    assert tools.missing(tool.name) == {}


def test_other_skip_reasons_name_no_tool() -> None:
    assert tools.parse_skip_reason("Skipped: TLS in TLS works on 3.11+") == []
