"""Localisation losses, applied to every stage's start/end/inside logits and span.

Notation: ``s*``, ``e*`` target start/end clips; ``p_s = softmax(start_logits)`` over real clips.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from grounding.data.batch import Batch
from grounding.losses.base import LOSSES, Loss
from grounding.models.outputs import StageOutput


def soft_targets(index: torch.Tensor, mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """One-hot (sigma = 0) or Gaussian (sigma in clips) target distributions (B, T) over real clips."""
    pos = torch.arange(mask.shape[1], device=mask.device)[None].float()
    if sigma <= 0:
        return (pos == index[:, None]).float()
    target = torch.exp(-0.5 * ((pos - index[:, None].float()) / sigma) ** 2) * mask
    return target / target.sum(1, keepdim=True)


@LOSSES.register("boundary_ce")
class BoundaryCrossEntropy(Loss):
    """CE(p_s, s*) + CE(p_e, e*), with optional Gaussian soft targets of width ``gaussian_sigma`` clips."""

    per_stage = True

    def __init__(self, weight: float = 1.0, gaussian_sigma: float = 0.0, **_: Any) -> None:
        super().__init__(weight)
        self.sigma = float(gaussian_sigma)

    def stage(self, stage: StageOutput, batch: Batch) -> torch.Tensor:
        mask = batch.clip_mask
        total = 0.0
        for logits, index in ((stage.start_logits, batch.start_idx), (stage.end_logits, batch.end_idx)):
            log_p = torch.log_softmax(logits.float(), dim=1).masked_fill(~mask, 0.0)
            total = total + -(soft_targets(index, mask, self.sigma) * log_p).sum(1).mean()
        return total / 2


def temporal_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of spans (B, 2) and (B, 2); an empty union gives 0."""
    inter = (torch.minimum(pred[:, 1], target[:, 1]) - torch.maximum(pred[:, 0], target[:, 0])).clamp_min(0)
    union = torch.maximum(pred[:, 1], target[:, 1]) - torch.minimum(pred[:, 0], target[:, 0])
    return inter / union.clamp_min(1e-6)


def predicted_spans(stage: StageOutput) -> list[torch.Tensor]:
    """The spans a span loss supervises: the one implied by the stage's own start/end distributions
    (the logits that decoding reads), and the refined span where the stage regresses one."""
    return [stage.span] if stage.refined_span is None else [stage.span, stage.refined_span]


@LOSSES.register("span_l1")
class SpanL1(Loss):
    """|span - span*|_1 on normalised [start, end] (averaged over ``predicted_spans``)."""

    per_stage = True

    def stage(self, stage: StageOutput, batch: Batch) -> torch.Tensor:
        terms = [F.l1_loss(span.float(), batch.span, reduction="none").sum(1).mean() for span in predicted_spans(stage)]
        return torch.stack(terms).mean()


@LOSSES.register("span_iou")
class SpanIoU(Loss):
    """1 - tIoU(span, span*) (averaged over ``predicted_spans``)."""

    per_stage = True

    def stage(self, stage: StageOutput, batch: Batch) -> torch.Tensor:
        return torch.stack([(1 - temporal_iou(span.float(), batch.span)).mean() for span in predicted_spans(stage)]).mean()


@LOSSES.register("inside_bce")
class InsideBCE(Loss):
    """Binary cross-entropy of the per-clip inside-moment logits against the target mask, over real clips."""

    per_stage = True

    def stage(self, stage: StageOutput, batch: Batch) -> torch.Tensor:
        mask = batch.clip_mask
        logits = stage.inside_logits.float().masked_fill(~mask, 0.0)
        bce = F.binary_cross_entropy_with_logits(logits, batch.inside, reduction="none")
        return ((bce * mask).sum(1) / mask.sum(1).clamp_min(1)).mean()

