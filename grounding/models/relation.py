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

``WordRelations`` (``model.word_relations``, below) finds it: words grounded with their neighbours by a
multiple-instance loss, selections that can only choose words and are trained by their own loss (never by
the end task), grounded together, and the reference's side features into the fine stage's tokens and
logits (docs/model.md, "Word relations" and "Phrases grounded together").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from grounding.models.layers import AttentivePooling, masked_softmax

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


# ---------------------------------------------------------------------------------------------------------
# Word relations: every word grounded on its own, and each clip told where each word is relative to itself.

WORD_SCALES = (0.03, 0.1, 0.3)  # decay lengths of the word-position features, as fractions of the video
EVIDENCE_PRIOR = (2.0, -3.0)  # every selection head's initial weights on a word's sharpness and named-event share


@dataclass
class WordGrounding:
    """Lexical word embeddings and unimodal clip embeddings in the word-grounding space (unit norm), for
    the multiple-instance loss ``loss.word_grounding`` (``grounding.losses.relation``)."""

    words: torch.Tensor  # (B, L, E)
    clips: torch.Tensor  # (B, T, E)
    word_mask: torch.Tensor  # (B, L)
    clip_mask: torch.Tensor  # (B, T)
    vid_index: torch.Tensor  # (B,)
    scale: torch.Tensor  # () inverse temperature of the cosines
    references: torch.Tensor | None = None  # (B, H, T) each selection head's reference distribution over the clips


def word_side_features(grounding: torch.Tensor, mask: torch.Tensor, scales: Sequence[float]) -> torch.Tensor:
    """(B, L, T) L distributions over the clips (words, or references) -> (B, T, L, 2K + 3): for clip t and
    distribution j its mass strictly before t decayed at each scale, all of it before t, the same two after
    t, and at t (times the number of valid clips, so a distribution spread evenly reads 1 everywhere)."""
    t = grounding.shape[-1]
    pos = torch.arange(t, device=grounding.device, dtype=grounding.dtype)
    gap = pos[None, :] - pos[:, None]  # (T, T): u - t
    lengths = mask.sum(1).clamp_min(1).to(grounding.dtype)  # (B,)
    earlier, later = (gap < 0).to(grounding.dtype), (gap > 0).to(grounding.dtype)
    before, after = [], []
    for scale in (*scales, None):
        if scale is None:  # every clip before / after, undecayed
            decay = torch.ones_like(gap)[None].expand(len(lengths), t, t)
        else:
            decay = torch.exp(-gap.abs()[None] / (scale * lengths)[:, None, None])  # (B, T, T)
        before.append(torch.einsum("btu,blu->btl", decay * earlier, grounding))
        after.append(torch.einsum("btu,blu->btl", decay * later, grounding))
    at = grounding.transpose(1, 2) * lengths[:, None, None]
    return torch.stack(before + after + [at], dim=-1)


def word_evidence(grounding: torch.Tensor, mask: torch.Tensor, named: torch.Tensor | None) -> torch.Tensor:
    """(B, L, T) word groundings -> (B, L, 2): how sharply each word is grounded, ``log(max_t g · T)`` (0 for
    a word spread evenly, such as "a" or "person"), and how much of it lies where the named event is
    (``named`` (B, T): the relation cue's score, else the coarse focus) relative to an even spread,
    ``Σ_t g_t n_t / mean_t n_t`` (1 without a map). The named event's words lie on every occurrence of it;
    the reference's words are sharp and lie elsewhere."""
    lengths = mask.sum(1).clamp_min(1).to(grounding.dtype)  # (B,)
    sharp = torch.log((grounding.amax(-1) * lengths[:, None]).clamp_min(1e-6))
    if named is None:
        share = torch.ones_like(sharp)
    else:
        n = (named.detach() * mask).to(grounding.dtype)
        share = (grounding * n[:, None, :]).sum(-1) / (n.sum(1) / lengths).clamp_min(1e-6)[:, None]
    return torch.stack([sharp, share], dim=-1)


