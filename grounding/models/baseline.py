"""The plain span predictor: the same encoders, one fusion of each clip with the sentence vector,
a few temporal self-attention layers, start/end/inside heads. No cascade, no cross-attention, no
alignment losses: the reference every CCMAN claim is compared against."""

from __future__ import annotations

from typing import Any

from torch import nn

from grounding.models.ccman import CCMANConfig, GlobalFusion
from grounding.models.embedding import SharedEmbeddingSpace
from grounding.models.encoders import QueryEncoder, VideoEncoder
from grounding.models.heads import BoundaryHeads, expected_span
from grounding.models.layers import AttentionBlock


class SpanBaseline(nn.Module):
    def __init__(self, cfg: CCMANConfig, vocab_size: int | None = None, token_feat_dim: int | None = None,
                 pretrained_words: Any = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.video_encoder = VideoEncoder(cfg.video_dim, cfg.dim, cfg.video_layers, cfg.heads, cfg.dropout)
        self.query_encoder = QueryEncoder(cfg.dim, vocab_size, cfg.word_dim, token_feat_dim, cfg.query_context,
                                          cfg.query_layers, cfg.heads, cfg.dropout, pretrained_words)
        self.fusion = GlobalFusion(cfg.dim, cfg.dropout)
        self.temporal = nn.ModuleList(AttentionBlock(cfg.dim, cfg.heads, cfg.dropout) for _ in range(cfg.fine_layers))
        self.heads = BoundaryHeads(cfg.dim, cfg.dropout)
        self.embedding = SharedEmbeddingSpace(cfg.dim, cfg.dim, cfg.embed_dim, cfg.temperature)  # for compat use

    def forward(self, video, video_mask, words, word_mask) -> dict[str, Any]:
        v = self.video_encoder(video, video_mask)
        w, sentence, word_attn = self.query_encoder(words, word_mask)
        x = self.fusion(v, video_mask, sentence)
        for layer in self.temporal:
            x = layer(x, video_mask)
        x = x * video_mask.unsqueeze(-1).to(x.dtype)
        span = self.heads(x, video_mask)
        span.update(tokens=x, span=expected_span(span["start_logits"], span["end_logits"], video_mask))
        return {"video_tokens": v, "sentence": sentence, "word_attn": word_attn, "stages": {"span": span}, "final": "span"}
