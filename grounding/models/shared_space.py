"""The one interface to a model's shared video-text space, for everything that embeds without grounding.

The compatibility term, the search index and the Searcher need moments and sentences as unit vectors in
the space the alignment losses trained, not the cascade. ``SharedSpaceModel`` is that interface;
``SharedSpaceEncoders`` implements it once for every model built from a ``VideoEncoder``, a
``QueryEncoder`` and a ``SharedEmbeddingSpace`` (CCMAN, the span baseline). The compatibility study's
``DualEncoder`` implements it with its own pooling.

A moment is a set of clips of one video: ``moment_mask`` (M, T) selects them and ``vid_index`` (M,) says
in which row of ``video`` (V, T, D) each moment lies, so every video runs through the encoder once however
many moments it has (the index builder embeds dozens of windows per video this way).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from grounding.errors import GroundingError
from grounding.models.embedding import SharedEmbeddingSpace


@runtime_checkable
class SharedSpaceModel(Protocol):
    """Moments and sentences as unit vectors (.., E) of one space, compared by cosine / ``temperature``."""

    @property
    def embed_dim(self) -> int: ...

    @property
    def temperature(self) -> float: ...

    def embed_moments(self, video: torch.Tensor, video_mask: torch.Tensor, moment_mask: torch.Tensor,
                      vid_index: torch.Tensor | None = None) -> torch.Tensor: ...

    def embed_sentences(self, words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor: ...


def require_shared_space(model: object, where: str) -> SharedSpaceModel:
    """``model`` as a ``SharedSpaceModel``, or an error naming ``where`` it came from."""
    if not isinstance(model, SharedSpaceModel):
        raise GroundingError(f"{where} is a {type(model).__name__}, a model without a shared embedding space; "
                             "this needs a model that embeds moments and sentences (model.name=ccman)")
    return model


def rows_of(moment_mask: torch.Tensor, vid_index: torch.Tensor | None) -> torch.Tensor:
    """Which video row each moment lies in: ``vid_index``, or one moment per row when it is None."""
    return torch.arange(len(moment_mask), device=moment_mask.device) if vid_index is None else vid_index


class SharedSpaceEncoders:
    """``SharedSpaceModel`` for a model with ``video_encoder``, ``query_encoder`` and ``embedding`` parts.

    A moment is ``normalize(mean of its clips' projections)``, exactly ``SpaceOutput.moments`` of the
    model's own forward, so what search and the compatibility term embed is what the losses aligned.
    """

    video_encoder: torch.nn.Module
    query_encoder: torch.nn.Module
    embedding: SharedEmbeddingSpace

    @property
    def embed_dim(self) -> int:
        return int(self.embedding.embed_dim)

    @property
    def temperature(self) -> float:
        return float(self.embedding.temperature.detach())

    def encode_videos(self, video: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        """Contextual clip tokens (V, T, D) of ``video`` (V, T, Dv): the video side of the model's forward, which
        a caller asking many questions of one video computes once and passes as ``Batch.video_tokens``."""
        return self.video_encoder(video, video_mask)

    def clip_projections(self, video: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        """Un-normalised projections (V, T, E) of every clip of ``video`` (V, T, D)."""
        return self.embedding.video_proj(self.video_encoder(video, video_mask))

    def embed_moments(self, video: torch.Tensor, video_mask: torch.Tensor, moment_mask: torch.Tensor,
                      vid_index: torch.Tensor | None = None) -> torch.Tensor:
        rows = rows_of(moment_mask, vid_index)
        proj = self.clip_projections(video, video_mask)[rows]  # (M, T, E)
        return F.normalize(SharedEmbeddingSpace.pool_moment(proj, moment_mask & video_mask[rows]), dim=-1)

    def embed_sentences(self, words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        _, sentence, _ = self.query_encoder(words, word_mask)
        return self.embedding.embed_text(sentence)
