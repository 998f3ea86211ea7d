"""Relation-aware grounding: where the sentence's *reference* event is, relative to every clip.

A relational query ("X before Y") names a target X and a reference Y, and which occurrence of X it means
depends on where Y is. The cascade pools the sentence into one vector that mixes X and Y, so it finds
every X and then nearly guesses among them (docs/model.md, "Error analysis of relational queries").
``RelationCue`` gives the fine stage what it lacks, inside the cascade's story (coarse: where the events
are; fine: which one, and its boundaries):

1. a second pooling of the (unimodal) words into a *context* vector ``c``, with its own learned attention
   taken away from the words the sentence vector rests on (times ``1 - word_attn``): the other phrase
   (no parser, no keyword list);
2. a per-clip reference score ``r_t = σ(a · (cos(P_v v_t, P_t c) − b))`` in the shared embedding space
   (``grounding.models.embedding``), whose alignment losses already teach it to match a pooled phrase to
   the clips it describes (a first version scored clips with a fresh MLP; it learnt to find X, not Y:
   docs/model.md);
3. for each clip, how much reference lies just before and just after it at a few temporal scales
   ``τ_k`` (fractions of the video's length)::

       before_t^k = Σ_{u<t} r_u exp(-(t-u)/τ_k),   after_t^k = Σ_{u>t} r_u exp(-(u-t)/τ_k)

   these ``2K + 1`` numbers (with ``r_t``) are embedded and gated by the sentence (the relation word
   decides which side matters) and added to the clip tokens entering the fine stage.

The short scales make the *nearest* occurrence on the right side stand out; the fine stage's clip-word
and local attention then choose. ``model.relation_cue=false`` (``NoRelationCue``, the default) leaves the
state as it is.

What it does in practice (docs/model.md, "Relation-aware grounding"): on the v4 benchmark it adds 8.6
points R1@0.5 (3 seeds), but the reference score it learns peaks on the *target* event, not on the
reference: it works as a second, shared-space detector of the named event (boundary errors halve), and
the occurrence of a relational query is still chosen about as well as without it. Versions that keep the
reference off the target (``loss.reference_off_target``, a context that avoids the focused moment's
words) did not find the reference either within 6 epochs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from grounding.models.layers import AttentivePooling

DEFAULT_SCALES = (0.02, 0.06, 0.2)  # decay lengths, as fractions of the video's clips


def side_mass(reference: torch.Tensor, mask: torch.Tensor, scales: Sequence[float]) -> torch.Tensor:
    """(B, T) reference scores -> (B, T, 2K): decayed reference mass strictly before, then strictly after,
    each clip, one pair per scale (``scale * valid clips`` is the decay length in clips)."""
    t = reference.shape[1]
    pos = torch.arange(t, device=reference.device, dtype=reference.dtype)
    gap = pos[None, :] - pos[:, None]  # (T, T): u - t
    lengths = mask.sum(1).clamp_min(1).to(reference.dtype)  # (B,)
    r = (reference * mask).unsqueeze(-1)  # (B, T, 1)
    before, after = [], []
    for scale in scales:
        decay = torch.exp(-gap.abs()[None] / (scale * lengths)[:, None, None])  # (B, T, T)
        before.append(torch.bmm(decay * (gap < 0), r))
        after.append(torch.bmm(decay * (gap > 0), r))
    return torch.cat(before + after, dim=-1)


class RelationCue(nn.Module):
    """The reference event's position relative to each clip, added to the clip tokens (module docstring)."""

    def __init__(self, dim: int, scales: Sequence[float] = DEFAULT_SCALES) -> None:
        super().__init__()
        self.scales = tuple(scales)
        self.context = AttentivePooling(dim, cond_dim=dim)
        self.match_scale = nn.Parameter(torch.tensor(10.0))  # reference score = σ(scale · (cos − offset))
        self.match_offset = nn.Parameter(torch.tensor(0.2))
        self.embed = nn.Linear(2 * len(self.scales) + 1, dim)
        self.gate = nn.Linear(dim, dim)

    def context_vector(self, words: torch.Tensor, word_mask: torch.Tensor, sentence: torch.Tensor,
                       word_attn: torch.Tensor) -> torch.Tensor:
        """(B, D): the words pooled a second time, away from the ones the sentence vector rests on
        (weights times ``1 - word_attn``, renormalised), so the context is the *other* phrase."""
        _, weights = self.context(words, word_mask, sentence)
        weights = weights * (1.0 - word_attn) * word_mask
        weights = weights / weights.sum(1, keepdim=True).clamp_min(1e-6)
        return torch.bmm(weights.unsqueeze(1), words).squeeze(1)

    def forward(self, state: Any, clips: torch.Tensor, words: torch.Tensor, word_attn: torch.Tensor,
                space: Any) -> Any:
        """``clips`` (B, T, D), ``words`` (B, L, D), ``word_attn`` (B, L): the unimodal encodings and the
        sentence pooling's weights; ``space``: the shared embedding space, whose alignment losses already
        teach it to match a pooled phrase to the clips it describes."""
        mask = state.clip_mask
        context = self.context_vector(words, state.word_mask, state.sentence, word_attn)
        cosine = torch.einsum("btd,bd->bt", space.embed_video(clips), space.embed_text(context))  # (B, T)
        reference = torch.sigmoid(self.match_scale * (cosine.float() - self.match_offset)) * mask
        cues = torch.cat([side_mass(reference, mask, self.scales), reference.unsqueeze(-1)], dim=-1)
        cue = self.embed(cues.to(state.clips.dtype)) * torch.sigmoid(self.gate(state.sentence)).unsqueeze(1)
        return replace(state, clips=state.clips + cue * mask.unsqueeze(-1).to(cue.dtype), reference=reference)


class NoRelationCue(nn.Module):
    """The switched-off cue: the state goes on unchanged."""

    def forward(self, state: Any, clips: torch.Tensor, words: torch.Tensor, word_attn: torch.Tensor,
                space: Any) -> Any:
        return state


__all__ = ["DEFAULT_SCALES", "NoRelationCue", "RelationCue", "side_mass"]
