"""The shared video-text embedding space.

One small module with a fixed interface, used by CCMAN's alignment losses and, unchanged, by the
compatibility experiments (``grounding/compat``), which only ever call these three methods:

    embed_video(x)   (..., video_dim) clip or pooled-moment features -> (..., embed_dim), unit norm
    embed_text(x)    (..., text_dim) word or sentence features       -> (..., embed_dim), unit norm
    similarity(a, b) (N, E), (M, E) -> (N, M) cosine similarity divided by the temperature

The temperature is learnable (stored as its log, clamped to [0.01, 1]) unless ``learn_temperature``
is False. ``pool_moment`` turns clip features and a moment mask into one moment feature, so that a
gallery of moments can be embedded without knowing the model that produced the clips.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SharedEmbeddingSpace(nn.Module):
    def __init__(
        self,
        video_dim: int,
        text_dim: int,
        embed_dim: int = 256,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        hidden: int | None = None,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.video_proj = self._projection(video_dim, embed_dim, hidden)
        self.text_proj = self._projection(text_dim, embed_dim, hidden)
        log_t = torch.tensor(math.log(temperature))
        if learn_temperature:
            self.log_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer("log_temperature", log_t)

    @staticmethod
    def _projection(in_dim: int, out_dim: int, hidden: int | None) -> nn.Module:
        if hidden:
            return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))
        return nn.Linear(in_dim, out_dim)

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.exp().clamp(0.01, 1.0)

    def embed_video(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.video_proj(x), dim=-1)

    def embed_text(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_proj(x), dim=-1)

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Pairwise cosine similarity of unit vectors (N, E) x (M, E) -> (N, M), over the temperature."""
        return a @ b.transpose(-1, -2) / self.temperature

    @staticmethod
    def pool_moment(clips: torch.Tensor, moment_mask: torch.Tensor) -> torch.Tensor:
        """Mean of the clips (B, T, D) inside each moment (B, T) -> (B, D); an empty moment gives zeros."""
        weights = moment_mask.to(clips.dtype).unsqueeze(-1)
        return (clips * weights).sum(1) / weights.sum(1).clamp_min(1.0)
