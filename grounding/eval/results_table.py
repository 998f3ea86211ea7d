"""One table of the final metrics of several training runs, for papers and notes.

Each work dir holds a ``metrics.json``; nested dicts (the QVHighlights layout) are flattened with
'/' (``full/MR-mAP/0.5``) so every number gets one column.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from grounding.errors import GroundingError

Scalar = float | int | str | bool | None


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, Scalar]:
    """``{"a": {"b": 1}} -> {"a/b": 1}``; lists are dropped (they do not fit in a cell)."""
    flat: dict[str, Scalar] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}/"))
        elif not isinstance(value, list):
            flat[name] = value
    return flat


def load_metrics(work_dir: str | Path) -> dict[str, Scalar]:
    """The flattened ``metrics.json`` of one work dir."""
    path = Path(work_dir) / "metrics.json"
    if not path.is_file():
        raise GroundingError(f"{path} does not exist; is {work_dir} a finished training run's work dir?")
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise GroundingError(
            f"{path}: not valid JSON ({err.msg}); rerun the evaluation that writes it"
        ) from err
    if not isinstance(metrics, dict):
        raise GroundingError(f"{path}: expected a JSON object of metric name -> number")
    return flatten(metrics)


def collect_results(work_dirs: Sequence[str | Path], metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows: work dirs (as given); columns: ``metrics`` in that order, else every metric seen.

    A metric missing from some runs is left empty for them; one missing from every run is an error,
    since it is almost always a typo.
    """
    rows = {str(d): load_metrics(d) for d in work_dirs}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "work_dir"
    if metrics:
        unknown = [m for m in metrics if m not in table.columns]
        if unknown:
            raise GroundingError(
                f"metric(s) {', '.join(unknown)} are in none of the metrics.json files; "
                f"available: {', '.join(table.columns)}"
            )
        table = table[list(metrics)]
    return table


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub Markdown table (floats to 2 decimals, missing as '-'); no extra dependency."""
    header = [table.index.name or ""] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(table.columns)) + "|"]
    for name, row in table.iterrows():
        lines.append("| " + " | ".join([str(name)] + [_cell(v) for v in row.tolist()]) + " |")
    return "\n".join(lines)


def write_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write ``.md`` as Markdown or ``.csv`` as CSV, chosen by the file name."""
    path = Path(path)
    if path.suffix in (".md", ".csv"):
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".md":
        path.write_text(to_markdown(table) + "\n")
    elif path.suffix == ".csv":
        table.to_csv(path)
    else:
        raise GroundingError(f"--out {path}: use a .md or .csv file name")
