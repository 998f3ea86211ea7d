"""Evaluate a predictions file against a ground-truth file, choosing the metric set by dataset.

QVHighlights (and any ground truth with several windows per query or saliency scores) gets the
official QVHighlights metrics; the single-window benchmarks get R@{1,5} at IoU {0.1,0.3,0.5,0.7} and
mIoU. Both results carry ``num_queries`` and ``num_missing`` (queries without a prediction, scored as
misses) so that a partial predictions file cannot pass unnoticed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grounding.data.records import MomentRecord, read_native_jsonl
from grounding.errors import GroundingError
from grounding.eval.metrics import evaluate_single_window
from grounding.eval.predictions import read_predictions
from grounding.eval.qvhighlights import evaluate_qvhighlights

MULTI_WINDOW_DATASETS = ("qvhighlights",)
SINGLE_WINDOW_DATASETS = ("activitynet", "charades_sta", "tacos")


def is_multi_window(records: list[MomentRecord]) -> bool:
    """True when the ground truth looks like QVHighlights: saliency scores or several windows."""
    return any("saliency_scores" in r.extra or len(r.windows) > 1 for r in records)


def evaluate(pred_path: str | Path, gt_path: str | Path, dataset: str | None = None) -> dict[str, Any]:
    """Metrics for ``pred_path`` against the native JSONL ``gt_path``; ``dataset=None`` infers the set."""
    if dataset is not None and dataset not in MULTI_WINDOW_DATASETS + SINGLE_WINDOW_DATASETS:
        raise GroundingError(
            f"unknown dataset '{dataset}' for evaluation; choose one of "
            f"{', '.join(sorted(MULTI_WINDOW_DATASETS + SINGLE_WINDOW_DATASETS))} or leave it out"
        )
    gt_path = Path(gt_path)
    if not gt_path.is_file():
        raise GroundingError(f"ground-truth file {gt_path} does not exist; check the --ground-truth path")
    ground_truth = read_native_jsonl(gt_path)
    predictions = read_predictions(pred_path)
    multi = dataset in MULTI_WINDOW_DATASETS if dataset else is_multi_window(ground_truth)
    evaluate_fn = evaluate_qvhighlights if multi else evaluate_single_window
    return evaluate_fn(predictions, ground_truth, pred_source=str(pred_path), gt_source=str(gt_path))


def format_summary(metrics: dict[str, Any]) -> str:
    """A few human-readable lines: the headline numbers and how many queries had no prediction."""
    headline = metrics.get("brief", metrics)
    lines = [
        f"{metrics['num_queries']} queries, {metrics['num_missing']} without a prediction (counted as misses)"
    ]
    for name, value in headline.items():
        if name in ("num_queries", "num_missing"):
            continue
        lines.append(f"  {name:<22} {'-' if value is None else f'{value:.2f}'}")
    return "\n".join(lines)
