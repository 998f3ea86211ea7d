"""Compatible model upgrades on the shared embedding space: the algorithms and the metrics.

A deployed moment-retrieval system keeps a gallery of moment embeddings. These modules let a new
model be used against that gallery (backward compatibility), refresh it piece by piece without
regressions (hot refresh), and upgrade old gallery embeddings without the videos (forward adapter):

    objectives compatibility losses by name: l2, bct, ract, unibct (COMPAT_LOSSES)
    adapter    the BiCT forward adapter old -> new and its fit
    backfill   backfill orders (random, uncertainty) and mixed galleries
    metrics    R@k, mAP, negative flip rate, hot-refresh curves, bootstrap intervals (numpy only)

They see embeddings only, never a model, a trainer or an index, so they sit below the losses
(``grounding.losses.compat`` wraps the objectives as the trainer's ``compat`` term) and below
``grounding.search.upgrade``; they import nothing from losses/, engine/, search/ or studies/. The
studies that measure them (docs/compatibility.md) are in ``grounding.studies``.
"""

from grounding.compat.objectives import COMPAT_LOSSES, OldReference, build_compat_loss

__all__ = ["COMPAT_LOSSES", "OldReference", "build_compat_loss"]
