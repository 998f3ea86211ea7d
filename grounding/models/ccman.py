"""CCMAN: the Cascade Cross-Modality Alignment Network.

    video ─ VideoEncoder ─┐                         ┌─ coarse start/end/relevance ─┐ focus
    query ─ QueryEncoder ─┴─ CoarseStage (global) ──┤                              ▼
                                                    └─ tokens ───────────── FineStage (local) ─ start/end/inside,
                                                                                               refined span
The coarse stage sees *global* context (each clip fused with the whole sentence, each word with the
whole video, then cross-modal attention); the fine stage looks *locally* (clip-word cross-attention
and windowed clip-clip attention), focused on where the coarse stage put the moment. Alignment losses
act on the unimodal encodings through the shared embedding space (``grounding/models/embedding.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from grounding.models.embedding import SharedEmbeddingSpace
from grounding.models.encoders import QueryEncoder, VideoEncoder
from grounding.models.heads import BoundaryHeads, expected_span, inside_probability
from grounding.models.layers import MLP, AttentionBlock, AttentivePooling, BandBias


@dataclass
class CCMANConfig:
    video_dim: int = 1024
    dim: int = 128
    heads: int = 4
    dropout: float = 0.1
    video_layers: int = 2
    query_layers: int = 1
    query_context: str = "transformer"
    word_dim: int = 300
    coarse_layers: int = 1
    fine_layers: int = 2
    local_window: int = 6  # clips on each side in the fine stage's temporal attention
    stages: list[str] = field(default_factory=lambda: ["coarse", "fine"])
    focus: bool = True  # coarse-to-fine focusing (off = plain cascade of features)
    focus_source: str = "both"  # span | relevance | both
    embed_dim: int = 128
    temperature: float = 0.07


class GlobalFusion(nn.Module):
    """x_i <- LayerNorm(x_i + MLP([x_i; g; x_i * g])): every element sees one global vector g."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.mlp = MLP(3 * dim, dim, dim, dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        g = g.unsqueeze(1).expand_as(x)
        return self.norm(x + self.mlp(torch.cat([x, g, x * g], dim=-1))) * mask.unsqueeze(-1).to(x.dtype)


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

    def forward(self, v, v_mask, w, w_mask, sentence) -> dict[str, torch.Tensor]:
        video_global, pool_attn = self.video_pool(v, v_mask, sentence)
        v = self.clip_fusion(v, v_mask, sentence)
        w = self.word_fusion(w, w_mask, video_global)
        for to_word, to_clip in zip(self.clip_to_word, self.word_to_clip, strict=True):
            v, w = to_word(v, v_mask, w, w_mask), to_clip(w, w_mask, v, v_mask)
        v = self.temporal(v, v_mask) * v_mask.unsqueeze(-1).to(v.dtype)
        w = w * w_mask.unsqueeze(-1).to(w.dtype)
        out = self.heads(v, v_mask)
        out.update(tokens=v, word_tokens=w, attn=pool_attn, span=expected_span(out["start_logits"], out["end_logits"], v_mask))
        return out


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

    def forward(self, v, v_mask, w, w_mask, sentence, focus=None, base_span=None) -> dict[str, torch.Tensor]:
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
        out = self.heads(v, v_mask)
        own_span = expected_span(out["start_logits"], out["end_logits"], v_mask)
        base = base_span if base_span is not None else own_span.detach()
        pooled, attn = self.refine_pool(v, v_mask, sentence)
        delta = 0.5 * torch.tanh(self.refine(torch.cat([pooled, base], dim=-1)))
        refined = (base + delta).clamp(0.0, 1.0)
        out.update(tokens=v, attn=attn, span=torch.stack([refined.min(1).values, refined.max(1).values], 1))
        return out


class CCMAN(nn.Module):
    def __init__(self, cfg: CCMANConfig, vocab_size: int | None = None, token_feat_dim: int | None = None,
                 pretrained_words: Any = None) -> None:
        super().__init__()
        unknown = set(cfg.stages) - {"coarse", "fine"}
        if unknown or not cfg.stages:
            raise ValueError(f"model.stages must be a non-empty subset of [coarse, fine], got {cfg.stages}")
        self.cfg = cfg
        self.video_encoder = VideoEncoder(cfg.video_dim, cfg.dim, cfg.video_layers, cfg.heads, cfg.dropout)
        self.query_encoder = QueryEncoder(cfg.dim, vocab_size, cfg.word_dim, token_feat_dim, cfg.query_context,
                                          cfg.query_layers, cfg.heads, cfg.dropout, pretrained_words)
        self.coarse = CoarseStage(cfg) if "coarse" in cfg.stages else None
        self.fine = FineStage(cfg) if "fine" in cfg.stages else None
        self.embedding = SharedEmbeddingSpace(cfg.dim, cfg.dim, cfg.embed_dim, cfg.temperature)

    def _focus(self, coarse: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        span_focus = inside_probability(coarse["start_logits"], coarse["end_logits"], mask)
        relevance = torch.sigmoid(coarse["inside_logits"]) * mask
        return {"span": span_focus, "relevance": relevance, "both": 0.5 * (span_focus + relevance)}[self.cfg.focus_source]

    def forward(self, video, video_mask, words, word_mask) -> dict[str, Any]:
        v = self.video_encoder(video, video_mask)
        w, sentence, word_attn = self.query_encoder(words, word_mask)
        out: dict[str, Any] = {"video_tokens": v, "sentence": sentence, "word_attn": word_attn, "stages": {}}
        tokens, word_tokens, focus, base_span = v, w, None, None
        if self.coarse is not None:
            coarse = self.coarse(v, video_mask, w, word_mask, sentence)
            out["stages"]["coarse"] = coarse
            tokens, word_tokens, base_span = coarse["tokens"], coarse["word_tokens"], coarse["span"]
            if self.cfg.focus:
                focus = self._focus(coarse, video_mask)
        if self.fine is not None:
            out["stages"]["fine"] = self.fine(tokens, video_mask, word_tokens, word_mask, sentence, focus, base_span)
        out["final"] = "fine" if self.fine is not None else "coarse"
        return out
