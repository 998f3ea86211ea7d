"""Backfilling: re-embedding the gallery with the new model, item by item, in a chosen order.

During a hot-refresh upgrade the new model serves queries at once while the gallery is re-embedded in
the background, so the gallery is *mixed*: the first ``round(f * G)`` items of the order carry new
embeddings, the rest still carry old ones. Orders (numpy only, from the old gallery alone; neither the
videos nor any query is needed):

- ``random``: a seeded permutation;
- ``uncertainty``: most uncertain first (RACT's uncertainty-based backfilling): each old gallery
  embedding is classified by the **old model's classifier** and the least confident go first. Grounding
  has no classes, so the classifier is the one BCT builds from old features: one row per *training*
  moment, its old embedding (``classifier``), ``p_g = softmax_c(o_g . w_c / t)``. ``entropy`` is the
  entropy of ``p_g`` over ``log C``; ``least_confidence`` is ``1 - max p_g``; ``margin`` is
  ``1 - (p_1 - p_2)`` (the two most probable classes). Without a classifier (``classifier=None``,
  **ours**, the earlier rule) the old gallery itself is the classifier, one class per item, itself
  included; ``margin`` then is ``(1 + s)/2`` with ``s`` the similarity to the closest other item.
  Why these items regress: a negative flip happens when a query the old system answered right now
  ranks a wrong item above its correct one. In a mixed gallery the new query meets backfilled wrong
  items through new-to-new similarities, which run higher than its new-to-old similarity to a
  still-old correct item; the old items the old model embeds ambiguously are the ones at risk and the
  ones the new model improves most, so refreshing them first should cut flips early.
"""

from __future__ import annotations

import numpy as np

from grounding.errors import GroundingError


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


KINDS = ("entropy", "least_confidence", "margin")


def uncertainty_scores(old_gallery: np.ndarray, kind: str = "entropy", temperature: float = 0.05,
                       chunk: int = 2048, classifier: np.ndarray | None = None) -> np.ndarray:
    """Uncertainty (G,) of each old gallery embedding (G, E) in [0, 1]; higher = more ambiguous.

    ``classifier`` (C, E): the old model's class rows (RACT's setting); None = the gallery itself (ours).
    """
    if kind not in KINDS:
        raise GroundingError(f"compat.backfill.uncertainty must be one of {', '.join(KINDS)}, not '{kind}'")
    gallery = _unit(np.asarray(old_gallery, dtype=np.float64))
    rows_of = _unit(np.asarray(classifier, dtype=np.float64)) if classifier is not None else gallery
    n, classes = len(gallery), len(rows_of)
    if n < 2 or classes < 2:
        return np.zeros(n)
    if kind == "least_confidence" and classifier is None:
        raise GroundingError("least_confidence needs the old classifier (compat.backfill.classifier: train)")
    scores = np.empty(n)
    for first in range(0, n, chunk):
        rows = np.arange(first, min(first + chunk, n))
        sim = gallery[rows] @ rows_of.T  # (c, C)
        if kind == "margin" and classifier is None:
            sim[np.arange(len(rows)), rows] = -np.inf  # the runner-up: the closest other item
            scores[rows] = (1 + sim.max(1)) / 2
            continue
        logits = sim / temperature
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        if kind == "entropy":
            scores[rows] = -(p * np.log(np.where(p > 0, p, 1.0))).sum(1) / np.log(classes)
        elif kind == "least_confidence":
            scores[rows] = 1 - p.max(1)
        else:
            top = np.sort(p, axis=1)[:, -2:]
            scores[rows] = 1 - (top[:, 1] - top[:, 0])
    return scores


def backfill_order(kind: str, old_gallery: np.ndarray, seed: int = 0, uncertainty: str = "entropy",
                   temperature: float = 0.05, classifier: np.ndarray | None = None) -> np.ndarray:
    """The order (G,) in which gallery items are re-embedded: ``random`` or ``uncertainty`` (highest first;
    ``classifier``: the old model's class rows, see ``uncertainty_scores``)."""
    n = len(old_gallery)
    if kind == "random":
        return np.random.default_rng(seed).permutation(n)
    if kind == "uncertainty":
        scores = uncertainty_scores(old_gallery, uncertainty, temperature, classifier=classifier)
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
