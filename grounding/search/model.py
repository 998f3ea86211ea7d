"""A trained checkpoint as a search model: its fingerprint, the spaces it can query, its two encoders.

A model *answers* a space (the fingerprint of the model that embedded an index's entries) when it is
that model, or when it was trained to be compatible with it: ``tools/train_grounding.py
compat.old_checkpoint=OLD`` stores OLD's fingerprint in the new checkpoint (``compatible_with``), so the
new model's queries may search OLD's index (cross-test) without re-indexing it. Loading, the fingerprint
and the shared-space interface come from ``grounding.inference``; this class only turns them into the
numpy arrays the index stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from grounding.inference import LoadedModel, load_for_inference
from grounding.inference.queries import check_queries
from grounding.search.embed import Granularity, embed_videos


@dataclass
class SearchModel:
    loaded: LoadedModel

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> SearchModel:
        loaded = load_for_inference(path, device)
        loaded.space  # noqa: B018 - refuses a model without a shared embedding space, naming the checkpoint
        return cls(loaded)

    @property
    def fingerprint(self) -> str:
        return self.loaded.fingerprint

    @property
    def compatible_with(self) -> list[str]:
        return self.loaded.compatible_with

    @property
    def embed_dim(self) -> int:
        return self.loaded.space.embed_dim

    @property
    def path(self) -> Path:
        return self.loaded.path

    def answers(self, space: str) -> bool:
        return self.loaded.answers(space)

    @torch.inference_mode()
    def embed_queries(self, queries: list[str]) -> np.ndarray:
        """(Q, E) unit embeddings; an empty or blank query is refused."""
        items, _ = check_queries([str(q) for q in queries])
        words, mask, _ = self.loaded.encode_queries(items)
        return self.loaded.space.embed_sentences(words, mask).float().cpu().numpy()

    def embed_videos(self, features: list[np.ndarray], durations: list[float], granularity: Granularity
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
        return embed_videos(self.loaded.space, features, durations, granularity, self.loaded.device)
