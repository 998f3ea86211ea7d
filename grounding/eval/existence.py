"""Scoring "is the described moment in this video?": present vs absent queries (DESIGN.md section 8).

Ground truth marks an absent query ``"absent": true`` with no ``relevant_windows``; every other query with
windows is present. A prediction's ``pred_in_video`` is the model's probability that the query is present.

- ``exist-AUROC``: the probability that a random present query gets a higher ``pred_in_video`` than a random
  absent one (ties count half): how well the score separates the two, whatever its scale.
- ``exist-ECE``: expected calibration error over ``bins`` equal-width bins of the probability, the
  query-weighted mean of |share present - mean probability| per bin: how far the probabilities are from
  the frequencies they claim (0 = calibrated).
- ``exist-acc``: share of queries on the right side of 0.5.
- ``look_alike/exist-AUROC``: present queries against the absent ones marked ``"look_alike": true`` (the
  video shows an event sharing the query's action or object).

Numpy only, like the other metrics, so a predictions file can be scored without the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grounding.data.records import MomentRecord
from grounding.eval.predictions import Prediction


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Mann-Whitney estimate of P(score of a positive > score of a negative), ties counting half."""
    scores = np.concatenate([positive, negative])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for a, b in zip(starts, ends, strict=True):
        ranks[order[a:b]] = (a + b + 1) / 2
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def expected_calibration_error(prob: np.ndarray, label: np.ndarray, bins: int = 10) -> float:
    """Query-weighted mean over equal-width probability bins of |mean label - mean probability|."""
    which = np.minimum((prob * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            total += in_bin.sum() * abs(label[in_bin].mean() - prob[in_bin].mean())
    return float(total / len(prob))


def has_absent(records: list[MomentRecord]) -> bool:
    return any(r.extra.get("absent") for r in records)


def existence_metrics(predictions: list[Prediction], records: list[MomentRecord], bins: int = 10) -> dict[str, Any]:
    """The ``exist-*`` numbers of ``predictions`` on ``records`` (present: with windows; absent: marked).
    Queries without a prediction or with ``pred_in_video`` null are counted in ``exist-num_missing``."""
    by_qid = {str(p["qid"]): p.get("pred_in_video") for p in predictions if "qid" in p}
    prob, label, look_alike, missing = [], [], [], 0
    for r in records:
        absent = bool(r.extra.get("absent"))
        if not absent and not r.windows:
            continue
        p = by_qid.get(str(r.qid))
        if p is None:
            missing += 1
            continue
        prob.append(float(p))
        label.append(0.0 if absent else 1.0)
        look_alike.append(absent and bool(r.extra.get("look_alike")))
    prob_a, label_a, hard = np.asarray(prob), np.asarray(label), np.asarray(look_alike, dtype=bool)
    out: dict[str, Any] = {"exist-num_present": int(label_a.sum()), "exist-num_absent": int(len(label_a) - label_a.sum()),
                           "exist-num_missing": missing}
    if label_a.size == 0 or label_a.all() or not label_a.any():
        return {**out, "exist-AUROC": None, "exist-ECE": None, "exist-acc": None}
    pos, neg = prob_a[label_a == 1], prob_a[label_a == 0]
    out.update({"exist-AUROC": round(auroc(pos, neg), 4),
                "exist-ECE": round(expected_calibration_error(prob_a, label_a, bins), 4),
                "exist-acc": round(float(((prob_a >= 0.5) == (label_a == 1)).mean()), 4)})
    if hard.any():
        out["look_alike/exist-AUROC"] = round(auroc(pos, prob_a[hard]), 4)
    return out


__all__ = ["auroc", "existence_metrics", "expected_calibration_error", "has_absent"]
