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
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
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


def r1_at(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> float:
    """Percent of rows whose predicted window (N, 2) has IoU >= ``threshold`` with its target (N, 2)."""
    if len(gt) == 0:
        return float("nan")
    iou = pairwise_iou(pred[:, None], gt[:, None])[:, 0, 0]
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
    y_train, y_test = normalised_windows(train), normalised_windows(test)
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


def audit_charades_folder(root: str | Path, train_split: str = "train", test_split: str = "test") -> dict[str, dict[str, float]]:
    """Audit a folder in the Charades-STA layout (such as the synthetic benchmark's)."""
    ann = Path(root) / "annotations"
    splits = {}
    for split in (train_split, test_split):
        txt, csv = ann / f"charades_sta_{split}.txt", ann / f"Charades_v1_{split}.csv"
        if not txt.is_file():
            raise GroundingError(f"{txt} does not exist; write the benchmark first (tools/make_synthetic.py --out {root})")
        splits[split] = (read_annotations("charades_sta", txt, csv), read_sidecar(ann / f"charades_sta_{split}.tags.jsonl"))
    (train, train_side), (test, test_side) = splits[train_split], splits[test_split]
    return audit(train, test, train_side, test_side)


def format_audit(result: dict[str, dict[str, float]]) -> str:
    """A small text table: one row per predictor, one column per tag (R1@0.5 or accuracy, percent)."""
    tags = [t for t in ("all", "plain", "temporal", "novel") if t in result["count"]]
    tags += [t for t in result["count"] if t not in tags]
    lines = ["shortcut (no video)    " + " ".join(f"{t + ' (' + str(int(result['count'][t])) + ')':>16}" for t in tags)]
    for name in ("fixed_window", "tag_window", "keyword_prior", "text_only", "keyword_occurrence"):
        if name in result:
            cells = [f"{result[name][t]:16.1f}" if t in result[name] else f"{'-':>16}" for t in tags]
            lines.append(f"{name:<22} " + " ".join(cells))
    return "\n".join(lines)


__all__ = ["audit", "audit_charades_folder", "best_fixed_window", "BagOfWordsRidge", "format_audit", "keyword",
           "keyword_occurrence_rule", "r1_at", "read_sidecar"]
