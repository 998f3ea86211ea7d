"""Prediction files and their join with the ground truth.

A predictions file has one JSON line per query: ``{"qid", "vid", "query", "pred_relevant_windows":
[[start, end, score], ...]}`` with the best window first, plus ``"pred_saliency_scores"`` (one float
per 2 s clip) where the model predicts them. Joining is strict about what would silently skew a
number (a query predicted twice, a query the ground truth does not have) and lenient about a query
with no line at all: it counts as a miss, and the count is returned so callers can report it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grounding.data.records import MomentRecord, iter_jsonl, write_jsonl
from grounding.errors import GroundingError

Prediction = dict[str, Any]


def _check_prediction(obj: Any, where: str) -> Prediction:
    if not isinstance(obj, dict) or "qid" not in obj or "pred_relevant_windows" not in obj:
        raise GroundingError(f"{where}: a prediction line needs at least 'qid' and 'pred_relevant_windows'")
    windows = obj["pred_relevant_windows"]
    ok = isinstance(windows, list) and all(
        isinstance(w, list | tuple)
        and len(w) in (2, 3)
        and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in w)
        for w in windows
    )
    if not ok:
        raise GroundingError(
            f"{where}: 'pred_relevant_windows' must be a list of [start, end, score] lists of finite numbers"
        )
    reversed_windows = [w for w in windows if w[0] > w[1]]
    if reversed_windows:
        raise GroundingError(
            f"{where}: predicted window {list(reversed_windows[0])} has start > end (it could never match); "
            "write each window as [start, end, score] with start <= end"
        )
    return obj


def read_predictions(path: str | Path) -> list[Prediction]:
    """Read and check a predictions JSONL file (errors name the file and line)."""
    path = Path(path)
    if not path.is_file():
        raise GroundingError(f"predictions file {path} does not exist; check the --predictions path")
    return [_check_prediction(obj, f"{path}:{line_no}") for line_no, obj in iter_jsonl(path)]


def write_predictions(predictions: Iterable[Prediction], path: str | Path) -> int:
    """Write one JSON line per query; returns the number written."""
    return write_jsonl(predictions, path)


@dataclass
class JoinedPredictions:
    """Ground truth in its file order with each query's prediction (``None`` where it has none)."""

    records: list[MomentRecord]
    predictions: list[Prediction | None]

    @property
    def num_missing(self) -> int:
        return sum(p is None for p in self.predictions)


def _listed(qids: Iterable[Any], limit: int = 5) -> str:
    qids = list(qids)
    shown = ", ".join(str(q) for q in qids[:limit])
    return shown + (f" (and {len(qids) - limit} more)" if len(qids) > limit else "")


def join_predictions(
    predictions: list[Prediction],
    ground_truth: list[MomentRecord],
    pred_source: str = "predictions",
    gt_source: str = "ground truth",
) -> JoinedPredictions:
    """Match predictions to ground-truth queries by qid (compared as strings, so 7 and "7" match)."""
    if not ground_truth:
        raise GroundingError(f"{gt_source} holds no queries; check the --ground-truth file")
    gt_dupes = [q for q, n in Counter(str(r.qid) for r in ground_truth).items() if n > 1]
    if gt_dupes:
        raise GroundingError(
            f"{gt_source}: qid(s) {_listed(gt_dupes)} appear more than once; qids must be unique"
        )
    pred_dupes = [q for q, n in Counter(str(p["qid"]) for p in predictions).items() if n > 1]
    if pred_dupes:
        raise GroundingError(
            f"{pred_source}: qid(s) {_listed(pred_dupes)} appear more than once; keep one line per query"
        )
    by_qid = {str(p["qid"]): p for p in predictions}
    unknown = by_qid.keys() - {str(r.qid) for r in ground_truth}
    if unknown:
        raise GroundingError(
            f"{pred_source}: {len(unknown)} qid(s) not in {gt_source}: {_listed(sorted(unknown))}; "
            "check that both files are for the same dataset and split"
        )
    return JoinedPredictions(list(ground_truth), [by_qid.get(str(r.qid)) for r in ground_truth])
