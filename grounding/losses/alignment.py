"""Alignment losses: pull the video and text embeddings together in the shared space.

All of them read the *unimodal* encodings (``video_tokens`` (B, T, D), ``sentence`` (B, D)), so that
the two encoders themselves become aligned, and go through ``model.embedding`` (the
``SharedEmbeddingSpace``), the same module the compatibility experiments use.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from grounding.losses.base import LOSSES, Loss


@LOSSES.register("contrastive")
class SentenceMomentContrastive(Loss):
    """Symmetric InfoNCE across the batch between sentence i and ground-truth moment i.

    ``L = (CE(S, I) + CE(S^T, I)) / 2`` with ``S_ij = cos(text_i, moment_j) / tau``. Another query of the
    *same video* is not used as a negative for sentence i (its moment may overlap), so pairs with
    ``vid_i == vid_j, i != j`` are masked out.
    """

    def forward(self, outputs: dict[str, Any], batch: dict[str, Any], model: nn.Module) -> torch.Tensor:
        space = model.embedding
        moments = space.embed_video(space.pool_moment(outputs["video_tokens"], batch["inside"] > 0))
        sentences = space.embed_text(outputs["sentence"])
        sim = space.similarity(sentences, moments).float()  # (B, B)
        if "vid_index" in batch:
            same = batch["vid_index"][:, None] == batch["vid_index"][None, :]
        else:
            vids = batch["vid"]
            same = torch.tensor([[a == b for b in vids] for a in vids], device=sim.device)
        same = same & ~torch.eye(len(same), dtype=torch.bool, device=sim.device)
        sim = sim.masked_fill(same, torch.finfo(sim.dtype).min)
        target = torch.arange(sim.shape[0], device=sim.device)
        return (F.cross_entropy(sim, target) + F.cross_entropy(sim.t(), target)) / 2


@LOSSES.register("clip_alignment")
class IntraVideoClipAlignment(Loss):
    """Clips inside the moment must be closer to the sentence than clips outside it (same video).

    Multi-positive InfoNCE over the clips of each video: ``-log(sum_in exp(s_t) / sum_all exp(s_t))``
    with ``s_t = cos(text, clip_t) / tau``; queries whose moment covers the whole video are skipped.
    """

    def forward(self, outputs: dict[str, Any], batch: dict[str, Any], model: nn.Module) -> torch.Tensor:
        space = model.embedding
        mask, inside = batch["video_mask"], batch["inside"] > 0
        clips = space.embed_video(outputs["video_tokens"])  # (B, T, E)
        text = space.embed_text(outputs["sentence"])  # (B, E)
        sim = (torch.einsum("bte,be->bt", clips, text) / space.temperature).float()
        neg = torch.finfo(sim.dtype).min
        log_all = torch.logsumexp(sim.masked_fill(~mask, neg), dim=1)
        log_in = torch.logsumexp(sim.masked_fill(~inside, neg), dim=1)
        valid = inside.any(1) & (inside.sum(1) < mask.sum(1))
        if not valid.any():
            return sim.sum() * 0
        return (log_all - log_in)[valid].mean()


@LOSSES.register("attention_guidance")
class AttentionGuidance(Loss):
    """``-log(sum_{t in moment} a_t)`` for every stage's query-guided temporal pooling weights ``a``."""

    def forward(self, outputs: dict[str, Any], batch: dict[str, Any], model: nn.Module) -> torch.Tensor:
        terms = [
            -torch.log((stage["attn"].float() * batch["inside"]).sum(1).clamp_min(1e-6)).mean()
            for stage in outputs["stages"].values()
            if "attn" in stage
        ]
        return torch.stack(terms).mean() if terms else batch["video"].sum() * 0
