"""What a grounding model returns: typed, so that losses, decoding and figures read named fields.

    GroundingOutput
      clip_mask      (B, T) bool   the valid clips of each query's video
      video_tokens   (B, T, D)     unimodal clip encodings (what the alignment losses align)
      sentence       (B, D)        unimodal sentence vector
      word_attn      (B, L)        the sentence pooling weights over words
      space          SpaceOutput   the same encodings projected into the shared embedding space
      stages         {name: StageOutput} in cascade order; ``final`` names the decoded stage
      saliency       (B, T) per-clip highlight logits of the saliency head (None: a model without one)
      existence      ExistenceOutput: calibrated log-odds that each query's moment is in its video
                     (None: a model configured without it, ``model.existence: false``)
      moments        MomentSet or None: a set prediction (the DETR family); decoding ranks its moments
      negative_saliency (B, T) or None: saliency logits of each query's video paired with another query's
                     sentence (QD-DETR's negative pairs, ``negative_partners``)

    A model predicts either per-clip scores (``stages``: CCMAN, the span baseline) or a set of moments
    (``moments``, with ``stages`` empty); ``space`` is None for a model without a shared embedding space.

    MomentSet
      spans          (B, Q, 2) ``(centre, width)`` of Q predicted moments, normalised to the video
      logits         (B, Q) foreground logits: how likely each moment is one the query describes
      aux            [MomentSet] the earlier decoder layers' sets (auxiliary losses), first layer first

    StageOutput
      start_logits, end_logits, inside_logits  (B, T), padded clips at the float32 minimum
      span           (B, 2) the soft span implied by this stage's own start/end distributions, in [0, 1]
      refined_span   (B, 2) or None: a regression on top of the span (the fine stage's refinement)
      tokens         (B, T, D) the stage's clip tokens;  attn (B, T) or None: its query-guided pooling weights
      focus          (B, T) or None: the focus the stage received from the previous one (figures, analyses)
      reference      (B, T) or None: where the stage's relation cue put the sentence's reference event
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from grounding.models.embedding import SharedEmbeddingSpace
from grounding.models.existence import ExistenceOutput


@dataclass
class StageOutput:
    start_logits: torch.Tensor
    end_logits: torch.Tensor
    inside_logits: torch.Tensor
    span: torch.Tensor
    tokens: torch.Tensor
    attn: torch.Tensor | None = None
    refined_span: torch.Tensor | None = None
    focus: torch.Tensor | None = None
    reference: torch.Tensor | None = None


@dataclass
class MomentSet:
    spans: torch.Tensor
    logits: torch.Tensor
    aux: list[MomentSet] = field(default_factory=list)


def negative_partners(vid_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For negative pairs: query i's partner is query i + 1 (cyclically), whose sentence is paired with i's
    video; ``valid`` (B,) is False where the partner asks about the same video (not a negative)."""
    partner = torch.roll(torch.arange(len(vid_index), device=vid_index.device), -1)
    return partner, vid_index[partner] != vid_index


@dataclass
class SpaceOutput:
    """Clip and sentence encodings in the shared space (``grounding.models.embedding``).

    ``clip_proj`` (B, T, E) is the *un-normalised* projection of every clip, so a moment embedding is
    ``normalize(masked mean of clip_proj)``: the same vector as projecting the mean clip (the
    projection is affine), for any moment, without running the model again.
    """

    clip_proj: torch.Tensor
    sentence: torch.Tensor  # (B, E) unit norm
    temperature: torch.Tensor  # () learnable

    def clips(self) -> torch.Tensor:
        """(B, T, E) unit-norm clip embeddings."""
        return F.normalize(self.clip_proj, dim=-1)

    @classmethod
    def project(cls, space: SharedEmbeddingSpace, clips: torch.Tensor, sentence: torch.Tensor) -> SpaceOutput:
        """Clip encodings (B, T, D) and sentence vectors (B, D) through ``space``'s two projections."""
        return cls(space.video_proj(clips), space.embed_text(sentence), space.temperature)

    def moments(self, moment_mask: torch.Tensor) -> torch.Tensor:
        """Unit-norm embedding of the clips ``moment_mask`` selects in each row: (B, T) -> (B, E), or K moments
        per row (B, K, T) -> (B, K, E)."""
        return F.normalize(SharedEmbeddingSpace.pool_moment(self.clip_proj, moment_mask), dim=-1)


@dataclass
class GroundingOutput:
    clip_mask: torch.Tensor
    video_tokens: torch.Tensor
    sentence: torch.Tensor
    word_attn: torch.Tensor
    space: SpaceOutput | None
    stages: dict[str, StageOutput] = field(default_factory=dict)
    final: str = ""
    saliency: torch.Tensor | None = None
    existence: ExistenceOutput | None = None
    moments: MomentSet | None = None
    negative_saliency: torch.Tensor | None = None
    word_grounding: Any = None  # grounding.models.relation.WordGrounding (CCMAN's word relations) or None

    @property
    def decoded(self) -> StageOutput:
        """The stage whose scores become predictions."""
        return self.stages[self.final]

    @property
    def refined_span(self) -> torch.Tensor | None:
        """(B, 2) the decoded stage's regressed span, normalised; None for a model without one."""
        return self.decoded.refined_span if self.stages else None
