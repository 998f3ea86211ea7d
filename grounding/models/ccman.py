"""CCMAN: the Cascade Cross-Modality Alignment Network.

    video ─ VideoEncoder ─┐                         ┌─ coarse start/end/relevance ─┐ focus
    query ─ QueryEncoder ─┴─ CoarseStage (global) ──┤                              ▼
                                                    └─ tokens ───────────── FineStage (local) ─ start/end/inside,
                                                                                               refined span
The coarse stage sees *global* context (each clip fused with the whole sentence, each word with the
whole video, then cross-modal attention); the fine stage looks *locally* (clip-word cross-attention
and windowed clip-clip attention), focused on where the coarse stage put the moment. Alignment losses
act on the unimodal encodings through the shared embedding space (``grounding/models/embedding.py``).

Ablations swap a part for one that passes its input through (``model.stages``, ``model.focus``,
``model.relation_cue``, ``model.word_relations``), so ``CCMAN.forward`` is the same cascade for every variant.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from grounding.data.batch import Batch
from grounding.models.embedding import SharedEmbeddingSpace
from grounding.models.encoders import EncoderSettings, build_encoders, encode_batch
from grounding.models.existence import ExistenceHead
from grounding.models.heads import BoundaryHeads, SaliencyHead, expected_span, inside_probability
from grounding.models.layers import MLP, AttentionBlock, AttentivePooling, BandBias, GlobalFusion
from grounding.models.outputs import GroundingOutput, SpaceOutput, StageOutput
from grounding.models.relation import NoRelationCue, NoWordRelations, RelationCue, WordRelations
from grounding.models.shared_space import SharedSpaceEncoders


@dataclass
class CCMANConfig(EncoderSettings):
    coarse_layers: int = 1
    fine_layers: int = 2
    local_window: int = 6  # clips on each side in the fine stage's temporal attention
    stages: list[str] = field(default_factory=lambda: ["coarse", "fine"])
    focus: bool = True  # coarse-to-fine focusing (off = plain cascade of features)
    focus_source: str = "both"  # span | relevance | both
    relation_cue: bool = False  # the reference event's position as a fine-stage cue (grounding.models.relation)
    word_relations: bool = False  # the reference read from words grounded one by one (grounding.models.relation)
    embed_dim: int = 128
    temperature: float = 0.07


@dataclass
class CascadeState:
    """What flows from one stage to the next."""

    clips: torch.Tensor  # (B, T, D)
    clip_mask: torch.Tensor  # (B, T)
    words: torch.Tensor  # (B, L, D)
    word_mask: torch.Tensor  # (B, L)
    sentence: torch.Tensor  # (B, D)
    focus: torch.Tensor | None = None  # (B, T) where the previous stage put the moment, in [0, 1]
    span: torch.Tensor | None = None  # (B, 2) the previous stage's span
    reference: torch.Tensor | None = None  # (B, T) where the sentence's reference event is (relation cue, or word
    # relations when on: their first head's distribution)
    logit_bias: torch.Tensor | None = None  # (B, T, 3) added to the next stage's start/end/inside logits (word relations)


class PassThrough(nn.Module):
    """A switched-off stage: the state goes on unchanged and the stage predicts nothing."""

    def forward(self, state: CascadeState) -> tuple[CascadeState, None]:
        return state, None


class CoarseStage(nn.Module):
    """Global alignment: clip ⊕ sentence, word ⊕ video, then cross-modal attention both ways."""

    def __init__(self, cfg: CCMANConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.video_pool = AttentivePooling(d, cond_dim=d)  # query-guided: its weights get attention guidance
        self.clip_fusion = GlobalFusion(d, cfg.dropout)
        self.word_fusion = GlobalFusion(d, cfg.dropout)
        self.clip_to_word = nn.ModuleList(AttentionBlock(d, cfg.heads, cfg.dropout) for _ in range(cfg.coarse_layers))
        self.word_to_clip = nn.ModuleList(AttentionBlock(d, cfg.heads, cfg.dropout) for _ in range(cfg.coarse_layers))
        self.temporal = AttentionBlock(d, cfg.heads, cfg.dropout)
        self.heads = BoundaryHeads(d, cfg.dropout)

    def forward(self, state: CascadeState) -> tuple[CascadeState, StageOutput]:
        v, v_mask, w, w_mask, sentence = state.clips, state.clip_mask, state.words, state.word_mask, state.sentence
        video_global, pool_attn = self.video_pool(v, v_mask, sentence)
        v = self.clip_fusion(v, v_mask, sentence)
        w = self.word_fusion(w, w_mask, video_global)
        for to_word, to_clip in zip(self.clip_to_word, self.word_to_clip, strict=True):
            v, w = to_word(v, v_mask, w, w_mask), to_clip(w, w_mask, v, v_mask)
        v = self.temporal(v, v_mask) * v_mask.unsqueeze(-1).to(v.dtype)
        w = w * w_mask.unsqueeze(-1).to(w.dtype)
        logits = self.heads(v, v_mask)
        out = StageOutput(*logits, span=expected_span(logits[0], logits[1], v_mask), tokens=v, attn=pool_attn)
        return replace(state, clips=v, words=w, span=out.span), out


class Focus(nn.Module):
    """Where the coarse stage put the moment, per clip: P(inside its span), its relevance, or their mean."""

    def __init__(self, source: str) -> None:
        super().__init__()
        if source not in ("span", "relevance", "both"):
            raise ValueError(f"model.focus_source must be span, relevance or both, not '{source}'")
        self.source = source

    def forward(self, state: CascadeState, coarse: StageOutput | None) -> CascadeState:
        if coarse is None:
            return state
        mask = state.clip_mask
        span = inside_probability(coarse.start_logits, coarse.end_logits, mask)
        relevance = torch.sigmoid(coarse.inside_logits) * mask
        focus = {"span": span, "relevance": relevance, "both": 0.5 * (span + relevance)}[self.source]
        return replace(state, focus=focus)


class NoFocus(nn.Module):
    def forward(self, state: CascadeState, coarse: StageOutput | None) -> CascadeState:
        return state


class FineStage(nn.Module):
    """Local alignment: clip-word cross-attention and windowed clip-clip attention, focused by the coarse output."""

    def __init__(self, cfg: CCMANConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.band = BandBias(cfg.local_window)
        self.focus_embed = nn.Linear(1, d)
        self.focus_scale = nn.Parameter(torch.tensor(1.0))  # strength of the log-focus attention bias
        self.clip_word = nn.ModuleList(AttentionBlock(d, cfg.heads, cfg.dropout) for _ in range(cfg.fine_layers))
        self.local = nn.ModuleList(AttentionBlock(d, cfg.heads, cfg.dropout) for _ in range(cfg.fine_layers))
        self.heads = BoundaryHeads(d, cfg.dropout)
        self.refine_pool = AttentivePooling(d, cond_dim=d)
        self.refine = MLP(d + 2, d, 2, cfg.dropout)

    def forward(self, state: CascadeState) -> tuple[CascadeState, StageOutput]:
        v, v_mask, w, w_mask, focus = state.clips, state.clip_mask, state.words, state.word_mask, state.focus
        # one (B, T, T) bias for every local layer: the window band, the log-focus over keys, padded keys
        bias = self.band(v.shape[1])[None]
        if focus is not None:
            v = v + self.focus_embed(focus.unsqueeze(-1).to(v.dtype))
            bias = (bias + self.focus_scale * torch.log(focus + 0.05).unsqueeze(1)).clamp_min(torch.finfo(bias.dtype).min)
        bias = bias.masked_fill(~v_mask[:, None, :], torch.finfo(bias.dtype).min)
        for cross, local in zip(self.clip_word, self.local, strict=True):
            v = cross(v, v_mask, w, w_mask)
            v = local(v, v_mask, bias=bias)
        v = v * v_mask.unsqueeze(-1).to(v.dtype)
        logits = self.heads(v, v_mask)
        if state.logit_bias is not None:  # padded clips keep their float32-minimum logits
            bias = state.logit_bias.to(logits[0].dtype) * v_mask.unsqueeze(-1).to(logits[0].dtype)
            logits = tuple(logit + bias[..., i] for i, logit in enumerate(logits))
        span = expected_span(logits[0], logits[1], v_mask)
        # the refinement regresses a correction of the previous stage's span (or of its own, detached)
        base = state.span if state.span is not None else span.detach()
        pooled, attn = self.refine_pool(v, v_mask, state.sentence)
        refined = (base + 0.5 * torch.tanh(self.refine(torch.cat([pooled, base], dim=-1)))).clamp(0.0, 1.0)
        refined = torch.stack([refined.min(1).values, refined.max(1).values], 1)
        out = StageOutput(*logits, span=span, tokens=v, attn=attn, refined_span=refined, focus=focus,
                          reference=state.reference)
        return replace(state, clips=v, span=refined), out


class CCMAN(SharedSpaceEncoders, nn.Module):
    def __init__(self, cfg: CCMANConfig, vocab_size: int | None = None, token_feat_dim: int | None = None,
                 pretrained_words: Any = None) -> None:
        super().__init__()
        unknown = set(cfg.stages) - {"coarse", "fine"}
        if unknown or not cfg.stages:
            raise ValueError(f"model.stages must be a non-empty subset of [coarse, fine], got {cfg.stages}")
        self.cfg = cfg
        self.video_encoder, self.query_encoder = build_encoders(cfg, vocab_size, token_feat_dim, pretrained_words)
        self.coarse = CoarseStage(cfg) if "coarse" in cfg.stages else PassThrough()
        self.focus = Focus(cfg.focus_source) if cfg.focus else NoFocus()
        self.relation = RelationCue(cfg.dim) if cfg.relation_cue else NoRelationCue()
        self.word_relations = WordRelations(cfg.dim, cfg.embed_dim) if cfg.word_relations else NoWordRelations()
        self.fine = FineStage(cfg) if "fine" in cfg.stages else PassThrough()
        self.embedding = SharedEmbeddingSpace(cfg.dim, cfg.dim, cfg.embed_dim, cfg.temperature)
        # on the cascade's final clip tokens; without it saliency comes from the inside scores
        self.saliency_head = SaliencyHead(cfg.dim, cfg.dropout) if cfg.saliency_head else None
        self.existence = ExistenceHead() if cfg.existence else None  # P(moment in video), from the shared space

    def forward(self, batch: Batch) -> GroundingOutput:
        clips, words, sentence, word_attn = encode_batch(self.video_encoder, self.query_encoder, batch)
        state, coarse = self.coarse(CascadeState(clips, batch.clip_mask, words, batch.word_mask, sentence))
        state = self.relation(self.focus(state, coarse), clips, words, word_attn, self.embedding)
        lexical = self.query_encoder.lexical(batch.words) if self.cfg.word_relations else None
        state, word_grounding = self.word_relations(state, clips, words, lexical, batch.vid_index)
        state, fine = self.fine(state)
        stages = {name: out for name, out in (("coarse", coarse), ("fine", fine)) if out is not None}
        space = SpaceOutput.project(self.embedding, clips, sentence)
        return GroundingOutput(batch.clip_mask, clips, sentence, word_attn, space, stages, final=list(stages)[-1],
                               saliency=None if self.saliency_head is None else self.saliency_head(state.clips, batch.clip_mask),
                               existence=None if self.existence is None else self.existence(space, batch.clip_mask, batch.vid_index),
                               word_grounding=word_grounding)
