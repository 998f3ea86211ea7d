"""Backfilling: re-embedding the gallery with the new model, item by item, in a chosen order.

During a hot-refresh upgrade the new model serves queries at once while the gallery is re-embedded in
the background, so the gallery is *mixed*: the first ``round(f * G)`` items of the order carry new
embeddings, the rest still carry old ones. Orders (numpy only, from the old gallery alone; neither the
videos nor any query is needed):

- ``random``: a seeded permutation;
- ``uncertainty``: most uncertain first. Treat the old gallery as the old model's classifier, one
  class per item (as BCT treats old features as classifier rows), and classify each item's own old
  embedding with it: ``p_g = softmax_j(o_g . o_j / t)`` over all items j, itself included.
  ``entropy`` is the entropy of ``p_g`` over ``log G``; ``margin`` is ``(1 + s)/2`` with ``s`` its
  similarity to the closest *other* item (the runner-up class). An isolated item is classified with
  confidence (score near 0); an item with close old neighbours is not.
  Why these items regress: a negative flip happens when a query the old system answered right now
  ranks a wrong item above its correct one. In a mixed gallery the new query meets backfilled wrong
  items through new-to-new similarities, which run higher than its new-to-old similarity to a
  still-old correct item; the old items at risk are those with close old neighbours (queries for
  them were won by a small margin, and their neighbours, once backfilled, overtake them), i.e. the
  uncertain ones. Refreshing them first takes them out of harm's way early, and they are also the
  items the old model separated worst, where the new model gains most.
"""

from __future__ import annotations

import numpy as np

from grounding.errors import GroundingError


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def uncertainty_scores(old_gallery: np.ndarray, kind: str = "entropy", temperature: float = 0.05,
                       chunk: int = 2048) -> np.ndarray:
    """Uncertainty (G,) of each old gallery embedding (G, E) in [0, 1]; higher = more ambiguous."""
    if kind not in ("entropy", "margin"):
        raise GroundingError(f"compat.backfill.uncertainty must be 'entropy' or 'margin', not '{kind}'")
    gallery = _unit(np.asarray(old_gallery, dtype=np.float64))
    n = len(gallery)
    if n < 2:
        return np.zeros(n)
    scores = np.empty(n)
    for first in range(0, n, chunk):
        rows = np.arange(first, min(first + chunk, n))
        sim = gallery[rows] @ gallery.T  # (c, G), the item itself included
        if kind == "entropy":
            logits = sim / temperature
            logits -= logits.max(1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(1, keepdims=True)
            scores[rows] = -(p * np.log(np.where(p > 0, p, 1.0))).sum(1) / np.log(n)
        else:
            sim[np.arange(len(rows)), rows] = -np.inf  # the runner-up: the closest other item
            scores[rows] = (1 + sim.max(1)) / 2
    return scores


def backfill_order(kind: str, old_gallery: np.ndarray, seed: int = 0, uncertainty: str = "entropy",
                   temperature: float = 0.05) -> np.ndarray:
    """The order (G,) in which gallery items are re-embedded: ``random`` or ``uncertainty`` (highest first)."""
    n = len(old_gallery)
    if kind == "random":
        return np.random.default_rng(seed).permutation(n)
    if kind == "uncertainty":
        scores = uncertainty_scores(old_gallery, uncertainty, temperature)
        return np.argsort(-scores, kind="stable")
    raise GroundingError(f"unknown backfill order '{kind}'; choose random or uncertainty")


def refreshed_count(num_items: int, fraction: float) -> int:
    return int(round(float(fraction) * num_items))


def mixed_gallery(old: np.ndarray, new: np.ndarray, order: np.ndarray, fraction: float) -> np.ndarray:
    """The gallery (G, E) after backfilling ``fraction`` of it: items ``order[:round(f * G)]`` are new."""
    if old.shape != new.shape:
        raise ValueError(f"old and new galleries differ in shape: {old.shape} vs {new.shape}")
    out = np.array(old, copy=True)
    refreshed = order[:refreshed_count(len(old), fraction)]
    out[refreshed] = new[refreshed]
    return out
