"""Every tool is a thin wrapper over grounding/cli and has a console script."""

from __future__ import annotations

import configparser
import importlib

from tests.conftest import REPO


def test_every_tool_has_a_console_script_and_a_cli_module():
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    scripts = dict(line.split(" = ") for line in parser["options.entry_points"]["console_scripts"].strip().splitlines())
    targets = {target.split(":")[0] for target in scripts.values()}
    tools = sorted(p.stem for p in (REPO / "tools").glob("*.py"))
    assert targets == {f"grounding.cli.{name}" for name in tools}
    for name in tools:
        text = (REPO / "tools" / f"{name}.py").read_text()
        assert f"from grounding.cli.{name} import main" in text and "sys.path" not in text
        assert callable(importlib.import_module(f"grounding.cli.{name}").main)
    readme = (REPO / "README.md").read_text()
    assert all(f"`{script}`" in readme for script in scripts)
