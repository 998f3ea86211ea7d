"""Prediction records: the one builder of the JSON lines every predictor writes (DESIGN.md sections 4, 7).

Evaluation, the Grounder, zero-shot grounding and checkpoint-mode evaluation all emit
``{"qid", "vid", "query", "pred_relevant_windows": [[start_s, end_s, score], ...], "pred_saliency_scores",
"pred_in_video"}`` through ``prediction_record``, and moment search emits ``{"query", "pred_moments": [[vid, start_s, end_s,
score], ...]}`` through ``search_record``, so rounding, NaN handling and optional fields are the same
everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from grounding.eval.predictions import Prediction

IN_VIDEO_THRESHOLD = 0.5  # below it a moment is shown as "probably not in this video" (p is calibrated at prior 1/2)
NOT_IN_VIDEO = "probably not in this video"


def window_rows(windows: Any) -> list[list[float]]:
    """``[[start, end, score], ...]`` from a (K, 3) array, dropping NaN rows (fewer windows than K)."""
    return [[round(float(s), 4), round(float(e), 4), round(float(c), 6)] for s, e, c in np.asarray(windows) if s == s]


def in_video_verdict(p: float | None, threshold: float = IN_VIDEO_THRESHOLD) -> str | None:
    """What the report, the page and ``tools/ground.py`` say about ``pred_in_video``: "probably not in this
    video" below ``threshold``, else nothing (None also for a model that gives no probability)."""
    return NOT_IN_VIDEO if p is not None and p < threshold else None


def prediction_record(vid: str, query: str, windows: Any, saliency: Any, qid: Any = None,
                      duration: float | None = None, refined: Any = None, warnings: Sequence[str] = (),
                      in_video: Any = None) -> Prediction:
    """One query's line. ``windows`` (K, 3) seconds, best first; ``saliency`` one score per clip; ``qid``
    and ``duration`` where known (a Grounder answer has no qid); ``refined`` the model's regressed span (2,);
    ``in_video`` the calibrated P(the moment is in the video), written as ``pred_in_video`` (null for a
    model without one, so every line has the key)."""
    line: Prediction = {} if qid is None else {"qid": qid}
    line.update({"vid": vid, "query": query})
    if duration is not None:
        line["duration"] = round(float(duration), 4)
    line["pred_relevant_windows"] = window_rows(windows)
    line["pred_saliency_scores"] = [round(float(x), 4) for x in np.asarray(saliency)]
    line["pred_in_video"] = None if in_video is None else round(float(in_video), 4)
    if refined is not None:
        line["pred_refined_window"] = [round(float(x), 4) for x in np.asarray(refined)]
    if warnings:
        line["warnings"] = list(warnings)
    return line


def prediction_records(qids: Sequence[Any], vids: Sequence[str], queries: Sequence[str], windows: Any,
                       saliency: Any, num_clips: Any, refined: Any = None, in_video: Any = None) -> list[Prediction]:
    """The lines of a decoded batch: ``windows`` (B, K, 3) with NaN rows past the valid ones, ``saliency``
    (B, T) of which the first ``num_clips`` (B,) are valid, ``refined`` (B, 2) seconds or None, ``in_video``
    (B,) probabilities or None."""
    windows, saliency, num_clips = np.asarray(windows), np.asarray(saliency), np.asarray(num_clips)
    return [prediction_record(vids[i], queries[i], windows[i], saliency[i, : int(num_clips[i])], qid=qid,
                              refined=None if refined is None else np.asarray(refined)[i],
                              in_video=None if in_video is None else np.asarray(in_video)[i])
            for i, qid in enumerate(qids)]


def search_record(query: str, moments: Sequence[Sequence[Any]], qid: Any = None) -> Prediction:
    """One query's moment-search line: ``moments`` ``[vid, start_s, end_s, score]`` best first."""
    line: Prediction = {} if qid is None else {"qid": qid}
    line["query"] = query
    line["pred_moments"] = [[str(v), round(float(s), 4), round(float(e), 4), round(float(c), 6)] for v, s, e, c in moments]
    return line