class WordRelations(nn.Module):
    """Where the sentence's other phrase is, read from its words grounded in the video, for every clip.

    1. Each word is grounded *with its neighbours*: its *lexical* embedding (before the query encoder's
       context layer, so "window" means a window whatever the sentence says elsewhere) plus a convolution
       over the two lexical words on each side (a local phrase: "carrying a towel" is one unit, which a
       decoy sharing one of its words does not match), against every unimodal clip, a softmax over clips.
       ``loss.word_grounding`` trains this by multiple-instance learning (a word of a sentence is shown
       somewhere in its video, not in the batch's other videos), so plain queries teach every word.
    2. ``heads`` learned word selections (the first reads only ``word_evidence``: words grounded sharply and
       away from where the named event is; the others also read the contextual words) are grounded
       *together* (``phrase_grounding``: the selection-weighted mean of the word vectors, so a clip must
       match every selected word) into ``heads`` reference distributions over the clips. The selections are
       trained by ``loss.word_reference_off_target`` alone (a reference lies off the ground-truth moment and
       on one event), never by the end task: a selection the end task trains turns into a second detector
       of the target (docs/model.md).
    3. For each clip and reference, ``word_side_features``: its mass just before / just after the clip at a
       few scales, at all, and at the clip. Embedded and gated by a relation vector (a pooling of the
       contextual words: "before" or "after" decides which side counts) and added to the clip tokens that
       enter the fine stage (the fine stage: which occurrence, and its boundaries); and, weighted by the
       same relation vector, added to the fine stage's start/end/inside logits (a direct, bilinear path).

    No parser and no word list: which words are the reference and which side matters is learnt.
    """

    def __init__(self, dim: int, embed_dim: int, heads: int = 2, scales: Sequence[float] = WORD_SCALES) -> None:
        super().__init__()
        self.heads, self.scales = heads, tuple(scales)
        self.word_proj = nn.Linear(dim, embed_dim)
        # each word grounded with its neighbours (a verb and its object are two words apart in "carrying a
        # towel"): a local phrase, so a decoy sharing one word with the phrase does not match it
        self.phrase = nn.Conv1d(dim, dim, kernel_size=5, padding=2)
        nn.init.zeros_(self.phrase.weight)
        nn.init.zeros_(self.phrase.bias)
        self.clip_proj = nn.Linear(dim, embed_dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))  # cosine -> grounding logit
        self.select_words = nn.Linear(dim, dim)
        self.select_sentence = nn.Linear(dim, dim)
        self.select = nn.Linear(dim, heads)
        # (2, H): how each head weighs a word's sharpness and its share of the named event's map (``word_evidence``)
        prior = torch.zeros(len(EVIDENCE_PRIOR), heads)
        prior[:] = torch.tensor(EVIDENCE_PRIOR)[:, None]  # every head starts from the evidence; content refines it
        self.evidence_weight = nn.Parameter(prior)
        # the end task pulls a content-reading selection onto the target's words (docs/model.md), so the
        # first head selects from the evidence alone
        self.register_buffer("reads_content", (torch.arange(heads) > 0).float(), persistent=False)
        self.relation = AttentivePooling(dim, cond_dim=dim)
        features = heads * (2 * (len(self.scales) + 1) + 1)
        self.embed = nn.Linear(features, dim)
        self.gate = nn.Linear(dim, dim)
        # a direct path to the fine stage's start/end/inside logits: the features weighted by the relation
        # vector (bilinear), zero at the start so training begins from the cascade without it
        self.readout = nn.Linear(dim, 3 * features)
        nn.init.zeros_(self.readout.weight)
        nn.init.zeros_(self.readout.bias)

    def ground(self, clips: torch.Tensor, lexical: torch.Tensor, clip_mask: torch.Tensor, word_mask: torch.Tensor,
               vid_index: torch.Tensor) -> tuple[torch.Tensor, WordGrounding]:
        """(B, L, T) each word's distribution over the clips, and the embeddings for the loss."""
        local = lexical * word_mask.unsqueeze(-1).to(lexical.dtype)
        local = local + self.phrase(local.transpose(1, 2)).transpose(1, 2)
        words = F.normalize(self.word_proj(local), dim=-1)
        video = F.normalize(self.clip_proj(clips), dim=-1)
        scale = self.log_scale.exp().clamp(1.0, 100.0)
        logits = torch.einsum("ble,bte->blt", words, video).float() * scale
        grounding = masked_softmax(logits, clip_mask[:, None, :].expand_as(logits))
        return grounding, WordGrounding(words, video, word_mask, clip_mask, vid_index, scale)

    def selection(self, words: torch.Tensor, word_mask: torch.Tensor, sentence: torch.Tensor,
                  evidence: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H, L): each head's weights over the real words; ``evidence`` (B, L, 2) from ``word_evidence``
        enters each head's logits with learned weights. Every head starts out preferring words grounded
        sharply and away from the named event; the first reads the evidence only, the others also the words."""
        hidden = torch.tanh(self.select_words(words) + self.select_sentence(sentence).unsqueeze(1))
        logits = self.select(hidden) * self.reads_content  # (B, L, H); the first head reads the evidence only
        if evidence is not None:
            logits = logits + evidence.to(logits.dtype) @ self.evidence_weight
        logits = logits.transpose(1, 2)
        return masked_softmax(logits, word_mask[:, None, :].expand_as(logits))

    def phrase_grounding(self, select: torch.Tensor, out: WordGrounding) -> torch.Tensor:
        """(B, H, T): each head's selected words grounded *together*: the selection-weighted mean of the
        words' unit vectors against every clip, a softmax over clips. A clip must match every selected word
        to win (a conjunction), so a decoy that shares one word with the reference loses to the reference,
        and a word every clip matches alike ("a", "person") only adds a constant. The words enter detached:
        the end task chooses words, it cannot move where a word is."""
        phrase = select.to(out.words.dtype) @ out.words.detach()  # (B, H, E)
        logits = torch.einsum("bhe,bte->bht", phrase, out.clips.detach()).float() * out.scale.detach()
        return masked_softmax(logits, out.clip_mask[:, None, :].expand_as(logits))

    def forward(self, state: Any, clips: torch.Tensor, words: torch.Tensor, lexical: torch.Tensor,
                vid_index: torch.Tensor) -> tuple[Any, WordGrounding]:
        """``clips`` (B, T, D) unimodal clip tokens, ``words`` (B, L, D) contextual word tokens, ``lexical``
        (B, L, D) the words before their context layer; the cue is added to ``state.clips``."""
        c_mask, w_mask = state.clip_mask, state.word_mask
        grounding, out = self.ground(clips, lexical, c_mask, w_mask, vid_index)
        # where the named event is: the relation cue's shared-space score when the cue is on (it detects the
        # named event, docs/model.md), else the coarse focus; the named event's words lie there, the reference's not
        named = state.reference if state.reference is not None else state.focus
        select = self.selection(words, w_mask, state.sentence, word_evidence(grounding.detach(), c_mask, named))
        reference = self.phrase_grounding(select, out)  # (B, H, T): each head's reference over the clips
        # the end task reads the references but does not choose their words: only the reference's own loss does
        feats = word_side_features(reference.detach(), c_mask, self.scales)  # (B, T, H, F)
        relation, _ = self.relation(words, w_mask, state.sentence)
        flat = feats.flatten(2).to(state.clips.dtype)  # (B, T, H F)
        cue = self.embed(flat) * torch.sigmoid(self.gate(relation)).unsqueeze(1)
        bias = torch.einsum("btf,bfk->btk", flat, self.readout(relation).view(len(flat), flat.shape[-1], 3))
        # the first head's reference is what figures and analyses draw as the stage's "reference"
        return replace(state, clips=state.clips + cue * c_mask.unsqueeze(-1).to(cue.dtype),
                       reference=reference[:, 0], logit_bias=bias), replace(out, references=reference)


class NoWordRelations(nn.Module):
    """The switched-off word relations: the state goes on unchanged and nothing is grounded."""

    def forward(self, state: Any, clips: torch.Tensor, words: torch.Tensor, lexical: torch.Tensor | None,
                vid_index: torch.Tensor) -> tuple[Any, None]:
        return state, None


__all__ = ["DEFAULT_SCALES", "EVIDENCE_PRIOR", "WORD_SCALES", "NoRelationCue", "NoWordRelations", "RelationCue",
           "WordGrounding", "WordRelations", "side_mass", "word_evidence", "word_side_features"]
