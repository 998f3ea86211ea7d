"""Text-to-moment retrieval metrics over a gallery of moment embeddings (numpy only, model-free).

Scores are dot products of unit embeddings (queries (Q, E) x gallery (G, E)). ``relevant`` is either
(Q,) ints (each query's single correct item) or a (Q, G) boolean matrix (any number of correct items):
``relevance_by_description`` marks every gallery moment that a query's description fits, so that
equivalent moments of other videos count as correct.
Items are ranked by descending score, ties by gallery index. All metrics are percentages:

- ``R@k``: share of queries with a correct item among the top k;
- ``mAP``: mean over queries of average precision (with one correct item: the reciprocal rank);
- negative flip rate against a reference system: share of queries the reference answered right at
  rank 1 that the system under test answers wrong;
- confidence intervals: a percentile bootstrap over queries (``bootstrap_ci``), and for the difference
  of two systems on the same queries a paired bootstrap (``paired_difference``); a difference whose
  interval contains 0 is a *tie*;
- hot-refresh curve: the metrics and the negative flip rate of new queries against the gallery mixed
  at each backfilled fraction (``grounding.compat.backfill``).

Compatibility tests name who embeds what: *self* (new queries, new gallery), *cross* (new queries, old
gallery), *old self* (old queries, old gallery); an upgrade is compatible when cross > old self.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from grounding.compat.backfill import mixed_gallery

KS = (1, 5, 10)


@dataclass
class Retrieval:
    metrics: dict[str, float]  # R@k and mAP, in percent
    hits: np.ndarray  # (Q,) bool: correct item at rank 1
    ap: np.ndarray | None = None  # (Q,) average precision of each query (0 for a query without a correct item)
    valid: np.ndarray | None = None  # (Q,) bool: the query has at least one correct item


def _relevance_rows(relevant: np.ndarray, rows: slice, num_items: int) -> np.ndarray:
    if relevant.ndim == 1:
        part = relevant[rows]
        out = np.zeros((len(part), num_items), dtype=bool)
        out[np.arange(len(part)), part] = True
        return out
    return relevant[rows].astype(bool)


def retrieve(queries: np.ndarray, gallery: np.ndarray, relevant: np.ndarray, ks: Sequence[int] = KS,
             chunk: int = 1024) -> Retrieval:
    """R@k, mAP and top-1 hits of ``queries`` against ``gallery``; queries with no correct item are skipped."""
    queries, gallery, relevant = np.asarray(queries), np.asarray(gallery), np.asarray(relevant)
    num_items = len(gallery)
    hits_at = {k: [] for k in ks}
    aps, valid = [], []
    for first in range(0, len(queries), chunk):
        rows = slice(first, min(first + chunk, len(queries)))
        sim = queries[rows] @ gallery.T  # (c, G)
        order = np.argsort(-sim, axis=1, kind="stable")
        rel = np.take_along_axis(_relevance_rows(relevant, rows, num_items), order, axis=1)  # (c, G) sorted
        count = rel.sum(1)
        valid.append(count > 0)
        for k in ks:
            hits_at[k].append(rel[:, :k].any(1))
        precision = np.cumsum(rel, axis=1) / np.arange(1, num_items + 1)
        aps.append((precision * rel).sum(1) / np.maximum(count, 1))
    ok = np.concatenate(valid)
    metrics = {f"R@{k}": 100.0 * float(np.concatenate(hits_at[k])[ok].mean()) if ok.any() else 0.0 for k in ks}
    metrics["mAP"] = 100.0 * float(np.concatenate(aps)[ok].mean()) if ok.any() else 0.0
    top1 = np.concatenate(hits_at[1]) if 1 in hits_at else np.zeros(len(queries), dtype=bool)
    return Retrieval(metrics, top1 & ok, np.concatenate(aps) * ok, ok)


def negative_flip_rate(reference_hits: np.ndarray, hits: np.ndarray) -> float:
    """Percent of queries right (at rank 1) under the reference and wrong under the tested system."""
    reference_hits, hits = np.asarray(reference_hits, bool), np.asarray(hits, bool)
    return 100.0 * float((reference_hits & ~hits).mean()) if len(hits) else 0.0


def hot_refresh_curve(queries: np.ndarray, old_gallery: np.ndarray, new_gallery: np.ndarray, relevant: np.ndarray,
                      order: np.ndarray, fractions: Sequence[float], reference_hits: np.ndarray,
                      ks: Sequence[int] = KS, flips: list[np.ndarray] | None = None) -> list[dict[str, float]]:
    """One row per fraction: ``fraction`` (0..1), the metrics of ``queries`` against the mixed gallery,
    and ``NFR`` against ``reference_hits`` (the old system's top-1 hits). ``flips``, when given, receives
    each fraction's (Q,) bool negative flips (for confidence intervals)."""
    rows = []
    for fraction in fractions:
        result = retrieve(queries, mixed_gallery(old_gallery, new_gallery, order, fraction), relevant, ks)
        rows.append({"fraction": float(fraction), **result.metrics,
                     "NFR": negative_flip_rate(reference_hits, result.hits)})
        if flips is not None:
            flips.append(np.asarray(reference_hits, bool) & ~result.hits)
    return rows


def relevance_by_description(query_keys: Sequence[str], query_moment: np.ndarray, num_moments: int,
                             moment_keys: Sequence[set[str]] | None = None) -> np.ndarray:
    """(Q, G) bool: item g is correct for query q when q's description key is among g's keys.

    A moment's keys are the keys of every query that names it, plus ``moment_keys[g]`` (e.g. the
    canonical name of the event it shows); a query's own moment is always correct.
    """
    query_moment = np.asarray(query_moment)
    keys = [set(extra) for extra in moment_keys] if moment_keys is not None else [set() for _ in range(num_moments)]
    for key, moment in zip(query_keys, query_moment.tolist(), strict=True):
        keys[moment].add(key)
    index: dict[str, list[int]] = {}
    for g, names in enumerate(keys):
        for name in names:
            index.setdefault(name, []).append(g)
    relevant = np.zeros((len(query_keys), num_moments), dtype=bool)
    for q, key in enumerate(query_keys):
        relevant[q, index[key]] = True
    relevant[np.arange(len(query_keys)), query_moment] = True
    return relevant


def _resamples(count: int, samples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, count, size=(samples, count))


def bootstrap_ci(values: np.ndarray, samples: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval (percent) of the mean of per-query ``values`` (Q,) (0/1 or in [0, 1])."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return (0.0, 0.0)
    means = 100.0 * values[_resamples(len(values), samples, seed)].mean(1)
    tail = 100.0 * (1 - level) / 2
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def paired_difference(a: np.ndarray, b: np.ndarray, samples: int = 1000, level: float = 0.95,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a - b`` over the same queries and its paired bootstrap interval, in percent points."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    low, high = bootstrap_ci(diff, samples, level, seed)
    return 100.0 * float(diff.mean()) if len(diff) else 0.0, low, high


def verdict(low: float, high: float) -> str:
    """``higher``, ``lower`` or ``tie`` for a difference's interval (a tie when it contains 0)."""
    return "higher" if low > 0 else "lower" if high < 0 else "tie"
