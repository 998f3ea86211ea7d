"""grounding.eval.results_table and tools/collect_results.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from grounding.errors import GroundingError
from grounding.eval.results_table import collect_results, flatten, to_markdown

REPO = Path(__file__).resolve().parents[1]


def work_dir(root: Path, name: str, metrics: dict) -> Path:
    d = root / name
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps(metrics))
    return d


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    return [
        work_dir(tmp_path, "base", {"R1@0.5": 50.123, "R1@0.7": 30.0, "num_queries": 3720}),
        work_dir(
            tmp_path, "qvh", {"brief": {"MR-full-mAP": 32.2}, "full": {"MR-R1": {"0.5": 53.94}}, "x": [1]}
        ),
    ]


def test_flatten_nested_with_slashes():
    assert flatten({"a": 1, "b": {"c": 2, "d": {"e": 3}}, "l": [1, 2]}) == {"a": 1, "b/c": 2, "b/d/e": 3}


def test_table_has_a_row_per_run_and_a_column_per_metric(runs):
    table = collect_results(runs)
    assert list(table.index) == [str(r) for r in runs]
    assert list(table.columns) == ["R1@0.5", "R1@0.7", "num_queries", "brief/MR-full-mAP", "full/MR-R1/0.5"]
    assert table.loc[str(runs[1]), "full/MR-R1/0.5"] == 53.94 and pd.isna(table.loc[str(runs[1]), "R1@0.5"])


def test_metric_selection_keeps_order_and_rejects_typos(runs):
    table = collect_results(runs, ["R1@0.7", "brief/MR-full-mAP"])
    assert list(table.columns) == ["R1@0.7", "brief/MR-full-mAP"]
    with pytest.raises(GroundingError, match="R5@0.5"):
        collect_results(runs, ["R5@0.5"])


def test_missing_metrics_json_names_the_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(GroundingError, match=r"empty/metrics\.json does not exist"):
        collect_results([tmp_path / "empty"])


def test_markdown_rounds_and_marks_missing(runs):
    lines = to_markdown(collect_results(runs, ["R1@0.5", "brief/MR-full-mAP"])).splitlines()
    assert lines[0] == "| work_dir | R1@0.5 | brief/MR-full-mAP |"
    assert lines[2] == f"| {runs[0]} | 50.12 | - |" and lines[3] == f"| {runs[1]} | - | 32.20 |"


@pytest.mark.slow
def test_tool_prints_markdown_or_writes_csv(runs, tmp_path):
    cmd = [sys.executable, str(REPO / "tools" / "collect_results.py"), "--work-dirs", *map(str, runs)]
    out = subprocess.run([*cmd, "--metrics", "R1@0.5"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[2] == f"| {runs[0]} | 50.12 |"
    csv = tmp_path / "t.csv"
    out = subprocess.run([*cmd, "--out", str(csv)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert pd.read_csv(csv, index_col=0).loc[str(runs[0]), "num_queries"] == 3720
    bad = subprocess.run(
        [*cmd, "--out", str(tmp_path / "t.xlsx")], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and "use a .md or .csv" in bad.stderr
