"""Alignment losses: pull the video and text embeddings together in the shared space.

All of them read the *unimodal* encodings as the model projected them into the shared space
(``output.space``: clip projections and sentence embeddings, ``grounding/models/embedding.py``), so
that the two encoders themselves become aligned; none of them needs the model.
"""

from __future__ import annotations

import torch

from grounding.data.batch import Batch
from grounding.errors import GroundingError
from grounding.losses.base import LOSSES, Loss
from grounding.models.contrastive import info_nce
from grounding.models.outputs import GroundingOutput, SpaceOutput


def space_of(output: GroundingOutput, term: str) -> SpaceOutput:
    """The output's shared-space projections, or an error naming the term to switch off."""
    if output.space is None:
        raise GroundingError(f"loss '{term}' needs a model with a shared embedding space (ccman, span_baseline); "
                             f"set loss.{term}.weight=0 for this model")
    return output.space


@LOSSES.register("contrastive")
class SentenceMomentContrastive(Loss):
    """Symmetric InfoNCE across the batch between sentence i and ground-truth moment i.

    Another query of the *same video* is not used as a negative for sentence i (its moment may
    overlap), so pairs with ``vid_index_i == vid_index_j, i != j`` are masked out.
    """

    def forward(self, output: GroundingOutput, batch: Batch) -> torch.Tensor:
        space = space_of(output, "contrastive")
        moments = space.moments(batch.inside > 0)
        same_video = batch.vid_index[:, None] == batch.vid_index[None, :]
        return info_nce(space.sentence, moments, space.temperature, same_video)


@LOSSES.register("clip_alignment")
class IntraVideoClipAlignment(Loss):
    """Clips inside the moment must be closer to the sentence than clips outside it (same video).

    Multi-positive InfoNCE over the clips of each video: ``-log(sum_in exp(s_t) / sum_all exp(s_t))``
    with ``s_t = cos(text, clip_t) / tau``; queries whose moment covers the whole video are skipped.
    """

    def forward(self, output: GroundingOutput, batch: Batch) -> torch.Tensor:
        mask, inside = output.clip_mask, batch.inside > 0
        space = space_of(output, "clip_alignment")
        sim = (torch.einsum("bte,be->bt", space.clips(), space.sentence) / space.temperature).float()
        neg = torch.finfo(sim.dtype).min
        log_all = torch.logsumexp(sim.masked_fill(~mask, neg), dim=1)
        log_in = torch.logsumexp(sim.masked_fill(~inside, neg), dim=1)
        valid = inside.any(1) & (inside.sum(1) < mask.sum(1))
        if not valid.any():
            return sim.sum() * 0
        return (log_all - log_in)[valid].mean()


@LOSSES.register("attention_guidance")
class AttentionGuidance(Loss):
    """``-log(sum_{t in moment} a_t)`` for every stage's query-guided temporal pooling weights ``a``.

    A supervision of where the stages look, not an embedding-space loss: ablations switch it apart
    from the alignment terms.
    """

    def forward(self, output: GroundingOutput, batch: Batch) -> torch.Tensor:
        terms = [
            -torch.log((stage.attn.float() * batch.inside).sum(1).clamp_min(1e-6)).mean()
            for stage in output.stages.values()
            if stage.attn is not None
        ]
        return torch.stack(terms).mean() if terms else output.sentence.sum() * 0
