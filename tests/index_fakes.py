"""A model and a library for index tests without training (shared by the index tests and the backfill worker
they run as a subprocess)."""

from __future__ import annotations

import numpy as np
import torch

from grounding.models.embedding import SharedEmbeddingSpace
from grounding.models.shared_space import rows_of
from grounding.search.build import LibraryVideo
from grounding.search.embed import embed_videos

DIM, FEAT = 8, 6


class FakeModel:
    """Embeds a moment by a fixed linear map of its mean features (what the index code needs of a model);
    two seeds are two genuinely different spaces."""

    temperature = 0.07

    def __init__(self, seed: int = 0, dim: int = DIM) -> None:
        self.weight = torch.from_numpy(np.random.default_rng(seed).normal(size=(FEAT, dim)).astype(np.float32))
        self.fingerprint, self.embed_dim, self.path = f"fake{seed}", dim, f"fake{seed}.pt"

    def answers(self, space: str) -> bool:
        return space == self.fingerprint

    def embed_moments(self, video, video_mask, moment_mask, vid_index=None):
        rows = rows_of(moment_mask, vid_index)
        pooled = SharedEmbeddingSpace.pool_moment((video @ self.weight)[rows], moment_mask & video_mask[rows])
        return torch.nn.functional.normalize(pooled, dim=-1)

    def embed_videos(self, features, durations, granularity):
        return embed_videos(self, features, durations, granularity, torch.device("cpu"))


def library(n: int, seed: int = 0) -> tuple[list[LibraryVideo], dict[str, np.ndarray]]:
    """``n`` videos of 16 random clips, 32 s each (42 proposal entries apiece)."""
    rng = np.random.default_rng(seed)
    feats = {f"v{i:03d}": rng.normal(size=(16, FEAT)).astype(np.float32) for i in range(n)}
    return [LibraryVideo(v, 32.0) for v in feats], feats
