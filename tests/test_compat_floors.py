"""compat/ holds algorithms and metrics only: it sits below the losses and imports nothing from the
floors that use it, and nothing below the studies imports them."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "grounding"
ABOVE_COMPAT = ("grounding.losses", "grounding.inference", "grounding.engine", "grounding.search", "grounding.api",
                "grounding.studies", "grounding.bench", "grounding.cli")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_imported_modules_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os\n\ndef f():\n    from grounding.engine.step import TrainStep\n")
    assert imported_modules(source) == {"os", "grounding.engine.step"}


def test_compat_imports_no_floor_above_it():
    found = {f"{path.name}: {name}" for path in (PACKAGE / "compat").glob("*.py") for name in imported_modules(path)
             if name.startswith(ABOVE_COMPAT)}
    assert not found


def test_only_the_command_line_imports_the_studies():
    found = {f"{path.relative_to(PACKAGE)}: {name}" for path in PACKAGE.rglob("*.py")
             if path.parent.name not in ("studies", "cli") for name in imported_modules(path)
             if name.startswith("grounding.studies")}
    assert not found
