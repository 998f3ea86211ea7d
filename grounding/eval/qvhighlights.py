"""The official QVHighlights evaluation (Moment-DETR ``standalone_eval``), vectorised over queries.

Names, values and rounding (2 decimals, in percent) follow the official ``metrics_raw`` output:

- Moment retrieval, per GT-length bucket (``short`` (0, 10], ``middle`` (10, 30], ``long`` (30, 150] s,
  ``full`` all windows): a query is evaluated in a bucket with only its GT windows of that length and
  skipped if it has none there.
  ``MR-mAP``: VOC-style all-point interpolated AP per query (not COCO's 101 points) over its first 10
  predicted windows sorted by score, each matched greedily to the unmatched GT window of highest
  IoU >= threshold; averaged over queries, at IoU 0.5:0.05:0.95 and their mean.
  ``MR-R1``: the first predicted window against the GT window it overlaps most.
- Highlight detection (``HL-min-{Fair,Good,VeryGood}``: a clip is positive for an annotator when its
  saliency >= 2/3/4): ``HL-mAP`` averages, over queries and the 3 annotators, the AP of the predicted
  clip scores (mean interpolated precision at each recall step, score ties grouped); ``HL-Hit1`` is
  the share of queries whose top-scored clip is positive for at least one annotator.

Where the official script crashes or gives NaN (a query without predictions, a zero-length union)
this module scores a miss / IoU 0 instead; the function docstrings say where.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grounding.data.records import MomentRecord
from grounding.errors import GroundingError
from grounding.eval.iou import pairwise_iou
from grounding.eval.predictions import JoinedPredictions, Prediction, join_predictions

MAX_PRED_WINDOWS = 10
IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.5 ... 0.95, keys "0.5" ... "0.95"
LENGTH_BUCKETS: dict[str, tuple[float, float] | None] = {
    "short": (0, 10),
    "middle": (10, 30),
    "long": (30, 150),
    "full": None,  # every GT window, whatever its length (as the official script)
}
SALIENCY_LEVELS = {"Fair": 2, "Good": 3, "VeryGood": 4}
CLIP_SECONDS = 2.0


def _pct(value: float) -> float | None:
    """Percent with the official rounding (``float(f"{100 * v:.2f}")``); None for an empty bucket."""
    return None if np.isnan(value) else float(f"{100 * value:.2f}")


# ---------------------------------------------------------------- moment retrieval


def _pack_moments(joined: JoinedPredictions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First 10 predicted windows in file order (Q, K, 2), their scores (Q, K), GT windows (Q, G, 2).

    NaN pads missing entries. A window without a score gets one that keeps the file order.
    """
    num_queries = len(joined.records)
    num_gt = max(len(r.windows) for r in joined.records)
    pred = np.full((num_queries, MAX_PRED_WINDOWS, 2), np.nan)
    score = np.full((num_queries, MAX_PRED_WINDOWS), np.nan)
    gt = np.full((num_queries, max(num_gt, 1), 2), np.nan)
    for i, (rec, p) in enumerate(zip(joined.records, joined.predictions, strict=True)):
        for j, w in enumerate(p["pred_relevant_windows"][:MAX_PRED_WINDOWS] if p else []):
            pred[i, j] = w[:2]
            score[i, j] = w[2] if len(w) > 2 else -j
        if rec.windows:
            gt[i, : len(rec.windows)] = rec.windows
    return pred, score, gt


