"""Shortcut audit of a grounding benchmark: how far a predictor gets *without watching the video*.

A benchmark subset only measures what its name says if the video-free predictors below stay near
chance on it. Each is fitted on the training split and scored (R1@0.5, percent) on the test split,
per tag of the ``<annotation stem>.tags.jsonl`` sidecar:

- ``fixed_window``: the single normalised window (start/D, end/D) that is right most often on the
  training queries, predicted for every query. It reads nothing and is the *chance* level;
- ``tag_window``: the best fixed window of the training queries *of the same tag* (all training
  queries for a tag the training split lacks): chance on that subset, knowing only its tag;
- ``keyword_prior``: one such window per relation keyword of the sentence (``before``/``after``/none):
  the rule "before means early, after means late";
- ``text_only``: a ridge regression from the sentence's bag of words to the normalised window;
- ``keyword_occurrence`` (synthetic benchmark only, from the sidecar's ``occurrence`` = [index, count]
  of the target among the repeated event's occurrences): the best rule "for this keyword and this many
  occurrences, pick occurrence i", i.e. an oracle that finds every occurrence of the named event but
  ignores the reference event. Scored as accuracy (percent of queries whose occurrence it picks).

A query with several ground-truth windows (QVHighlights) is a hit when the prediction reaches IoU 0.5
with the window it overlaps most (as the official MR-R1); the predictors are fitted on first windows.
For the synthetic benchmark's QVHighlights layout, ``audit_synthetic_folder`` adds two saliency
predictors that never see the video (random scores, a per-position prior) scored with the official
highlight metrics: the floor a saliency head has to clear. ``highlight_baselines(..., features=...)``
adds a third that sees the video but not the query (``any_event``), the floor for using the query.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from grounding.data.annotations import read_annotations
from grounding.data.records import MomentRecord
from grounding.errors import GroundingError
from grounding.eval.iou import pairwise_iou

KEYWORDS = ("before", "after")
GRID_STEP = 0.02


def keyword(sentence: str) -> str:
    """The relation keyword of a sentence ("before", "after") or "" when it has none."""
    words = set(re.findall(r"[a-z']+", sentence.lower()))
    found = [k for k in KEYWORDS if k in words]
    return found[0] if len(found) == 1 else ""


def normalised_windows(records: Sequence[MomentRecord]) -> np.ndarray:
    """(N, 2) first ground-truth window of each record divided by its duration."""
    return np.array([[r.windows[0][0] / r.duration, r.windows[0][1] / r.duration] for r in records], dtype=float)


def normalised_all_windows(records: Sequence[MomentRecord]) -> np.ndarray:
    """(N, G, 2) every ground-truth window of each record divided by its duration, NaN-padded."""
    out = np.full((len(records), max((len(r.windows) for r in records), default=1), 2), np.nan)
    for i, r in enumerate(records):
        out[i, : len(r.windows)] = np.asarray(r.windows, dtype=float) / r.duration
    return out


def r1_at(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> float:
    """Percent of rows whose predicted window (N, 2) has IoU >= ``threshold`` with its target (N, 2),
    or, for targets (N, G, 2) (NaN-padded), with the target window it overlaps most (as MR-R1)."""
    if len(gt) == 0:
        return float("nan")
    gt = gt[:, None] if gt.ndim == 2 else gt
    iou = pairwise_iou(pred[:, None], gt)[:, 0].max(-1)
    return 100.0 * float((iou >= threshold).mean())


def _grid(step: float = GRID_STEP) -> np.ndarray:
    edges = np.round(np.arange(0.0, 1.0 + step / 2, step), 6)
    start, end = np.meshgrid(edges, edges, indexing="ij")
    keep = end > start
    return np.stack([start[keep], end[keep]], 1)  # (K, 2)


def best_fixed_window(targets: np.ndarray, threshold: float = 0.5, step: float = GRID_STEP) -> np.ndarray:
    """The grid window (2,) with the most targets (N, 2) at IoU >= ``threshold`` (ties: the first)."""
    if len(targets) == 0:
        return np.array([0.0, 1.0])
    grid = _grid(step)
    hits = (pairwise_iou(grid, targets) >= threshold).sum(1)  # (K,)
    return grid[int(np.argmax(hits))]


class BagOfWordsRidge:
    """Sentence -> normalised window by ridge regression on word counts (the blind text-only model)."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha
        self.vocab: dict[str, int] = {}
        self.weights = np.zeros((1, 2))

    def _features(self, sentences: Sequence[str]) -> np.ndarray:
        x = np.zeros((len(sentences), len(self.vocab) + 1))
        x[:, -1] = 1.0
        for i, sentence in enumerate(sentences):
            for word in re.findall(r"[a-z']+", sentence.lower()):
                if word in self.vocab:
                    x[i, self.vocab[word]] += 1.0
        return x

    def fit(self, sentences: Sequence[str], targets: np.ndarray) -> BagOfWordsRidge:
        words = sorted({w for s in sentences for w in re.findall(r"[a-z']+", s.lower())})
        self.vocab = {w: i for i, w in enumerate(words)}
        x = self._features(sentences)
        penalty = self.alpha * np.eye(x.shape[1])
        penalty[-1, -1] = 0.0  # the bias is not shrunk
        self.weights = np.linalg.solve(x.T @ x + penalty, x.T @ targets)
        return self

    def predict(self, sentences: Sequence[str]) -> np.ndarray:
        out = np.clip(self._features(sentences) @ self.weights, 0.0, 1.0)
        out[:, 1] = np.maximum(out[:, 1], out[:, 0] + GRID_STEP)
        return out


