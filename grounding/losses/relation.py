"""The training signals of the relation parts: the reference is another event than the target, and each
word is shown in its own video.

``RelationCue`` (``grounding.models.relation``) puts a distribution over the clips where the sentence's
reference event is; left to the end task alone, its earlier versions learnt to find the *target* event
(docs/model.md, "Relation-aware grounding"): the easiest thing a second pooling of the sentence can
find. This term pushes the distribution's mass off the ground-truth moment; since the target's other
occurrences look like it, the mass must move to what else the sentence names. It needs nothing but the
ground-truth window, so it applies to any dataset, and is zero for a model without a cue.
"""

from __future__ import annotations

from typing import Any

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


@LOSSES.register("word_grounding")
class WordGroundingMIL(Loss):
    """Multiple-instance contrast of every word with the batch's videos: a word's score for a video is its
    best cosine with one of the video's clips, and its own video must win (InfoNCE over the batch's
    distinct videos, mean over real words). Needs only the sentence-video pairing, so it applies to any
    dataset; words every video shows ("a", "person") cannot win and keep a flat loss. Zero for a model
    without word relations (``model.word_relations``)."""

    def forward(self, output: GroundingOutput, batch: Batch) -> torch.Tensor:
        g = output.word_grounding
        if g is None:
            return output.sentence.sum() * 0
        cos = torch.einsum("ble,cte->blct", g.words, g.clips).float()  # (B, L, B, T)
        best = cos.masked_fill(~g.clip_mask[None, None], -2.0).amax(-1)  # (B, L, B): best clip of each row's video
        rows = torch.arange(len(g.vid_index), device=cos.device)
        same = g.vid_index[:, None] == g.vid_index[None, :]
        first = ~(same & (rows[None, :] < rows[:, None])).any(1)  # the first row of each distinct video
        keep = (rows[:, None] == rows[None, :]) | (~same & first[None, :])  # own row, one row per other video
        logits = (best * g.scale).masked_fill(~keep[:, None, :], torch.finfo(torch.float32).min)
        nll = -torch.log_softmax(logits, dim=-1)[rows, :, rows]  # (B, L)
        mask = g.word_mask.float()
        return (nll * mask).sum() / mask.sum().clamp_min(1.0)


@LOSSES.register("word_reference_off_target")
class WordReferenceOffTarget(Loss):
    """What trains word relations' selections (the end task does not): mean over queries and heads of
    ``-log(1 - m)``, ``m`` the head's reference mass inside the ground-truth moment(s), plus ``sharpness``
    times its entropy over the clips (divided by log T: 1 for an even spread). A reference is a distribution
    over the clips (the selected words grounded together), so it cannot switch off: pushed off the target
    and onto one event, it must select the words of the sentence's other phrase, which one event shows
    (the named event's words lie on every occurrence of it, one of them the target). A plain query has no
    other phrase: its reference lands on a look-alike or spreads, and the gate of ``WordRelations`` learns
    that a sentence without a relation needs no cue. Needs only the ground-truth window, so it applies to any
    dataset; zero without word relations."""

    def __init__(self, weight: float = 1.0, sharpness: float = 0.0, **_: Any) -> None:
        super().__init__(weight)
        self.sharpness = float(sharpness)

    def forward(self, output: GroundingOutput, batch: Batch) -> torch.Tensor:
        g = output.word_grounding
        if g is None or g.references is None:
            return output.sentence.sum() * 0
        clip_mask = g.clip_mask.float()[:, None, :]  # (B, 1, T)
        refs = g.references.float()
        mass = (refs * batch.inside.float()[:, None, :] * clip_mask).sum(-1)  # (B, H)
        loss = -torch.log1p(-mass.clamp(max=1 - 1e-4)).mean()
        if self.sharpness > 0:  # entropy / log(clips): 1 for a flat reference, 0 for a single clip
            entropy = -(refs * torch.log(refs.clamp_min(1e-12)) * clip_mask).sum(-1)
            loss = loss + self.sharpness * (entropy / torch.log(clip_mask.sum(-1).clamp_min(2.0))).mean()
        return loss


__all__ = ["ReferenceOffTarget", "WordGroundingMIL", "WordReferenceOffTarget"]
