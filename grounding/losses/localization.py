"""Localisation losses, applied to every stage's start/end/inside logits and span.

Notation: ``s*``, ``e*`` target start/end clips; ``p_s = softmax(start_logits)`` over real clips.
Queries with several ground-truth windows (QVHighlights) train on all of them: the boundary target is
the mixture of every window's start (end) distribution, and a span loss compares the predicted span
with the window it overlaps most.
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
        for logits, side in ((stage.start_logits, 0), (stage.end_logits, 1)):
            log_p = torch.log_softmax(logits.float(), dim=1).masked_fill(~mask, 0.0)
            total = total + -(window_mixture(batch, side, self.sigma) * log_p).sum(1).mean()
        return total / 2


def window_mixture(batch: Batch, side: int, sigma: float) -> torch.Tensor:
    """The boundary target (B, T): the mean over each query's windows of their start (side 0) or end (1)
    target distributions."""
    b, w = batch.window_mask.shape
    mask = batch.clip_mask[:, None].expand(b, w, -1).reshape(b * w, -1)
    targets = soft_targets(batch.window_clips[..., side].reshape(-1), mask, sigma).view(b, w, -1)
    weights = batch.window_mask.float() / batch.window_mask.sum(1, keepdim=True).clamp_min(1)
    return (targets * weights[..., None]).sum(1)


def temporal_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of spans (B, 2) and (B, 2); an empty union gives 0."""
    inter = (torch.minimum(pred[:, 1], target[:, 1]) - torch.maximum(pred[:, 0], target[:, 0])).clamp_min(0)
    union = torch.maximum(pred[:, 1], target[:, 1]) - torch.minimum(pred[:, 0], target[:, 0])
    return inter / union.clamp_min(1e-6)


SPAN_CHOICES = ("both", "own", "refined")


def predicted_spans(stage: StageOutput, which: str = "both") -> list[torch.Tensor]:
    """The spans a span loss supervises: ``own`` = the span implied by the stage's start/end
    distributions (the logits decoding reads), ``refined`` = the regressed span where the stage has one
    (else its own), ``both`` = each of them."""
    if stage.refined_span is None or which == "own":
        return [stage.span]
    return [stage.refined_span] if which == "refined" else [stage.span, stage.refined_span]


def matched_window(span: torch.Tensor, batch: Batch) -> torch.Tensor:
    """(B, 2) for each query the ground-truth window its predicted ``span`` overlaps most (the first on ties)."""
    b, w = batch.window_mask.shape
    if w == 1:
        return batch.window_spans[:, 0]
    iou = temporal_iou(span.detach().float()[:, None].expand(b, w, 2).reshape(-1, 2), batch.window_spans.reshape(-1, 2))
    best = iou.view(b, w).masked_fill(~batch.window_mask, -1.0).argmax(1)
    return batch.window_spans[torch.arange(b, device=span.device), best]


class SpanLoss(Loss):
    """A per-stage loss between predicted spans and their matched ground-truth windows; ``spans`` picks
    which predicted spans it supervises (``predicted_spans``)."""

    per_stage = True

    def __init__(self, weight: float = 1.0, spans: str = "both", **_: Any) -> None:
        super().__init__(weight)
        if spans not in SPAN_CHOICES:
            raise ValueError(f"loss spans must be one of {SPAN_CHOICES}, not '{spans}'")
        self.spans = spans

    def distance(self, span: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def stage(self, stage: StageOutput, batch: Batch) -> torch.Tensor:
        terms = [self.distance(span.float(), matched_window(span, batch)) for span in predicted_spans(stage, self.spans)]
        return torch.stack(terms).mean()


@LOSSES.register("span_l1")
class SpanL1(SpanLoss):
    """|span - span*|_1 on normalised [start, end]."""

    def distance(self, span: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(span, target, reduction="none").sum(1).mean()


@LOSSES.register("span_iou")
class SpanIoU(SpanLoss):
    """1 - tIoU(span, span*)."""

    def distance(self, span: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (1 - temporal_iou(span, target)).mean()


@LOSSES.register("inside_bce")
class InsideBCE(Loss):
    """Binary cross-entropy of the per-clip inside-moment logits against the target mask, over real clips."""

    per_stage = True

    def stage(self, stage: StageOutput, batch: Batch) -> torch.Tensor:
        mask = batch.clip_mask
        logits = stage.inside_logits.float().masked_fill(~mask, 0.0)
        bce = F.binary_cross_entropy_with_logits(logits, batch.inside, reduction="none")
        return ((bce * mask).sum(1) / mask.sum(1).clamp_min(1)).mean()



@LOSSES.register("saliency")
class SaliencyRanking(Loss):
    """Highlight detection: the saliency head must rank clips by their saliency target.

    A pairwise logistic ranking loss over every pair of real clips of a query whose targets differ,
    ``mean log(1 + exp(-(s_i - s_j)))`` for ``t_i > t_j``, weighted by ``t_i - t_j`` (a clip rated 4
    against one rated 0 matters more than 3 against 2), plus ``bce`` times a binary cross-entropy of
    ``sigmoid(s)`` against ``t`` so the scores are also usable as probabilities (the long-video merge
    reads them). Ranking is what HL-mAP and HL-Hit1 measure; a pairwise loss needs no margin to tune.
    Targets are the annotated scores where the data has them, else the ground-truth windows' clips.
    """

    def __init__(self, weight: float = 1.0, bce: float = 0.5, **_: Any) -> None:
        super().__init__(weight)
        self.bce = float(bce)

    def forward(self, output, batch: Batch) -> torch.Tensor:
        if output.saliency is None:
            return batch.saliency.sum() * 0
        mask, target = output.clip_mask, batch.saliency.float()
        logits = output.saliency.float().masked_fill(~mask, 0.0)
        gap = target[:, :, None] - target[:, None, :]  # (B, T, T): t_i - t_j
        pairs = (gap > 0) & mask[:, :, None] & mask[:, None, :]
        rank = F.softplus(-(logits[:, :, None] - logits[:, None, :])) * gap
        loss = (rank * pairs).sum() / (gap * pairs).sum().clamp_min(1e-6)
        if self.bce > 0:
            bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            loss = loss + self.bce * (bce * mask).sum() / mask.sum().clamp_min(1)
        return loss
