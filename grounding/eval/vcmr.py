"""Video corpus moment retrieval metrics (the TVR protocol), numpy only.

A search predictions line is ``{"qid", "query", "pred_moments": [[vid, start_s, end_s, score], ...]}``,
best first (``tools/search.py``). For a query with ground-truth video ``v`` and windows ``W``:

- ``VCMR-R{k}@{m}``: one of the first k moments is in video ``v`` and has IoU >= m with a window of ``W``
  (the best over ``W`` when there are several);
- ``VR-R{k}``: ``v`` is among the first k *distinct* videos of the list (a video ranks where its first
  moment is).

Percent, over every labelled query of the ground truth; a query without a predictions line is a miss
(``num_missing`` counts them), and a line for a query the ground truth lacks is an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from grounding.data.records import MomentRecord, iter_jsonl, read_native_jsonl
from grounding.errors import GroundingError
from grounding.eval.iou import pairwise_iou

VCMR_KS = (1, 5, 10, 100)
VCMR_IOUS = (0.5, 0.7)
VR_KS = (1, 5, 10)


def _check(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict) or "qid" not in obj or "pred_moments" not in obj:
        raise GroundingError(f"{where}: a search prediction needs 'qid' and 'pred_moments' ([[vid, start, end, score], "
                             "...]); grounding predictions (pred_relevant_windows) are scored without --task vcmr")
    for m in obj["pred_moments"]:
        ok = (isinstance(m, list | tuple) and len(m) in (3, 4) and isinstance(m[0], str)
              and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in m[1:]))
        if not ok:
            raise GroundingError(f"{where}: each of 'pred_moments' must be [vid, start, end, score]; got {m!r}")
    return obj


def read_search_predictions(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise GroundingError(f"predictions file {path} does not exist; check the --predictions path")
    return [_check(obj, f"{path}:{n}") for n, obj in iter_jsonl(path)]


def vcmr_ranks(predictions: Sequence[dict[str, Any]], records: Sequence[MomentRecord],
               ious: Sequence[float] = VCMR_IOUS, max_k: int = max(VCMR_KS), pred_source: str = "predictions"
               ) -> tuple[np.ndarray, np.ndarray, int]:
    """Per labelled query: the rank (0-based, inf = none in the first ``max_k``) of the first right moment
    at each IoU (Q, len(ious)), the rank of its video among the distinct predicted videos (Q,), and how
    many queries had no predictions line."""
    labelled = [r for r in records if r.windows]
    if not labelled:
        raise GroundingError("the ground truth has no labelled query; there is nothing to score")
    by_qid: dict[str, dict[str, Any]] = {}
    for p in predictions:
        key = str(p["qid"])
        if key in by_qid:
            raise GroundingError(f"{pred_source}: query {p['qid']} is predicted twice; keep one line per query")
        by_qid[key] = p
    unknown = set(by_qid) - {str(r.qid) for r in records}
    if unknown:
        raise GroundingError(f"{pred_source}: {len(unknown)} predicted queries are not in the ground truth "
                             f"(e.g. {sorted(unknown)[:3]}); score against the split you searched")
    moment_rank = np.full((len(labelled), len(ious)), np.inf)
    video_rank = np.full(len(labelled), np.inf)
    missing = 0
    for qi, rec in enumerate(labelled):
        pred = by_qid.get(str(rec.qid))
        if pred is None:
            missing += 1
            continue
        moments = pred["pred_moments"]
        videos = list(dict.fromkeys(m[0] for m in moments))
        if rec.vid in videos:
            video_rank[qi] = videos.index(rec.vid)
        top = moments[:max_k]
        same = np.array([m[0] == rec.vid for m in top], dtype=bool)
        if not same.any():
            continue
        windows = np.array([[float(m[1]), float(m[2])] for m in top])
        iou = pairwise_iou(windows, np.asarray(rec.windows, dtype=float)).max(1) * same  # (k,)
        for ti, m in enumerate(ious):
            hit = np.flatnonzero(iou >= m)
            if len(hit):
                moment_rank[qi, ti] = hit[0]
    return moment_rank, video_rank, missing


def vcmr_metrics(predictions: Sequence[dict[str, Any]], records: Sequence[MomentRecord],
                 ks: Sequence[int] = VCMR_KS, ious: Sequence[float] = VCMR_IOUS, vr_ks: Sequence[int] = VR_KS,
                 pred_source: str = "predictions") -> dict[str, Any]:
    moment_rank, video_rank, missing = vcmr_ranks(predictions, records, ious, max(ks), pred_source)
    out: dict[str, Any] = {}
    for k in ks:
        for ti, m in enumerate(ious):
            out[f"VCMR-R{k}@{m:g}"] = float((moment_rank[:, ti] < k).mean() * 100)
    for k in vr_ks:
        out[f"VR-R{k}"] = float((video_rank < k).mean() * 100)
    out["num_queries"] = len(video_rank)
    out["num_missing"] = missing
    return out


def evaluate_vcmr(pred_path: str | Path, gt_path: str | Path) -> dict[str, Any]:
    gt_path = Path(gt_path)
    if not gt_path.is_file():
        raise GroundingError(f"ground-truth file {gt_path} does not exist; check the --ground-truth path")
    return vcmr_metrics(read_search_predictions(pred_path), read_native_jsonl(gt_path), pred_source=str(pred_path))
