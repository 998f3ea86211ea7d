"""Prediction records: the one builder of the JSON lines every predictor writes (DESIGN.md sections 4, 7).

Evaluation, the Grounder, zero-shot grounding and checkpoint-mode evaluation all emit
``{"qid", "vid", "query", "pred_relevant_windows": [[start_s, end_s, score], ...], "pred_saliency_scores"}``
through ``prediction_record``, and moment search emits ``{"query", "pred_moments": [[vid, start_s, end_s,
score], ...]}`` through ``search_record``, so rounding, NaN handling and optional fields are the same
everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from grounding.eval.predictions import Prediction


def window_rows(windows: Any) -> list[list[float]]:
    """``[[start, end, score], ...]`` from a (K, 3) array, dropping NaN rows (fewer windows than K)."""
    return [[round(float(s), 4), round(float(e), 4), round(float(c), 6)] for s, e, c in np.asarray(windows) if s == s]


def prediction_record(vid: str, query: str, windows: Any, saliency: Any, qid: Any = None,
                      duration: float | None = None, refined: Any = None, warnings: Sequence[str] = ()) -> Prediction:
    """One query's line. ``windows`` (K, 3) seconds, best first; ``saliency`` one score per clip; ``qid``
    and ``duration`` where known (a Grounder answer has no qid); ``refined`` the model's regressed span (2,)."""
    line: Prediction = {} if qid is None else {"qid": qid}
    line.update({"vid": vid, "query": query})
    if duration is not None:
        line["duration"] = round(float(duration), 4)
    line["pred_relevant_windows"] = window_rows(windows)
    line["pred_saliency_scores"] = [round(float(x), 4) for x in np.asarray(saliency)]
    if refined is not None:
        line["pred_refined_window"] = [round(float(x), 4) for x in np.asarray(refined)]
    if warnings:
        line["warnings"] = list(warnings)
    return line


def prediction_records(qids: Sequence[Any], vids: Sequence[str], queries: Sequence[str], windows: Any,
                       saliency: Any, num_clips: Any, refined: Any = None) -> list[Prediction]:
    """The lines of a decoded batch: ``windows`` (B, K, 3) with NaN rows past the valid ones, ``saliency``
    (B, T) of which the first ``num_clips`` (B,) are valid, ``refined`` (B, 2) seconds or None."""
    windows, saliency, num_clips = np.asarray(windows), np.asarray(saliency), np.asarray(num_clips)
    return [prediction_record(vids[i], queries[i], windows[i], saliency[i, : int(num_clips[i])], qid=qid,
                              refined=None if refined is None else np.asarray(refined)[i])
            for i, qid in enumerate(qids)]


def search_record(query: str, moments: Sequence[Sequence[Any]], qid: Any = None) -> Prediction:
    """One query's moment-search line: ``moments`` ``[vid, start_s, end_s, score]`` best first."""
    line: Prediction = {} if qid is None else {"qid": qid}
    line["query"] = query
    line["pred_moments"] = [[str(v), round(float(s), 4), round(float(e), 4), round(float(c), 6)] for v, s, e, c in moments]
    return line
