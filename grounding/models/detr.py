"""The DETR-family grounders: Moment-DETR (Lei et al., NeurIPS 2021) and QD-DETR (Moon et al., CVPR 2023).

Both predict a *set* of moments: Q learned moment queries run through a transformer decoder over the
encoded video and each returns a ``(centre, width)`` span and a foreground logit (``MomentSet``);
training matches the set to the ground-truth windows (``grounding/losses/matching.py``) and a per-clip
saliency score serves highlight detection.

    Moment-DETR: video and words projected, concatenated, one encoder over both; decoder over that memory;
                 saliency = a linear score of each encoded clip.
    QD-DETR:     clips first cross-attend to the words (text-to-video layers: a *query-dependent* video
                 representation), then an encoder over [a global token; the clips]; an anchor decoder
                 (each query is a (centre, width) anchor, refined layer by layer) over the clips only;
                 saliency = the clip tokens' agreement with the global token. In training it runs the
                 encoder a second time with each video paired with another query's sentence (negative
                 pairs), whose saliency the ``negative_pair`` loss pushes down.

Written from the papers; the authors' code was read for settings (defaults below are theirs: 256-d,
8 heads, 2 + 2 layers, 10 queries, input dropout 0.5). Differences are listed in docs/baselines.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from grounding.data.batch import Batch
from grounding.models.detr_layers import (
    MLP,
    AnchorDecoderLayer,
    DetrLayer,
    ProjectionStack,
    inverse_sigmoid,
    sine_embed,
    sine_positions,
)
from grounding.models.outputs import GroundingOutput, MomentSet, negative_partners

NEG = torch.finfo(torch.float32).min


@dataclass
class MomentDETRConfig:
    video_dim: int = 2816
    dim: int = 256
    heads: int = 8
    ffn_dim: int = 1024
    dropout: float = 0.1
    input_dropout: float = 0.5
    input_layers: int = 2
    encoder_layers: int = 2
    decoder_layers: int = 2
    num_queries: int = 10
    tef: bool = True  # append each clip's (start, end) fraction of the video to its features
    word_dim: int = 300  # word-id input only: the embedding table's width


@dataclass
class QDDETRConfig(MomentDETRConfig):
    t2v_layers: int = 2  # text-to-video cross-attention layers before the encoder
    activation: str = "prelu"  # of every feed-forward (the authors' transformer uses PReLU)


class TokenInputs(nn.Module):
    """Clip features (+ temporal endpoint features) and word ids or token features -> model-width tokens."""

    def __init__(self, cfg: MomentDETRConfig, vocab_size: int | None, token_feat_dim: int | None,
                 pretrained_words: Any = None) -> None:
        super().__init__()
        if token_feat_dim is None and vocab_size is None:
            raise ValueError("a DETR grounder needs vocab_size (word ids) or token_feat_dim (token features)")
        self.embed = None
        if token_feat_dim is None:
            self.embed = nn.Embedding(vocab_size, cfg.word_dim, padding_idx=0)
            if pretrained_words is not None:
                self.embed.weight.data.copy_(torch.as_tensor(pretrained_words))
        self.tef = cfg.tef
        self.video = ProjectionStack(cfg.video_dim + 2 * cfg.tef, cfg.dim, cfg.input_layers, cfg.input_dropout)
        self.words = ProjectionStack(token_feat_dim or cfg.word_dim, cfg.dim, cfg.input_layers, cfg.input_dropout)

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip tokens (B, T, D) of each query's video and word tokens (B, L, D)."""
        video, mask = batch.video[batch.vid_index], batch.clip_mask
        if self.tef:
            n = mask.sum(1, keepdim=True).clamp_min(1).float()
            start = torch.arange(video.shape[1], device=video.device)[None].float() / n
            video = torch.cat([video, torch.stack([start, start + 1 / n], -1).to(video.dtype) * mask[..., None]], -1)
        words = self.embed(batch.words) if self.embed is not None else batch.words
        return self.video(video) * mask[..., None], self.words(words.float() if self.embed is None else words)


class SetHeads(nn.Module):
    """Foreground logit and span of every decoded query; with ``anchors`` the span is an offset (before the
    sigmoid) from the query's anchor."""

    def __init__(self, dim: int, anchors: bool) -> None:
        super().__init__()
        self.label = nn.Linear(dim, 1)
        self.span = MLP(dim, dim, 2, 3)
        self.anchors = anchors

    def forward(self, hidden: torch.Tensor, anchor: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        delta = self.span(hidden)
        spans = torch.sigmoid(delta + inverse_sigmoid(anchor) if self.anchors else delta)
        return self.label(hidden).squeeze(-1), spans


def xavier_init(*modules: nn.Module) -> None:
    """Xavier-uniform weights for every matrix of ``modules``, as DETR initialises its transformer."""
    for module in modules:
        for p in module.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)


