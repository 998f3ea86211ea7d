"""A trained checkpoint as a search model: its fingerprint, the spaces it can query, its two encoders.

A model *answers* a space (the fingerprint of the model that embedded an index's entries) when it is
that model, or when it was trained to be compatible with it: ``tools/train_grounding.py
compat.old_checkpoint=OLD`` stores OLD's fingerprint in the new checkpoint (``compatible_with``), so the
new model's queries may search OLD's index (cross-test) without re-indexing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grounding.api.loading import LoadedCheckpoint, encode_queries, load_for_inference, resolve_checkpoint
from grounding.engine.checkpoint import load_checkpoint
from grounding.errors import GroundingError
from grounding.search.embed import Granularity, embed_sentences, embed_videos, model_fingerprint


@dataclass
class SearchModel:
    loaded: LoadedCheckpoint
    fingerprint: str
    compatible_with: list[str]

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> SearchModel:
        loaded = load_for_inference(path, device)
        if not hasattr(loaded.model, "video_encoder") or not hasattr(loaded.model, "embedding"):
            raise GroundingError(f"{loaded.path} is a '{loaded.config['model'].get('name')}' model without a shared "
                                 "embedding space; moment search needs a CCMAN checkpoint (model.name=ccman)")
        state = load_checkpoint(resolve_checkpoint(path), "cpu")
        return cls(loaded, model_fingerprint(loaded.model), list(state.get("compatible_with") or []))

    @property
    def embed_dim(self) -> int:
        return int(self.loaded.model.embedding.embed_dim)

    @property
    def path(self) -> Path:
        return self.loaded.path

    def answers(self, space: str) -> bool:
        return space == self.fingerprint or space in self.compatible_with

    def embed_queries(self, queries: list[str]) -> np.ndarray:
        """(Q, E) unit embeddings; an empty or blank query is refused."""
        blank = [i for i, q in enumerate(queries) if not str(q).strip()]
        if blank:
            raise GroundingError(f"query {blank[0] + 1} of {len(queries)} is empty; give a sentence to search for")
        words, mask, _ = encode_queries(self.loaded, [str(q) for q in queries])
        return embed_sentences(self.loaded.model, words, mask)

    def embed_videos(self, features: list[np.ndarray], durations: list[float], granularity: Granularity
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
        return embed_videos(self.loaded.model, features, durations, granularity, self.loaded.device)
