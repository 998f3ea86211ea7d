"""The shared video-text embedding space.

One small module with a fixed interface, used by CCMAN's alignment losses and, unchanged, by the
compatibility experiments (``grounding/compat``), which only ever call these three methods:

    embed_video(x)   (..., video_dim) clip or pooled-moment features -> (..., embed_dim), unit norm
    embed_text(x)    (..., text_dim) word or sentence features       -> (..., embed_dim), unit norm
    similarity(a, b) (N, E), (M, E) -> (N, M) cosine similarity divided by the temperature

The temperature is learnable unless ``learn_temperature`` is False (then it is used as given,
within [0.01, 1]). A learnable one is stored as its log and bounded to [0.01, 1] by a *smooth* clamp in log space (``soft_clamp``): half a unit of log or more
inside the range it is the identity (to 1e-4), exactly at a bound it gives 1.07x the floor (0.93x the
ceiling), and its gradient there is half the unclamped one instead of zero, so a temperature pushed
to the floor can still move back (a hard ``clamp`` freezes it there for good). An initial value
outside the range starts at the bound. ``pool_moment`` turns clip features and a moment mask into one moment feature, so that a
gallery of moments can be embedded without knowing the model that produced the clips.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 1.0


def soft_clamp(x: torch.Tensor, low: float, high: float, sharpness: float = 10.0) -> torch.Tensor:
    """``low + softplus(x - low) - softplus(x - high)`` (softplus of the given sharpness): ``x`` inside
    [low, high], ``low``/``high`` far outside, and a gradient that is never exactly zero near a bound."""
    return (low + F.softplus(x - low, beta=sharpness) - F.softplus(x - high, beta=sharpness))


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
        # start inside the bounds: far outside, the smooth clamp's gradient would be vanishingly small
        log_t = torch.tensor(math.log(min(max(temperature, MIN_TEMPERATURE), MAX_TEMPERATURE)))
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
        if not isinstance(self.log_temperature, nn.Parameter):  # fixed: no gradient to keep alive
            return self.log_temperature.exp().clamp(MIN_TEMPERATURE, MAX_TEMPERATURE)
        low, high = math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)
        return soft_clamp(self.log_temperature, low, high).exp()

    def embed_video(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.video_proj(x), dim=-1)

    def embed_text(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_proj(x), dim=-1)

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Pairwise cosine similarity of unit vectors (N, E) x (M, E) -> (N, M), over the temperature."""
        return a @ b.transpose(-1, -2) / self.temperature

    @staticmethod
    def pool_moment(clips: torch.Tensor, moment_mask: torch.Tensor) -> torch.Tensor:
        """Mean of the clips (B, T, D) inside each moment: a mask (B, T) gives (B, D), a mask (B, K, T) of K
        moments per row gives (B, K, D); an empty moment gives zeros."""
        weights = moment_mask.to(clips.dtype)
        if weights.dim() == clips.dim():  # (B, K, T): K moments of each row
            return torch.einsum("bkt,btd->bkd", weights, clips) / weights.sum(-1, keepdim=True).clamp_min(1.0)
        return (clips * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim=True).clamp_min(1.0)