def keyword_occurrence_rule(train: Sequence[dict[str, Any]]) -> dict[tuple[str, int], int]:
    """(keyword, number of occurrences) -> the occurrence index most often right on ``train`` entries
    (``{"keyword", "occurrence": [index, count]}``)."""
    counts: dict[tuple[str, int], dict[int, int]] = {}
    for entry in train:
        index, count = entry["occurrence"]
        votes = counts.setdefault((entry["keyword"], count), {})
        votes[index] = votes.get(index, 0) + 1
    return {key: max(sorted(votes), key=lambda i: votes[i]) for key, votes in counts.items()}


def audit(train: Sequence[MomentRecord], test: Sequence[MomentRecord], train_side: dict[Any, dict],
          test_side: dict[Any, dict]) -> dict[str, dict[str, float]]:
    """Every shortcut's score per test tag (and ``all``): ``{predictor: {tag: percent}}``; also ``count``."""
    train = [r for r in train if r.windows and r.duration]
    test = [r for r in test if r.windows and r.duration]
    if not train or not test:
        raise GroundingError("the shortcut audit needs training and test queries with a window and a duration")
    y_train, y_test = normalised_windows(train), normalised_all_windows(test)  # fitted on first windows
    overall = best_fixed_window(y_train)
    predictions = {"fixed_window": np.repeat(overall[None], len(test), 0)}
    key_train = np.array([keyword(r.query) for r in train])
    key_test = [keyword(r.query) for r in test]
    by_key = {k: best_fixed_window(y_train[key_train == k]) for k in ("", *KEYWORDS)}
    predictions["keyword_prior"] = np.array([by_key[k] for k in key_test])
    predictions["text_only"] = BagOfWordsRidge().fit([r.query for r in train], y_train).predict([r.query for r in test])
    groups: dict[str, list[int]] = {"all": list(range(len(test)))}
    for i, rec in enumerate(test):
        for tag in test_side.get(rec.qid, {}).get("tags", []):
            groups.setdefault(tag, []).append(i)
    out: dict[str, dict[str, float]] = {"count": {tag: float(len(rows)) for tag, rows in groups.items()}}
    for name, pred in predictions.items():
        out[name] = {tag: r1_at(pred[rows], y_test[rows]) for tag, rows in groups.items()}
    train_tags = [set(train_side.get(r.qid, {}).get("tags", [])) for r in train]
    out["tag_window"] = {"all": out["fixed_window"]["all"]}
    for tag, rows in groups.items():
        if tag != "all":
            subset = y_train[[tag in t for t in train_tags]] if any(tag in t for t in train_tags) else y_train
            out["tag_window"][tag] = r1_at(np.repeat(best_fixed_window(subset)[None], len(rows), 0), y_test[rows])
    relational = [dict(e, keyword=keyword(r.query)) for r in train if "occurrence" in (e := train_side.get(r.qid, {}))]
    if relational:
        rule = keyword_occurrence_rule(relational)
        out["keyword_occurrence"] = {}
        for tag, rows in groups.items():
            entries = [(test_side[test[i].qid], keyword(test[i].query)) for i in rows
                       if "occurrence" in test_side.get(test[i].qid, {})]
            if entries:
                right = [rule.get((k, e["occurrence"][1])) == e["occurrence"][0] for e, k in entries]
                out["keyword_occurrence"][tag] = 100.0 * float(np.mean(right))
    return out


