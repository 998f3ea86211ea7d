"""The compatibility study's retrieval model, a ``SharedSpaceModel`` like CCMAN.

Everything in ``grounding.compat`` (objectives, adapter, backfilling, metrics) sees only embeddings. A
model takes part in a study if it embeds moments and sentences into a shared, unit-norm space:

    embed_moments(video (B,T,D), video_mask (B,T), moment_mask (B,T))   -> (B, E)
    embed_moments(video (B,T,D), video_mask (B,T), moment_mask (B,P,T)) -> (B, P, E)  P moments, one encoder pass
    embed_sentences(words (B,L[,Dw]), word_mask (B,L))                  -> (B, E)
    temperature (float), embed_dim (int)

``DualEncoder`` is the small model the study trains: ``VideoEncoder`` + ``QueryEncoder`` +
``SharedEmbeddingSpace``; a moment is the clips inside its window, mean-pooled over the contextual clip
tokens, then ``embed_video``; a sentence is ``embed_text`` of the attentive sentence vector.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from grounding.models.embedding import SharedEmbeddingSpace
from grounding.models.encoders import QueryEncoder, VideoEncoder
from grounding.models.shared_space import rows_of
from grounding.studies.moment_split import MomentSplit


class DualEncoder(nn.Module):
    def __init__(self, video_dim: int, dim: int = 128, embed_dim: int = 128, layers: int = 1, heads: int = 4,
                 dropout: float = 0.1, temperature: float = 0.07, learn_temperature: bool = True,
                 vocab_size: int | None = None, word_dim: int = 128, token_feat_dim: int | None = None) -> None:
        super().__init__()
        self.video = VideoEncoder(video_dim, dim, layers, heads, dropout)
        self.query = QueryEncoder(dim, vocab_size=vocab_size, word_dim=word_dim, token_feat_dim=token_feat_dim,
                                  context="transformer", layers=layers, heads=heads, dropout=dropout)
        self.embedding = SharedEmbeddingSpace(dim, dim, embed_dim, temperature, learn_temperature)
        self.embed_dim = embed_dim

    @property
    def temperature(self) -> float:
        return float(self.embedding.temperature.detach())

    def moments_from_tokens(self, tokens: torch.Tensor, moment_mask: torch.Tensor) -> torch.Tensor:
        """Clip tokens (B, T, dim) and moment masks (B, T) -> (B, E), or (B, P, T) -> (B, P, E): the study's
        moment is its mean clip token, projected (``SharedEmbeddingSpace.pool_moment``)."""
        return self.embedding.embed_video(self.embedding.pool_moment(tokens, moment_mask))

    def embed_moments(self, video: torch.Tensor, video_mask: torch.Tensor, moment_mask: torch.Tensor,
                      vid_index: torch.Tensor | None = None) -> torch.Tensor:
        """``SharedSpaceModel.embed_moments``: moments (M, T) of rows ``vid_index`` (M,) -> (M, E); also
        P moments per video (B, P, T) -> (B, P, E) from one encoder pass."""
        tokens = self.video(video, video_mask)
        if moment_mask.dim() == 3:
            return self.moments_from_tokens(tokens, moment_mask & video_mask[:, None])
        rows = rows_of(moment_mask, vid_index)
        return self.moments_from_tokens(tokens[rows], moment_mask & video_mask[rows])

    def embed_sentences(self, words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        return self.embedding.embed_text(self.query(words, word_mask)[1])  # (B, E)


MODEL_KEYS = ("dim", "embed_dim", "layers", "heads", "dropout", "temperature", "learn_temperature", "word_dim")


def build_dual_encoder(model_cfg: dict[str, Any], split: MomentSplit, vocab_size: int | None) -> DualEncoder:
    """A ``DualEncoder`` for ``split``'s video features and token inputs (word ids need ``vocab_size``)."""
    kwargs = {k: model_cfg[k] for k in MODEL_KEYS if model_cfg.get(k) is not None}
    if split.words.dtype == torch.long:
        return DualEncoder(split.video_dim, vocab_size=vocab_size, **kwargs)
    return DualEncoder(split.video_dim, token_feat_dim=int(split.words.shape[-1]), **kwargs)


class SplitEmbeddings:
    """A model's embeddings of one split: every moment (M, E) and every sentence (N, E), on the CPU."""

    def __init__(self, moments: torch.Tensor, sentences: torch.Tensor) -> None:
        self.moments = moments
        self.sentences = sentences


@torch.no_grad()
def embed_split(model: DualEncoder, split: MomentSplit, device: torch.device | str = "cpu",
                batch_size: int = 256) -> SplitEmbeddings:
    """Embed each video once, pool every moment from its tokens, and embed every sentence (eval mode)."""
    was_training = model.training
    model.eval()
    moments = torch.empty(split.num_moments, model.embed_dim)
    order = torch.argsort(split.moment_video, stable=True)
    video_of = split.moment_video[order]
    for first in range(0, len(split.vids), batch_size):
        rows = torch.arange(first, min(first + batch_size, len(split.vids)))
        tokens = model.video(split.videos[rows].to(device), split.video_mask[rows].to(device))  # (b, T, dim)
        lo, hi = torch.searchsorted(video_of, rows[0]), torch.searchsorted(video_of, rows[-1], right=True)
        for start in range(int(lo), int(hi), batch_size):
            ids = order[start:min(start + batch_size, int(hi))]
            local = (split.moment_video[ids] - first).to(device)
            mask = split.moment_mask[ids].to(device) & split.video_mask[split.moment_video[ids]].to(device)
            moments[ids] = model.moments_from_tokens(tokens[local], mask).float().cpu()
    sentences = torch.cat([
        model.embed_sentences(split.words[i:i + batch_size].to(device), split.word_mask[i:i + batch_size].to(device)).float().cpu()
        for i in range(0, split.num_queries, batch_size)
    ])
    model.train(was_training)
    return SplitEmbeddings(moments, sentences)
