"""The package's floors (docs/engine.md): every import goes down or sideways within a floor, never up, and
no two folders import each other. Read from the source with ``ast`` (imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "grounding"

# lowest first; a module may import its own floor and the floors below it
FLOORS = [
    {"errors", "atomic", "config", "overrides", "registry", "device", "cache", "schedule", "timing"},
    {"data", "backbones"},
    {"extract"},
    {"models", "eval"},
    {"synthetic"},
    {"compat"},
    {"losses"},
    {"inference"},
    {"engine"},
    {"api", "search", "studies", "bench"},
    {"cli", "__init__"},
]
FLOOR = {name: level for level, names in enumerate(FLOORS) for name in names}


def folder_of(path: Path) -> str:
    """``grounding/data/x.py`` -> ``data``; a top-level module ``grounding/atomic.py`` -> ``atomic``."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_folders(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        found |= {n.split(".")[1] for n in names if n.startswith("grounding.") and len(n.split(".")) > 1}
    return found


def imports() -> dict[tuple[str, str], list[str]]:
    """(from folder, to folder) -> the files that make that import."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = folder_of(path)
        for target in imported_folders(path) - {source}:
            edges.setdefault((source, target), []).append(str(path.relative_to(PACKAGE)))
    return edges


def test_imported_folders_reads_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom grounding.data.batch import Batch\n\ndef f():\n    import grounding.engine.step\n")
    assert imported_folders(module) == {"data", "engine"}


def test_every_folder_has_a_floor():
    folders = {folder_of(p) for p in PACKAGE.rglob("*.py")} | {t for _, t in imports()}
    assert folders <= set(FLOOR), f"give {sorted(folders - set(FLOOR))} a floor here and in docs/engine.md"


def test_nothing_imports_upward():
    upward = {f"{s} -> {t}": files for (s, t), files in imports().items() if FLOOR[t] > FLOOR[s]}
    assert not upward


def test_no_two_folders_import_each_other():
    edges = imports()
    loops = sorted(f"{s} <-> {t}" for s, t in edges if (t, s) in edges and s < t)
    assert not loops