def moment_set(layers: list[tuple[torch.Tensor, torch.Tensor]]) -> MomentSet:
    """The last decoder layer's (logits, spans) with the earlier layers as ``aux``."""
    sets = [MomentSet(spans.float(), logits.float()) for logits, spans in layers]
    return MomentSet(sets[-1].spans, sets[-1].logits, aux=sets[:-1])


def text_summary(words: torch.Tensor, word_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The output's ``sentence`` (the mean word token) and ``word_attn`` (uniform over real words)."""
    weights = word_mask.float() / word_mask.sum(1, keepdim=True).clamp_min(1)
    return torch.einsum("bl,bld->bd", weights.to(words.dtype), words), weights


class MomentDETR(nn.Module):
    def __init__(self, cfg: MomentDETRConfig, vocab_size: int | None = None, token_feat_dim: int | None = None,
                 pretrained_words: Any = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.inputs = TokenInputs(cfg, vocab_size, token_feat_dim, pretrained_words)
        layer = lambda **kw: DetrLayer(cfg.dim, cfg.heads, cfg.ffn_dim, cfg.dropout, **kw)  # noqa: E731
        self.encoder = nn.ModuleList(layer() for _ in range(cfg.encoder_layers))
        self.decoder = nn.ModuleList(layer(cross_attn=True) for _ in range(cfg.decoder_layers))
        self.decoder_norm = nn.LayerNorm(cfg.dim)
        self.query_pos = nn.Embedding(cfg.num_queries, cfg.dim)
        self.heads = SetHeads(cfg.dim, anchors=False)
        self.saliency = nn.Linear(cfg.dim, 1)
        xavier_init(self.encoder, self.decoder)

    def forward(self, batch: Batch) -> GroundingOutput:
        clips, words = self.inputs(batch)
        mask, word_mask = batch.clip_mask, batch.word_mask
        t = clips.shape[1]
        memory, memory_mask = torch.cat([clips, words], 1), torch.cat([mask, word_mask], 1)
        pos = torch.cat([sine_positions(mask, self.cfg.dim), torch.zeros_like(words)], 1).to(clips.dtype)
        for layer in self.encoder:
            memory = layer(memory, pos, memory_mask)
        x = torch.zeros(len(batch), self.cfg.num_queries, self.cfg.dim, device=clips.device, dtype=clips.dtype)
        query_pos = self.query_pos.weight[None]
        layers = []
        for layer in self.decoder:
            x = layer(x, query_pos, None, memory, pos, memory_mask)
            layers.append(self.heads(self.decoder_norm(x)))
        video_tokens = memory[:, :t] * mask[..., None]
        saliency = self.saliency(video_tokens).squeeze(-1).float().masked_fill(~mask, NEG)
        return GroundingOutput(mask, video_tokens, *text_summary(memory[:, t:], word_mask), space=None,
                               saliency=saliency, moments=moment_set(layers))


class QDDETR(nn.Module):
    def __init__(self, cfg: QDDETRConfig, vocab_size: int | None = None, token_feat_dim: int | None = None,
                 pretrained_words: Any = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.inputs = TokenInputs(cfg, vocab_size, token_feat_dim, pretrained_words)
        layer = lambda **kw: DetrLayer(cfg.dim, cfg.heads, cfg.ffn_dim, cfg.dropout, activation=cfg.activation, **kw)  # noqa: E731
        self.text_to_video = nn.ModuleList(layer(self_attn=False, cross_attn=True, t2v_residual=True)
                                           for _ in range(cfg.t2v_layers))
        self.encoder = nn.ModuleList(layer() for _ in range(cfg.encoder_layers))
        self.global_token = nn.Parameter(torch.randn(cfg.dim))
        self.global_pos = nn.Parameter(torch.randn(cfg.dim))
        self.decoder = nn.ModuleList(AnchorDecoderLayer(cfg.dim, cfg.heads, cfg.ffn_dim, cfg.dropout, first=i == 0,
                                                        activation=cfg.activation) for i in range(cfg.decoder_layers))
        self.decoder_norm = nn.LayerNorm(cfg.dim)
        self.anchors = nn.Embedding(cfg.num_queries, 2)  # (centre, width) before the sigmoid
        self.anchor_pos = MLP(cfg.dim, cfg.dim, cfg.dim, 2)  # sine embedding of an anchor -> its query position
        self.pos_scale = MLP(cfg.dim, cfg.dim, cfg.dim, 2)  # content -> scale of the anchor's sine embedding
        self.width_scale = MLP(cfg.dim, cfg.dim, 1, 2)  # content -> attention width, relative to the anchor's
        self.refine = MLP(cfg.dim, cfg.dim, 2, 3)  # content -> the next layer's anchor (offset before the sigmoid)
        self.heads = SetHeads(cfg.dim, anchors=True)
        self.saliency_clip = nn.Linear(cfg.dim, cfg.dim)
        self.saliency_global = nn.Linear(cfg.dim, cfg.dim)
        xavier_init(self.text_to_video, self.encoder, self.decoder, self.anchor_pos, self.pos_scale, self.width_scale,
                    self.refine)

    def encode(self, clips: torch.Tensor, mask: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor,
               pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Query-dependent clip memory (B, T, D) and the global token (B, D): clips attend to the words,
        then self-attention over [global; clips]."""
        for layer in self.text_to_video:
            clips = layer(clips, pos, mask, words, None, word_mask)
        b = len(clips)
        x = torch.cat([self.global_token.expand(b, 1, -1).to(clips.dtype), clips], 1)
        x_pos = torch.cat([self.global_pos.expand(b, 1, -1).to(pos.dtype), pos.expand(b, -1, -1)], 1)
        x_mask = torch.cat([torch.ones_like(mask[:, :1]), mask], 1)
        for layer in self.encoder:
            x = layer(x, x_pos, x_mask)
        return x[:, 1:], x[:, 0]

    def saliency_of(self, memory: torch.Tensor, global_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = torch.einsum("btd,bd->bt", self.saliency_clip(memory), self.saliency_global(global_token))
        return (scores / math.sqrt(self.cfg.dim)).float().masked_fill(~mask, NEG)

    def decode(self, memory: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> MomentSet:
        """Anchor decoder (DAB-DETR's, as QD-DETR uses it): each layer reads its queries' (centre, width) anchors
        as a sine embedding, which gives the self-attention position (``anchor_pos``) and, scaled by the content
        (``pos_scale``, from the second layer) and by a learnt width over the anchor's width, the query position
        of the conditional cross-attention; after the layer, ``refine`` moves the anchors for the next layer
        (the gradient reaches the refinement that made an anchor, not the layers before it). Each layer's spans are
        its own offsets from the anchors it read."""
        b, d = len(memory), self.cfg.dim
        anchor = torch.sigmoid(self.anchors.weight)[None].expand(b, -1, -1)  # read by the layer (detached after the first)
        out_anchor = anchor  # the same, with the gradient into the layer that moved it
        x = torch.zeros(b, self.cfg.num_queries, d, device=memory.device, dtype=memory.dtype)
        layers = []
        for i, layer in enumerate(self.decoder):
            sine = torch.cat([sine_embed(anchor[..., 0] * 2 * math.pi, d // 2),
                              sine_embed(anchor[..., 1] * 2 * math.pi, d // 2)], -1).to(x.dtype)
            query_pos = self.anchor_pos(sine)
            query_sine = sine if i == 0 else sine * self.pos_scale(x)
            query_sine = query_sine * (torch.sigmoid(self.width_scale(x)) / anchor[..., 1:].clamp_min(1e-6))
            x = layer(x, query_pos, query_sine, memory, pos, mask)
            layers.append(self.heads(self.decoder_norm(x), out_anchor))
            out_anchor = torch.sigmoid(self.refine(x) + inverse_sigmoid(anchor))
            anchor = out_anchor.detach()
        return moment_set(layers)

    def forward(self, batch: Batch) -> GroundingOutput:
        clips, words = self.inputs(batch)
        mask, word_mask = batch.clip_mask, batch.word_mask
        pos = sine_positions(mask, self.cfg.dim).to(clips.dtype)
        memory, global_token = self.encode(clips, mask, words, word_mask, pos)
        negative = None
        if self.training:  # negative pairs: each video with another query's sentence
            partner, _ = negative_partners(batch.vid_index)
            neg_memory, neg_global = self.encode(clips, mask, words[partner], word_mask[partner], pos)
            negative = self.saliency_of(neg_memory, neg_global, mask)
        memory = memory * mask[..., None]
        return GroundingOutput(mask, memory, *text_summary(words, word_mask), space=None,
                               saliency=self.saliency_of(memory, global_token, mask),
                               moments=self.decode(memory, mask, pos), negative_saliency=negative)