def read_sidecar(path: Path) -> dict[Any, dict]:
    """``qid -> entry`` of a tags sidecar (``{"qid", "tags", ...}`` lines); empty when the file is absent."""
    if not path.is_file():
        return {}
    entries = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {e["qid"]: e for e in entries}


# each layout's annotation reader and held-out split
LAYOUT_FORMATS = {"charades": ("charades_sta", "test"), "qvhighlights": ("qvhighlights", "val"),
                  "long": ("activitynet", "test")}


def _split_files(root: Path, layout: str, split: str) -> tuple[Path, Path | None]:
    ann = root / "annotations"
    if layout == "qvhighlights":
        return ann / f"highlight_{split}_release.jsonl", None
    if layout == "long":
        return ann / f"{split}.json", None
    return ann / f"charades_sta_{split}.txt", ann / f"Charades_v1_{split}.csv"


def read_split(root: Path, layout: str, split: str) -> tuple[list[MomentRecord], dict[Any, dict]]:
    path, durations = _split_files(root, layout, split)
    if not path.is_file():
        raise GroundingError(f"{path} does not exist; write the benchmark first "
                             f"(tools/make_synthetic.py --out {root} --layout {layout})")
    records = read_annotations(LAYOUT_FORMATS[layout][0], path, durations)
    return records, read_sidecar(path.with_name(path.name.split(".")[0] + ".tags.jsonl"))


def audit_charades_folder(root: str | Path, train_split: str = "train", test_split: str = "test") -> dict[str, dict[str, float]]:
    """Audit a folder in the Charades-STA layout (such as the synthetic benchmark's)."""
    (train, train_side), (test, test_side) = (read_split(Path(root), "charades", s) for s in (train_split, test_split))
    return audit(train, test, train_side, test_side)


def _dense_saliency(record: MomentRecord, num_clips: int) -> np.ndarray:
    """(num_clips,) the annotators' mean score per 2 s clip, 0 outside ``relevant_clip_ids``."""
    dense = np.zeros(num_clips)
    ids = np.asarray(record.extra.get("relevant_clip_ids", []), dtype=int)
    if ids.size:
        dense[ids] = np.asarray(record.extra["saliency_scores"], dtype=float).mean(1)
    return dense


POSITION_BINS = 20


def eventness_features(feats: np.ndarray) -> np.ndarray:
    """(T, D + 2) what a query-blind saliency predictor reads from a video's clip features (T, D): each
    clip minus the video's per-dimension median (its background), that distance's norm, and a bias."""
    centred = feats - np.median(feats, axis=0, keepdims=True)
    return np.concatenate([centred, np.linalg.norm(centred, axis=1, keepdims=True), np.ones((len(feats), 1))], 1)


def fit_any_event(train: Sequence[MomentRecord], features: Callable[[str], np.ndarray],
                  alpha: float = 1.0) -> np.ndarray:
    """Ridge weights (D + 2,) from ``eventness_features`` to the mean annotated saliency of a clip over
    all the training queries of its video: "any event is salient", fitted without reading a query."""
    by_video: dict[str, list[MomentRecord]] = {}
    for rec in train:
        by_video.setdefault(rec.vid, []).append(rec)
    xs, ys = [], []
    for vid, recs in by_video.items():
        x = eventness_features(np.asarray(features(vid), dtype=float))
        xs.append(x)
        ys.append(np.mean([_dense_saliency(r, len(x)) for r in recs], axis=0))
    x, y = np.concatenate(xs), np.concatenate(ys)
    return np.linalg.solve(x.T @ x + alpha * np.eye(x.shape[1]), x.T @ y)


