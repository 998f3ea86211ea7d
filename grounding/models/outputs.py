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
    space: SpaceOutput
    stages: dict[str, StageOutput] = field(default_factory=dict)
    final: str = ""
    saliency: torch.Tensor | None = None
    existence: ExistenceOutput | None = None

    @property
    def decoded(self) -> StageOutput:
        """The stage whose scores become predictions."""
        return self.stages[self.final]
