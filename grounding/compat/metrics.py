"""Text-to-moment retrieval metrics over a gallery of moment embeddings (numpy only, model-free).

Scores are dot products of unit embeddings (queries (Q, E) x gallery (G, E)). ``relevant`` is either
(Q,) ints (each query's single correct item) or a (Q, G) boolean matrix (any number of correct items).
Items are ranked by descending score, ties by gallery index. All metrics are percentages:

- ``R@k``: share of queries with a correct item among the top k;
- ``mAP``: mean over queries of average precision (with one correct item: the reciprocal rank);
- negative flip rate against a reference system: share of queries the reference answered right at
  rank 1 that the system under test answers wrong;
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
    return Retrieval(metrics, top1 & ok)


def negative_flip_rate(reference_hits: np.ndarray, hits: np.ndarray) -> float:
    """Percent of queries right (at rank 1) under the reference and wrong under the tested system."""
    reference_hits, hits = np.asarray(reference_hits, bool), np.asarray(hits, bool)
    return 100.0 * float((reference_hits & ~hits).mean()) if len(hits) else 0.0


def hot_refresh_curve(queries: np.ndarray, old_gallery: np.ndarray, new_gallery: np.ndarray, relevant: np.ndarray,
                      order: np.ndarray, fractions: Sequence[float], reference_hits: np.ndarray,
                      ks: Sequence[int] = KS) -> list[dict[str, float]]:
    """One row per fraction: ``fraction`` (0..1), the metrics of ``queries`` against the mixed gallery,
    and ``NFR`` against ``reference_hits`` (the old system's top-1 hits)."""
    rows = []
    for fraction in fractions:
        result = retrieve(queries, mixed_gallery(old_gallery, new_gallery, order, fraction), relevant, ks)
        rows.append({"fraction": float(fraction), **result.metrics,
                     "NFR": negative_flip_rate(reference_hits, result.hits)})
    return rows
