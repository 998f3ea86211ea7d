"""Is the described moment in this video at all? A calibrated probability from the shared space.

    s(q, v)  = max over v's proposal windows of cos(sentence q, moment embedding of the window)
    p(q in v) = sigmoid(a * s + b),   a, b from running class statistics of s (pooled-variance LDA)

Why the shared space: it is the one part of a grounding model trained to compare *across* videos (the
contrastive loss ranks a sentence's moment above other videos' moments), while the localisation heads are
normalised inside one video and score their best window highly whether or not the event happens. ``s``
is also the score moment search ranks videos by (``grounding.search``), so "not in this video" and the
library's video ranking agree. It costs nothing at inference: the clip projections already exist.

Why running statistics instead of a learnt logistic layer: during training every batch gives positive
pairs (a query and its own video) and negatives (the query against the batch's other videos). Under
Gaussian class-conditionals with one pooled variance, the posterior at a prior of 1/2 is exactly
``sigmoid(a * s + b)`` with ``a = (mu_pos - mu_neg) / var`` and ``b = -a * (mu_pos + mu_neg) / 2``. The
four moments are tracked as exponential moving averages (like BatchNorm's statistics), so they follow the
space as it trains, need no learning rate, and send no gradient into the model: a model with the part
switched off (``model.existence: false``) localises exactly as one with it.

The probability is calibrated for a prior of 1/2 (as many absent queries as present ones); for a prior
``pi`` add ``log(pi / (1 - pi))`` to the logit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from grounding.models.embedding import SharedEmbeddingSpace

if TYPE_CHECKING:
    from grounding.models.outputs import SpaceOutput

SCALES = (0.125, 0.25, 0.5, 1.0)  # proposal lengths as fractions of the video, the windows existence scores
STRIDE = 0.5  # proposal stride as a fraction of its length


def proposal_windows(num_clips: int, scales: Sequence[float] = SCALES, stride: float = STRIDE) -> np.ndarray:
    """Multi-scale sliding windows (P, 2) as first and last clip (inclusive) of a video of ``num_clips``
    clips: lengths ``scales`` x the video at a stride of ``stride`` x the length, the end always covered.
    The search index used these windows until it added 1/16 of the video (``grounding.search.embed``)."""
    out: list[tuple[int, int]] = []
    for scale in scales:
        length = max(1, round(scale * num_clips))
        step = max(1, round(stride * length))
        starts = list(range(0, max(num_clips - length, 0) + 1, step))
        if starts[-1] + length < num_clips:  # cover the end of the video too
            starts.append(num_clips - length)
        out += [(s, min(s + length, num_clips) - 1) for s in starts]
    return np.array(sorted(set(out)), dtype=np.int64).reshape(-1, 2)


def proposal_masks(clip_mask: torch.Tensor, scales: Sequence[float] = SCALES, stride: float = STRIDE) -> torch.Tensor:
    """``proposal_windows`` of every row (V, T) as clip masks (V, P, T); a row with fewer windows than the
    longest repeats its last one (a repeat never changes a maximum over windows)."""
    lengths = clip_mask.sum(1).clamp_min(1).tolist()
    windows = {n: proposal_windows(n, scales, stride) for n in set(lengths)}
    count = max(len(w) for w in windows.values())
    t = torch.arange(clip_mask.shape[1], device=clip_mask.device)
    out = torch.zeros(clip_mask.shape[0], count, clip_mask.shape[1], dtype=torch.bool, device=clip_mask.device)
    for n, w in windows.items():
        w = torch.from_numpy(np.concatenate([w, np.repeat(w[-1:], count - len(w), 0)])).to(clip_mask.device)
        rows = torch.tensor([i for i, m in enumerate(lengths) if m == n], device=clip_mask.device)
        out[rows] = ((t[None] >= w[:, :1]) & (t[None] <= w[:, 1:]))[None]
    return out & clip_mask[:, None, :]


def best_window_similarity(clip_proj: torch.Tensor, clip_mask: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
    """``s`` of every (sentence, video) pair: clip projections (V, T, E) and masks (V, T) of V videos,
    unit sentences (B, E) -> (B, V) best cosine over each video's proposal windows."""
    moments = F.normalize(SharedEmbeddingSpace.pool_moment(clip_proj.float(), proposal_masks(clip_mask)), dim=-1)
    return torch.einsum("be,vpe->bvp", sentence.float(), moments).amax(-1)


