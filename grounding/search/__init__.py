"""Moment search over a video library on CCMAN's shared embedding space (docs/search.md).

    store     the on-disk pieces: segments, manifest, writer lock
    index     MomentIndex: entries, metadata, model table, FAISS structure
    embed     CCMAN's video side -> entries, query side -> sentence embeddings; model fingerprints
    model     a checkpoint as a search model (fingerprint, compatible spaces)
    build     indexing a split or a feature folder (incremental, resumable)
    searcher  Searcher: stage 1 (shared space) + stage 2 (CCMAN localisation), merged scores
    upgrade   forward adapter on stored embeddings; backfill with a mixed index
"""

from typing import Any

__all__ = ["MomentIndex", "Searcher"]


def __getattr__(name: str) -> Any:
    if name == "Searcher":
        from grounding.search.searcher import Searcher

        return Searcher
    if name == "MomentIndex":
        from grounding.search.index import MomentIndex

        return MomentIndex
    raise AttributeError(f"module 'grounding.search' has no attribute {name!r}")
