"""R@n at IoU=m and mIoU, the metrics of the single-window benchmarks (Charades-STA, ActivityNet, TACoS).

R@n, IoU=m is the share of queries whose top-n predicted windows include one with IoU >= m with the
ground truth; mIoU is the mean IoU of the top-1 prediction. Predictions are taken in the order given
(best first), as the reference evaluators do, and are not re-sorted by score. A query with several
ground-truth windows (not the case in these benchmarks) scores each prediction by its best IoU over
them, so a prediction counts if it finds any of the moments.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from grounding.data.records import MomentRecord
from grounding.eval.iou import pairwise_iou
from grounding.eval.predictions import JoinedPredictions, Prediction, join_predictions


def recall_at_iou(
    pred_windows: np.ndarray,
    gt: np.ndarray,
    ns: Sequence[int] = (1, 5),
    thresholds: Sequence[float] = (0.1, 0.3, 0.5, 0.7),
) -> dict[str, float]:
    """``{"R1@0.5": ..., "mIoU": ...}`` in percent (unrounded).

    pred_windows: (Q, K, 2), best first, rows padded with NaN where a query has fewer than K windows
    (a query with none scores IoU 0 everywhere). gt: (Q, 2), or (Q, G, 2) NaN-padded for several
    windows per query. With fewer than n predictions, R@n looks at all of them.
    """
    pred_windows = np.asarray(pred_windows, dtype=float)
    gt = np.asarray(gt, dtype=float)
    if gt.ndim == 2:
        gt = gt[:, None, :]  # (Q, 1, 2)
    if pred_windows.ndim != 3 or gt.ndim != 3 or pred_windows.shape[0] != gt.shape[0]:
        raise ValueError(
            f"expected pred (Q, K, 2) and gt (Q, 2) or (Q, G, 2), got {pred_windows.shape}, {gt.shape}"
        )
    num_queries, k = pred_windows.shape[:2]
    if num_queries == 0:
        raise ValueError("no queries to evaluate")
    if k == 0:
        pred_windows = np.full((num_queries, 1, 2), np.nan)
    iou = pairwise_iou(pred_windows, gt).max(axis=-1)  # (Q, K): best over GT windows
    best_in_top = np.maximum.accumulate(iou, axis=1)  # (Q, K): best IoU among the first k+1
    thr = np.asarray(thresholds, dtype=float)
    out: dict[str, float] = {}
    for n in ns:
        top_n = best_in_top[:, min(n, best_in_top.shape[1]) - 1]  # (Q,)
        hit_rate = (top_n[:, None] >= thr[None, :]).mean(axis=0) * 100  # (T,)
        for t, rate in zip(thresholds, hit_rate, strict=True):
            out[f"R{n}@{t:g}"] = float(rate)
    out["mIoU"] = float(iou[:, 0].mean() * 100)
    return out


def windows_array(joined: JoinedPredictions, max_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pack the first ``max_k`` predicted windows (Q, K, 2) and the GT windows (Q, G, 2), NaN-padded."""
    num_queries = len(joined.records)
    k = max([len(p["pred_relevant_windows"][:max_k]) for p in joined.predictions if p] + [1])
    g = max([len(r.windows) for r in joined.records] + [1])
    pred = np.full((num_queries, k, 2), np.nan)
    gt = np.full((num_queries, g, 2), np.nan)
    for i, (rec, p) in enumerate(zip(joined.records, joined.predictions, strict=True)):
        if p and p["pred_relevant_windows"]:
            wins = p["pred_relevant_windows"][:max_k]
            pred[i, : len(wins)] = [w[:2] for w in wins]
        if rec.windows:
            gt[i, : len(rec.windows)] = rec.windows
    return pred, gt


def evaluate_single_window(
    predictions: list[Prediction],
    ground_truth: list[MomentRecord],
    ns: Sequence[int] = (1, 5),
    thresholds: Sequence[float] = (0.1, 0.3, 0.5, 0.7),
    pred_source: str = "predictions",
    gt_source: str = "ground truth",
) -> dict[str, float | int]:
    """Join by qid and compute R@n/mIoU; adds ``num_queries`` and ``num_missing`` (counted as misses)."""
    joined = join_predictions(predictions, ground_truth, pred_source, gt_source)
    pred, gt = windows_array(joined, max(ns))
    metrics: dict[str, float | int] = dict(recall_at_iou(pred, gt, ns, thresholds))
    metrics["num_queries"] = len(joined.records)
    metrics["num_missing"] = joined.num_missing
    return metrics
