"""The one metrics dispatcher, for predictions made in-process (training, checkpoint evaluation) and
for a predictions file scored standalone: both get exactly the same dict.

QVHighlights (and any ground truth with several windows per query or saliency scores) gets the
official QVHighlights metrics (``brief`` first, then the blocks); the single-window benchmarks get
R@{1,5} at IoU {0.1,0.3,0.5,0.7} and mIoU, plus ``<tag>/<metric>`` per query subset when tags are
given. Ground truth with absent queries (``"absent": true``) also gets the ``exist-*`` numbers of
``grounding.eval.existence`` (absent queries never enter the window metrics). Both carry ``num_queries`` and ``num_missing`` (queries without a prediction, scored as misses)
so that a partial predictions file cannot pass unnoticed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grounding.data.records import MomentRecord, read_native_jsonl
from grounding.errors import GroundingError
from grounding.eval.existence import existence_metrics, has_absent
from grounding.eval.metrics import evaluate_single_window
from grounding.eval.predictions import Prediction, read_predictions
from grounding.eval.qvhighlights import evaluate_qvhighlights

MULTI_WINDOW_DATASETS = ("qvhighlights",)
SINGLE_WINDOW_DATASETS = ("activitynet", "charades_sta", "tacos")

log = logging.getLogger(__name__)


def has_ground_truth(records: list[MomentRecord]) -> bool:
    """False for a split whose labels are hidden (QVHighlights test): there is nothing to score."""
    return any(r.windows for r in records)


def is_multi_window(records: list[MomentRecord]) -> bool:
    """True when the ground truth looks like QVHighlights: saliency scores or several windows."""
    return any("saliency_scores" in r.extra or len(r.windows) > 1 for r in records)


def compute_metrics(predictions: list[Prediction], records: list[MomentRecord], dataset: str | None = None,
                    tags: dict[Any, list[str]] | None = None, pred_source: str = "predictions",
                    gt_source: str = "ground truth") -> dict[str, Any]:
    """Metrics of ``predictions`` against ``records``; ``dataset=None`` (or ``native``) infers the set.

    Queries without a ground-truth window (QVHighlights' test split) are left out of the scoring.
    """
    labelled = [r for r in records if r.windows]
    exist = existence_metrics(predictions, records) if has_absent(records) else {}
    if exist:  # absent queries have no window to find: their lines only enter the exist-* numbers
        absent = {str(r.qid) for r in records if r.extra.get("absent")}
        predictions = [p for p in predictions if str(p.get("qid")) not in absent]
    multi = dataset in MULTI_WINDOW_DATASETS if dataset in MULTI_WINDOW_DATASETS + SINGLE_WINDOW_DATASETS \
        else is_multi_window(labelled)
    if multi:
        metrics = evaluate_qvhighlights(predictions, labelled, pred_source=pred_source, gt_source=gt_source)
    else:
        metrics = dict(evaluate_single_window(predictions, labelled, pred_source=pred_source, gt_source=gt_source))
    if tags:
        by_qid = {str(p["qid"]): p for p in predictions}
        for tag in sorted({t for ts in tags.values() for t in ts}):
            subset = [r for r in labelled if tag in tags.get(r.qid, [])]
            if subset:
                preds = [by_qid[str(r.qid)] for r in subset if str(r.qid) in by_qid]
                sub = headline(evaluate_qvhighlights(preds, subset)) if multi else evaluate_single_window(preds, subset)
                metrics.update({f"{tag}/{k}": v for k, v in sub.items() if k != "num_missing"})
    if exist:
        metrics.update(exist)
        if "brief" in metrics:
            metrics["brief"].update(exist)
    return metrics


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """One flat level of numbers (QVHighlights' ``brief``, the counts and any ``<tag>/...`` subset numbers) for
    logs, TensorBoard and checkpoint selection."""
    if "brief" not in metrics:
        return metrics
    subsets = {k: v for k, v in metrics.items() if "/" in k}
    return {**metrics["brief"], "num_queries": metrics["num_queries"], "num_missing": metrics["num_missing"], **subsets}


def evaluate(pred_path: str | Path, gt_path: str | Path, dataset: str | None = None,
             warn: Callable[[str], None] = log.warning) -> dict[str, Any]:
    """Metrics for ``pred_path`` against the native JSONL ``gt_path``; ``dataset=None`` infers the set.

    An empty predictions file is scored (every query a miss) but ``warn`` says so, since it is more
    likely a failed prediction run than a model that found nothing.
    """
    if dataset is not None and dataset not in MULTI_WINDOW_DATASETS + SINGLE_WINDOW_DATASETS:
        raise GroundingError(
            f"unknown dataset '{dataset}' for evaluation; choose one of "
            f"{', '.join(sorted(MULTI_WINDOW_DATASETS + SINGLE_WINDOW_DATASETS))} or leave it out"
        )
    gt_path = Path(gt_path)
    if not gt_path.is_file():
        raise GroundingError(f"ground-truth file {gt_path} does not exist; check the --ground-truth path")
    ground_truth = read_native_jsonl(gt_path)
    if not has_ground_truth(ground_truth):
        raise GroundingError(f"{gt_path} has no ground-truth windows (hidden labels?); there is nothing to score")
    predictions = read_predictions(pred_path)
    if not predictions:
        warn(f"{pred_path} holds no predictions: all {len(ground_truth)} queries count as misses")
    return compute_metrics(predictions, ground_truth, dataset, pred_source=str(pred_path), gt_source=str(gt_path))


def _number(name: str, value: Any) -> str:
    """Rates with two decimals, counts (``num_queries`` of a subset) as the integers they are."""
    if value is None:
        return "-"
    if isinstance(value, int) or name.rsplit("/", 1)[-1].startswith("num_"):
        return str(int(value))
    return f"{value:.2f}"


def format_summary(metrics: dict[str, Any]) -> str:
    """A few human-readable lines: the headline numbers and how many queries had no prediction."""
    headline = metrics.get("brief", metrics)
    lines = [
        f"{metrics['num_queries']} queries, {metrics['num_missing']} without a prediction (counted as misses)"
    ]
    for name, value in headline.items():
        if name in ("num_queries", "num_missing"):
            continue
        lines.append(f"  {name:<22} {_number(name, value)}")
    return "\n".join(lines)
