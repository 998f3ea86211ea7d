"""Unimodal encoders: clip features -> contextual clip tokens; query tokens -> word tokens + sentence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from grounding.data.batch import Batch
from grounding.models.layers import AttentionBlock, AttentivePooling, InputProjection, SinusoidalPositions


class VideoEncoder(nn.Module):
    """Projection, LayerNorm, dropout, sinusoidal positions, then a few masked self-attention layers."""

    def __init__(self, in_dim: int, dim: int, layers: int = 2, heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.proj = InputProjection(in_dim, dim, dropout)
        self.positions = SinusoidalPositions(dim)
        self.layers = nn.ModuleList(AttentionBlock(dim, heads, dropout) for _ in range(layers))

    def forward(self, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, T, Dv) -> (B, T, D)
        x = self.positions(self.proj(video))
        for layer in self.layers:
            x = layer(x, mask)
        return x * mask.unsqueeze(-1).to(x.dtype)  # padded clips are exactly zero


class QueryEncoder(nn.Module):
    """Token input (word ids or token features) -> contextual word tokens and an attentive sentence vector.

    ``context="lstm"`` uses a packed BiLSTM (padding never enters the recurrence); ``"transformer"``
    uses masked self-attention layers with sinusoidal positions.
    """

    def __init__(
        self,
        dim: int,
        vocab_size: int | None = None,
        word_dim: int = 300,
        token_feat_dim: int | None = None,
        context: str = "transformer",
        layers: int = 1,
        heads: int = 4,
        dropout: float = 0.1,
        pretrained: np.ndarray | None = None,
        freeze_embeddings: bool = False,
    ) -> None:
        super().__init__()
        if token_feat_dim is None and vocab_size is None:
            raise ValueError("QueryEncoder needs vocab_size (word ids) or token_feat_dim (token features)")
        if token_feat_dim is None:
            self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
            if pretrained is not None:
                self.embed.weight.data.copy_(torch.from_numpy(pretrained))
                self.embed.weight.requires_grad = not freeze_embeddings
            in_dim = word_dim
        else:
            self.embed = None
            in_dim = token_feat_dim
        self.proj = InputProjection(in_dim, dim, dropout)
        self.context_kind = context
        if context == "lstm":
            self.lstm = nn.LSTM(dim, dim // 2, num_layers=layers, batch_first=True, bidirectional=True)
            self.layers = nn.ModuleList()
        elif context == "transformer":
            self.positions = SinusoidalPositions(dim)
            self.layers = nn.ModuleList(AttentionBlock(dim, heads, dropout) for _ in range(layers))
        else:
            raise ValueError(f"model.query_context must be 'lstm' or 'transformer', not '{context}'")
        self.pool = AttentivePooling(dim)

    def lexical(self, words: torch.Tensor) -> torch.Tensor:
        """(B, L, D) the words projected but not yet contextualised: what each word means on its own
        (``grounding.models.relation.WordRelations`` grounds them one by one)."""
        return self.proj(self.embed(words) if self.embed is not None else words)

    def forward(self, words: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.lexical(words)
        if self.context_kind == "lstm":
            lengths = mask.sum(1).clamp_min(1).cpu()
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            x, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=x.shape[1])
        else:
            x = self.positions(x)
            for layer in self.layers:
                x = layer(x, mask)
        x = x * mask.unsqueeze(-1).to(x.dtype)
        sentence, weights = self.pool(x, mask)
        return x, sentence, weights  # (B, L, D), (B, D), (B, L)


def encode_batch(video_encoder: VideoEncoder, query_encoder: QueryEncoder, batch: Batch
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each distinct video of ``batch`` through the video encoder once (or not at all when the batch carries
    its ``video_tokens``), then one row per query: clip tokens (B, T, D), word tokens (B, L, D), sentence
    vectors (B, D), word pooling weights (B, L)."""
    videos = batch.video_tokens if batch.video_tokens is not None else video_encoder(batch.video, batch.video_mask)
    clips = videos[batch.vid_index]
    words, sentence, word_attn = query_encoder(batch.words, batch.word_mask)
    return clips, words, sentence, word_attn


@dataclass
class EncoderSettings:
    """The unimodal encoders' settings, shared by every grounding model (models extend this dataclass)."""

    video_dim: int = 1024
    dim: int = 128
    heads: int = 4
    dropout: float = 0.1
    video_layers: int = 2
    query_layers: int = 1
    query_context: str = "transformer"
    word_dim: int = 300
    saliency_head: bool = True  # False: saliency from the inside scores (checkpoints from before the head)
    existence: bool = True  # calibrated P(moment in video) from the shared space (grounding.models.existence)


def build_encoders(cfg: EncoderSettings, vocab_size: int | None, token_feat_dim: int | None,
                   pretrained_words: Any = None) -> tuple[VideoEncoder, QueryEncoder]:
    video = VideoEncoder(cfg.video_dim, cfg.dim, cfg.video_layers, cfg.heads, cfg.dropout)
    query = QueryEncoder(cfg.dim, vocab_size, cfg.word_dim, token_feat_dim, cfg.query_context, cfg.query_layers,
                         cfg.heads, cfg.dropout, pretrained_words)
    return video, query