def own_window_similarity(clip_proj: torch.Tensor, clip_mask: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
    """``s`` of each query with its own video only: clip projections (B, T, E) and masks (B, T) of each query's
    video, unit sentences (B, E) -> (B,); what inference needs (the (B, V) matrix is for training)."""
    moments = F.normalize(SharedEmbeddingSpace.pool_moment(clip_proj.float(), proposal_masks(clip_mask)), dim=-1)
    return torch.einsum("be,bpe->bp", sentence.float(), moments).amax(-1)


@dataclass
class ExistenceOutput:
    """``similarity`` (B, V): ``s`` of query i against video v of the batch in training, (B, 1) against its own
    video in eval mode; ``positive`` (B, V) marks each query's own video; ``logits`` (B,): the calibrated
    log-odds that query i's moment is in its own video."""

    similarity: torch.Tensor
    positive: torch.Tensor
    logits: torch.Tensor

    def probability(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)


class ExistenceHead(nn.Module):
    """``s`` for every (query, batch video) pair, calibrated by running class statistics (see the module)."""

    def __init__(self, momentum: float = 0.02) -> None:
        super().__init__()
        self.momentum = momentum
        # E[s] and E[s^2] of positive and negative pairs; the initial values (s ~ 0.5 +- 0.2 vs 0 +- 0.2)
        # only matter for a model trained for a few steps
        self.register_buffer("stats", torch.tensor([0.5, 0.29, 0.0, 0.04]))

    def calibration(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a, b)`` of ``logit = a * s + b`` from the running statistics."""
        mu_p, sq_p, mu_n, sq_n = self.stats.unbind()
        var = (0.5 * (sq_p - mu_p**2 + sq_n - mu_n**2)).clamp_min(1e-4)
        a = (mu_p - mu_n) / var
        return a, -a * (mu_p + mu_n) / 2

    @torch.no_grad()
    def _update(self, similarity: torch.Tensor, positive: torch.Tensor) -> None:
        negative = ~positive
        if not negative.any():  # a batch of one video has no negatives
            return
        s = similarity.float()
        batch = torch.stack([s[positive].mean(), (s[positive] ** 2).mean(), s[negative].mean(), (s[negative] ** 2).mean()])
        self.stats.lerp_(batch, self.momentum)

    def forward(self, space: SpaceOutput, clip_mask: torch.Tensor, vid_index: torch.Tensor) -> ExistenceOutput:
        """``space``: the model's shared-space output (clip projections (B, T, E) per query row, each row
        its query's video, unit sentences (B, E)); ``clip_mask`` (B, T); ``vid_index`` (B,) which batch
        video each row shows."""
        clip_proj, sentence = space.clip_proj.detach(), space.sentence.detach()
        a, b = self.calibration()
        if not self.training:  # only each query's own video: (B, 1)
            own = own_window_similarity(clip_proj, clip_mask, sentence)
            return ExistenceOutput(own[:, None], torch.ones_like(own, dtype=torch.bool)[:, None], a * own + b)
        rows = len(vid_index)
        num_videos = int(vid_index.max()) + 1 if rows else 0
        # the first row of each video: the video side is the same in every row of one video
        first = torch.full((num_videos,), rows, device=vid_index.device).scatter_reduce(
            0, vid_index, torch.arange(rows, device=vid_index.device), "amin")
        videos = torch.arange(num_videos, device=vid_index.device)[first < rows]  # videos some query asks about
        first = first[videos]
        similarity = best_window_similarity(clip_proj[first], clip_mask[first], sentence)
        positive = vid_index[:, None] == videos[None]
        self._update(similarity, positive)
        a, b = self.calibration()
        own = (similarity * positive).sum(1)  # each query's own video
        return ExistenceOutput(similarity, positive, a * own + b)


__all__ = ["ExistenceHead", "ExistenceOutput", "best_window_similarity", "proposal_masks", "proposal_windows"]
