"""The relation cue's training signal: the reference is another event than the target.

``RelationCue`` (``grounding.models.relation``) puts a distribution over the clips where the sentence's
reference event is; left to the end task alone, its earlier versions learnt to find the *target* event
(docs/model.md, "Relation-aware grounding"): the easiest thing a second pooling of the sentence can
find. This term pushes the distribution's mass off the ground-truth moment; since the target's other
occurrences look like it, the mass must move to what else the sentence names. It needs nothing but the
ground-truth window, so it applies to any dataset, and is zero for a model without a cue.
"""

from __future__ import annotations

import torch

from grounding.data.batch import Batch
from grounding.losses.base import LOSSES, Loss
from grounding.models.outputs import GroundingOutput


@LOSSES.register("reference_off_target")
class ReferenceOffTarget(Loss):
    """Mean over queries of ``-log(1 - r_t)`` averaged over the clips of the ground-truth moment(s)."""

    def forward(self, output: GroundingOutput, batch: Batch) -> torch.Tensor:
        inside = batch.inside.float()
        terms = [(-torch.log1p(-stage.reference.float().clamp(max=1 - 1e-4)) * inside).sum(1)
                 / inside.sum(1).clamp_min(1.0)
                 for stage in output.stages.values() if stage.reference is not None]
        return torch.stack(terms).mean() if terms else output.sentence.sum() * 0


__all__ = ["ReferenceOffTarget"]