def highlight_baselines(train: Sequence[MomentRecord], test: Sequence[MomentRecord], seed: int = 0,
                        features: Callable[[str], np.ndarray] | None = None) -> dict[str, dict[str, float]]:
    """Official ``HL-min-*-mAP`` / ``-Hit1`` of saliency predictors that never read the query:
    ``random`` clip scores, and ``position_prior``, the training queries' mean score at each relative
    position in the video (``POSITION_BINS`` bins), which never see the video either; and, given
    ``features`` (video id -> (T, D) clip features, one per 2 s clip), ``any_event``: the video-aware,
    query-blind predictor of ``fit_any_event`` ("every event in the video is salient"). A saliency head
    only uses the query where it clears ``any_event``, and only uses the video where it clears the others."""
    from grounding.eval.qvhighlights import CLIP_SECONDS, evaluate_qvhighlights

    total, count = np.zeros(POSITION_BINS), np.zeros(POSITION_BINS)
    for rec in train:
        n = int(rec.duration / CLIP_SECONDS)
        bins = np.minimum(((np.arange(n) + 0.5) / n * POSITION_BINS).astype(int), POSITION_BINS - 1)
        np.add.at(total, bins, _dense_saliency(rec, n))
        np.add.at(count, bins, 1)
    prior = total / np.maximum(count, 1)
    weights = fit_any_event(train, features) if features is not None else None
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, float]] = {}
    for name in ("random", "position_prior") + (("any_event",) if features is not None else ()):
        predictions = []
        for rec in test:
            n = int(rec.duration / CLIP_SECONDS)
            bins = np.minimum(((np.arange(n) + 0.5) / n * POSITION_BINS).astype(int), POSITION_BINS - 1)
            if name == "random":
                scores = rng.random(n)
            elif name == "position_prior":
                scores = prior[bins] + 1e-6 * rng.random(n)  # ties broken at random
            else:
                scores = eventness_features(np.asarray(features(rec.vid), dtype=float))[:n] @ weights
            predictions.append({"qid": rec.qid, "pred_relevant_windows": [[0.0, rec.duration, 1.0]],
                                "pred_saliency_scores": scores.tolist()})
        brief = evaluate_qvhighlights(predictions, list(test))["brief"]
        out[name] = {k: v for k, v in brief.items() if k.startswith("HL-")}
    return out


def synthetic_layout(root: str | Path) -> str:
    """The layout recorded in a synthetic benchmark's ``synthetic_spec.json`` (``charades`` if none)."""
    marker = Path(root) / "synthetic_spec.json"
    return json.loads(marker.read_text()).get("layout", "charades") if marker.is_file() else "charades"


def audit_synthetic_folder(root: str | Path) -> dict[str, Any]:
    """The shortcut audit of a synthetic benchmark folder in any layout (Charades and long videos: train vs
    test; QVHighlights: train vs val, R1@0.5 against the window each prediction overlaps most, plus the
    video-free saliency baselines under ``highlight``)."""
    layout = synthetic_layout(root)
    if layout == "charades":
        return audit_charades_folder(root)
    (train, train_side), (val, val_side) = (read_split(Path(root), layout, s) for s in ("train", LAYOUT_FORMATS[layout][1]))
    result: dict[str, Any] = dict(audit(train, val, train_side, val_side))
    if layout == "qvhighlights":
        result["highlight"] = highlight_baselines(train, val)
    return result


def format_audit(result: dict[str, Any]) -> str:
    """A small text table: one row per predictor, one column per tag (R1@0.5 or accuracy, percent);
    then, where the audit has them, the saliency baselines' highlight metrics."""
    tags = [t for t in ("all", "plain", "temporal", "single", "repeated", "novel") if t in result["count"]]
    tags += [t for t in result["count"] if t not in tags]
    lines = ["shortcut (no video)    " + " ".join(f"{t + ' (' + str(int(result['count'][t])) + ')':>16}" for t in tags)]
    for name in ("fixed_window", "tag_window", "keyword_prior", "text_only", "keyword_occurrence"):
        if name in result:
            cells = [f"{result[name][t]:16.1f}" if t in result[name] else f"{'-':>16}" for t in tags]
            lines.append(f"{name:<22} " + " ".join(cells))
    if "highlight" in result:
        keys = list(next(iter(result["highlight"].values())))
        lines.append("saliency (no video)    " + " ".join(f"{k.removeprefix('HL-min-'):>16}" for k in keys))
        for name, values in result["highlight"].items():
            lines.append(f"{name:<22} " + " ".join(f"{values[k]:16.1f}" for k in keys))
    return "\n".join(lines)


__all__ = ["audit", "audit_charades_folder", "audit_synthetic_folder", "eventness_features", "fit_any_event",
           "highlight_baselines", "normalised_all_windows",
           "synthetic_layout", "best_fixed_window", "BagOfWordsRidge", "format_audit", "keyword",
           "keyword_occurrence_rule", "r1_at", "read_sidecar"]