def average_precision(
    pred: np.ndarray, score: np.ndarray, gt: np.ndarray, gt_mask: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """Per-query detection AP at each IoU threshold -> (Q, T).

    pred (Q, K, 2) and score (Q, K) NaN-padded; gt (Q, G, 2) with gt_mask (Q, G) marking the windows
    that count. Predictions are taken by score (stable, so ties keep file order); each is a true
    positive if an unmatched GT window has IoU >= threshold, and takes the one of highest IoU (on equal
    IoU the later window, as the official reversed argsort). AP is the area under the precision
    envelope (VOC 2011), i.e. sum over true positives of max precision at or after them / #GT.
    A query with no prediction has AP 0 (the official script leaves such a query out of the mean).
    """
    num_queries, k = score.shape
    order = np.argsort(-score, axis=1, kind="stable")  # NaN (no window) sorts last
    pred = np.take_along_axis(pred, order[..., None], axis=1)
    valid = ~np.isnan(np.take_along_axis(score, order, axis=1))  # (Q, K), a prefix of each row
    iou = np.where(gt_mask[:, None, :], pairwise_iou(pred, gt, union="sum"), -np.inf)  # (Q, K, G)
    gt_rank = np.argsort(iou, axis=-1, kind="stable")[..., ::-1]  # (Q, K, G) GT index, best first
    iou_ranked = np.take_along_axis(iou, gt_rank, axis=-1)
    num_thr, num_gt = len(thresholds), gt.shape[1]

    matched = np.zeros((num_queries, num_thr, num_gt), dtype=bool)  # GT already taken, per threshold
    tp = np.zeros((num_queries, num_thr, k), dtype=bool)
    for j in range(k):  # sequential by nature: each prediction sees the earlier matches
        rank_j = np.broadcast_to(gt_rank[:, None, j, :], matched.shape)  # (Q, T, G)
        free = ~np.take_along_axis(matched, rank_j, axis=2)
        cand = (iou_ranked[:, None, j, :] >= thresholds[None, :, None]) & free  # (Q, T, G)
        hit = cand.any(axis=-1) & valid[:, None, j]  # (Q, T)
        chosen = np.take_along_axis(rank_j, cand.argmax(axis=-1)[..., None], axis=2)  # (Q, T, 1)
        np.put_along_axis(matched, chosen, np.take_along_axis(matched, chosen, 2) | hit[..., None], axis=2)
        tp[:, :, j] = hit

    precision = np.where(valid[:, None, :], np.cumsum(tp, axis=-1) / np.arange(1, k + 1), 0.0)  # (Q, T, K)
    envelope = np.maximum.accumulate(precision[..., ::-1], axis=-1)[..., ::-1]
    return (tp * envelope).sum(axis=-1) / np.maximum(gt_mask.sum(axis=1), 1)[:, None]


def top1_iou(pred_first: np.ndarray, gt: np.ndarray, gt_mask: np.ndarray) -> np.ndarray:
    """IoU of each query's first predicted window (Q, 2) with the GT window it overlaps most -> (Q,).

    The GT window is chosen by the official cross IoU (first on ties) and then scored with the hull
    union, as the official ``compute_temporal_iou_batch_paired``; a missing prediction scores 0.
    """
    cross = np.where(gt_mask, pairwise_iou(pred_first[:, None], gt, union="sum")[:, 0], -np.inf)  # (Q, G)
    chosen = gt[np.arange(len(gt)), cross.argmax(axis=1)]  # (Q, 2)
    return pairwise_iou(pred_first[:, None], chosen[:, None], union="hull")[:, 0, 0]


def moment_retrieval_metrics(joined: JoinedPredictions) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{bucket: {"MR-mAP": {"0.5": .., "average": ..}, "MR-R1": {"0.5": ..}}}`` for the 4 buckets."""
    pred, score, gt = _pack_moments(joined)
    thresholds = np.asarray(IOU_THRESHOLDS)
    keys = [str(t) for t in IOU_THRESHOLDS]
    length = gt[..., 1] - gt[..., 0]  # (Q, G), NaN for padding
    present = ~np.isnan(length)
    out = {}
    for name, bounds in LENGTH_BUCKETS.items():
        with np.errstate(invalid="ignore"):
            mask = present if bounds is None else present & (length > bounds[0]) & (length <= bounds[1])
        keep = mask.any(axis=1)  # queries with at least one GT window in the bucket
        if keep.any():
            ap_per_query = average_precision(pred[keep], score[keep], gt[keep], mask[keep], thresholds)
            ap = ap_per_query.mean(axis=0)  # (T,)
            r1_iou = top1_iou(pred[keep, 0], gt[keep], mask[keep])  # (Q_bucket,)
            r1 = (r1_iou[:, None] >= thresholds[None, :]).mean(axis=0)  # (T,)
        else:  # e.g. a small split without short moments: reported as None, not NaN
            ap = r1 = np.full(len(thresholds), np.nan)
        out[name] = {
            "MR-mAP": {**{key: _pct(v) for key, v in zip(keys, ap, strict=True)}, "average": _pct(ap.mean())},
            "MR-R1": {key: _pct(v) for key, v in zip(keys, r1, strict=True)},
        }
    return out


# ---------------------------------------------------------------- highlight detection


def _pack_saliency(
    joined: JoinedPredictions, gt_source: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Clip scores (Q, C) cut or zero-padded to each video's clips (-inf beyond), GT saliency
    (Q, C, 3), the predicted top clip (Q,) (-1 where there is no prediction), and clips per video (Q,).

    None when the ground truth has no saliency or no prediction has clip scores.
    """
    if not all("saliency_scores" in r.extra and "relevant_clip_ids" in r.extra for r in joined.records):
        return None
    if not any(p and p.get("pred_saliency_scores") for p in joined.predictions):
        return None
    num_clips = np.array([int(r.duration / CLIP_SECONDS) if r.duration else 0 for r in joined.records])
    num_queries, width = len(joined.records), max(int(num_clips.max()), 1)
    scores = np.full((num_queries, width), -np.inf)
    saliency = np.zeros((num_queries, width, 3))
    top_clip = np.full(num_queries, -1)
    for i, (rec, p) in enumerate(zip(joined.records, joined.predictions, strict=True)):
        n = num_clips[i]
        ids = np.asarray(rec.extra["relevant_clip_ids"], dtype=int)
        if ids.size and (ids.min() < 0 or ids.max() >= n):
            raise GroundingError(
                f"{gt_source}: query {rec.qid} has relevant_clip_ids outside its {n} clips of "
                f"{CLIP_SECONDS:g} s (duration {rec.duration}); fix the annotation"
            )
        if ids.size:
            saliency[i, ids] = np.asarray(rec.extra["saliency_scores"], dtype=float).reshape(len(ids), -1)
        clip_scores = p.get("pred_saliency_scores") if p else None
        if clip_scores:
            clip_scores = np.asarray(clip_scores, dtype=float)
            top_clip[i] = int(clip_scores.argmax())  # over all given scores, first on ties
            scores[i, :n] = 0.0  # the official script zero-pads short score lists
            scores[i, : min(n, len(clip_scores))] = clip_scores[:n]
    return scores, saliency, top_clip, num_clips


def saliency_average_precision(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AP of clip scores (Q, C) for binary labels (Q, C, A) -> (Q, A), as the official ``get_ap``.

    Clips are ranked by score with equal scores forming one level (sklearn's precision-recall curve).
    AP is the mean, over the levels that add a positive, of the best precision at that level or any
    later one; no positive gives 0. Padding (score -inf, label 0) forms a last level that adds no
    positive and cannot raise any maximum, so rows of different lengths share one array.
    """
    width = scores.shape[1]
    order = np.argsort(-scores, axis=1, kind="stable")
    ranked = np.take_along_axis(scores, order, axis=1)  # (Q, C), descending
    y = np.take_along_axis(labels, order[..., None], axis=1)  # (Q, C, A)
    level_start = np.ones_like(ranked, dtype=bool)
    level_start[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    level_end = np.ones_like(ranked, dtype=bool)
    level_end[:, :-1] = level_start[:, 1:]
    tp = np.cumsum(y, axis=1)  # (Q, C, A)
    start_idx = np.maximum.accumulate(np.where(level_start, np.arange(width), 0), axis=1)  # (Q, C)
    tp_shifted = np.concatenate([np.zeros_like(tp[:, :1]), tp], axis=1)  # (Q, C + 1, A): positives before
    tp_before = np.take_along_axis(tp_shifted, start_idx[..., None], axis=1)  # ... each clip's level
    precision = np.where(level_end[..., None], tp / np.arange(1, width + 1)[None, :, None], 0.0)
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    adds = level_end[..., None] & (tp > tp_before)  # (Q, C, A): levels where recall steps up
    steps = adds.sum(axis=1)
    return np.where(steps > 0, (envelope * adds).sum(axis=1) / np.maximum(steps, 1), 0.0)


def highlight_metrics(
    joined: JoinedPredictions, gt_source: str = "ground truth"
) -> dict[str, dict[str, float | None]]:
    """``{"HL-min-Fair": {"HL-mAP": .., "HL-Hit1": ..}, ...}``; empty when there is nothing to score.

    A query without clip scores (or without any prediction) scores AP 0 and no hit.
    """
    packed = _pack_saliency(joined, gt_source)
    if packed is None:
        return {}
    scores, saliency, top_clip, num_clips = packed
    has_pred = top_clip >= 0
    top_in_video = has_pred & (top_clip < num_clips)
    rows = np.arange(len(scores))
    out = {}
    for name, min_score in SALIENCY_LEVELS.items():
        labels = saliency >= min_score  # (Q, C, 3)
        ap = np.where(has_pred[:, None], saliency_average_precision(scores, labels), 0.0)  # (Q, 3)
        top_labels = labels[rows, np.clip(top_clip, 0, scores.shape[1] - 1)]  # (Q, 3)
        hit = top_in_video & top_labels.any(axis=-1)  # positive for any annotator
        out[f"HL-min-{name}"] = {"HL-mAP": _pct(ap.mean()), "HL-Hit1": _pct(hit.mean())}
    return out


# ---------------------------------------------------------------- the whole evaluation


def evaluate_qvhighlights(
    predictions: list[Prediction],
    ground_truth: list[MomentRecord],
    pred_source: str = "predictions",
    gt_source: str = "ground truth",
) -> dict[str, Any]:
    """The official ``metrics_raw`` layout: ``brief`` first, then the blocks by name, plus
    ``num_queries`` and ``num_missing`` (queries without a prediction, scored as misses)."""
    joined = join_predictions(predictions, ground_truth, pred_source, gt_source)
    moments = moment_retrieval_metrics(joined)
    highlights = highlight_metrics(joined, gt_source)
    brief = {
        "MR-full-mAP": moments["full"]["MR-mAP"]["average"],
        "MR-full-mAP@0.5": moments["full"]["MR-mAP"]["0.5"],
        "MR-full-mAP@0.75": moments["full"]["MR-mAP"]["0.75"],
        "MR-short-mAP": moments["short"]["MR-mAP"]["average"],
        "MR-middle-mAP": moments["middle"]["MR-mAP"]["average"],
        "MR-long-mAP": moments["long"]["MR-mAP"]["average"],
        "MR-full-R1@0.5": moments["full"]["MR-R1"]["0.5"],
        "MR-full-R1@0.7": moments["full"]["MR-R1"]["0.7"],
    }
    brief = dict(sorted(brief.items()))
    for level, values in highlights.items():
        for key, value in values.items():
            brief[f"{level}-{key.split('-')[1]}"] = value  # "HL-min-Fair" + "mAP"
    out: dict[str, Any] = {"brief": brief}
    out.update(sorted({**moments, **highlights}.items()))
    out["num_queries"] = len(joined.records)
    out["num_missing"] = joined.num_missing
    return out
