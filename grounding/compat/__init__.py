"""Compatible model upgrades on the shared embedding space (docs/compatibility.md).

A deployed moment-retrieval system keeps a gallery of moment embeddings. These modules let a new
model be used against that gallery (backward compatibility), refresh it piece by piece without
regressions (hot refresh), and upgrade old gallery embeddings without the videos (forward adapter):

    objectives compatibility losses by name: l2, bct, ract, unibct (COMPAT_LOSSES)
    adapter    the BiCT forward adapter old -> new and its training
    backfill   backfill orders (random, uncertainty) and mixed galleries
    metrics    R@k, mAP, negative flip rate, hot-refresh curves (numpy only)
    data       a split as cached tensors of videos, queries and moments
    model      the study's retrieval model (DualEncoder) and split embedding
    train      the training loop of one model
    study      the whole study behind tools/train_compat.py
    report     results.csv, hot_refresh.csv/.png, summary.md, the claim check
"""

from grounding.compat.objectives import COMPAT_LOSSES, OldReference, build_compat_loss

__all__ = ["COMPAT_LOSSES", "OldReference", "build_compat_loss"]
