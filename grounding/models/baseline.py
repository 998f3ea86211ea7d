"""The plain span predictor: the same encoders, one fusion of each clip with the sentence vector,
a few temporal self-attention layers, start/end/inside heads. No cascade, no cross-attention, no
alignment losses: the reference every CCMAN claim is compared against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from grounding.data.batch import Batch
from grounding.models.embedding import SharedEmbeddingSpace
from grounding.models.encoders import EncoderSettings, build_encoders, encode_batch
from grounding.models.existence import ExistenceHead
from grounding.models.heads import BoundaryHeads, SaliencyHead, expected_span
from grounding.models.layers import AttentionBlock, GlobalFusion
from grounding.models.outputs import GroundingOutput, SpaceOutput, StageOutput
from grounding.models.shared_space import SharedSpaceEncoders


@dataclass
class SpanBaselineConfig(EncoderSettings):
    temporal_layers: int = 2
    embed_dim: int = 128  # the shared space is unused by its losses but lets the compatibility study use it
    temperature: float = 0.07


class SpanBaseline(SharedSpaceEncoders, nn.Module):
    def __init__(self, cfg: SpanBaselineConfig, vocab_size: int | None = None, token_feat_dim: int | None = None,
                 pretrained_words: Any = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.video_encoder, self.query_encoder = build_encoders(cfg, vocab_size, token_feat_dim, pretrained_words)
        self.fusion = GlobalFusion(cfg.dim, cfg.dropout)
        self.temporal = nn.ModuleList(AttentionBlock(cfg.dim, cfg.heads, cfg.dropout) for _ in range(cfg.temporal_layers))
        self.heads = BoundaryHeads(cfg.dim, cfg.dropout)
        self.embedding = SharedEmbeddingSpace(cfg.dim, cfg.dim, cfg.embed_dim, cfg.temperature)
        self.saliency_head = SaliencyHead(cfg.dim, cfg.dropout) if cfg.saliency_head else None
        self.existence = ExistenceHead() if cfg.existence else None

    def forward(self, batch: Batch) -> GroundingOutput:
        clips, _, sentence, word_attn = encode_batch(self.video_encoder, self.query_encoder, batch)
        mask = batch.clip_mask
        x = self.fusion(clips, mask, sentence)
        for layer in self.temporal:
            x = layer(x, mask)
        x = x * mask.unsqueeze(-1).to(x.dtype)
        logits = self.heads(x, mask)
        span = StageOutput(*logits, span=expected_span(logits[0], logits[1], mask), tokens=x)
        space = SpaceOutput.project(self.embedding, clips, sentence)
        return GroundingOutput(mask, clips, sentence, word_attn, space, {"span": span}, final="span",
                               saliency=None if self.saliency_head is None else self.saliency_head(x, mask),
                               existence=None if self.existence is None else self.existence(space, mask, batch.vid_index))
