"""Losses of the DETR-family grounders (``output.moments``, ``output.saliency``), each reading (output, batch).

``set_prediction``: Hungarian-match every decoder layer's moment set to the ground-truth windows, then
``span_l1 * L1(centre, width) + giou * (1 - gIoU) + label * foreground BCE`` (unmatched moments learn
"no moment" with weight ``eos_coef``); the earlier layers' sets add the same terms (auxiliary losses).
The parts are logged as ``set_prediction/<part>``.

Saliency (highlight detection):
  ``saliency_margin`` Moment-DETR's hinge: a clip the annotators rated higher must score ``margin`` above a
                      lower one, for hard pairs (the highest vs the lowest rated relevant clips) and easy
                      pairs (a relevant vs an irrelevant clip).
  ``rank_contrastive`` QD-DETR's rank-aware contrastive term: for each rating level r, the clips rated >= r
                      must win a softmax over all the video's clips, the negative pair's clips included.
  ``negative_pair``   QD-DETR: every clip of a video paired with another query's sentence scores low,
                      ``-log(1 - sigmoid(s))`` summed over clips.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from grounding.data.batch import Batch
from grounding.errors import GroundingError
from grounding.losses.base import LOSSES, Loss
from grounding.losses.matching import MatchCosts, match
from grounding.models.outputs import GroundingOutput, MomentSet, negative_partners
from grounding.models.spans import cxw_to_xx, pairwise_iou_giou


def require_moments(output: GroundingOutput, term: str) -> MomentSet:
    if output.moments is None:
        raise GroundingError(f"loss '{term}' needs a model that predicts a set of moments "
                             "(model.name=moment_detr or qd_detr); set loss.{term}.weight=0 for this model")
    return output.moments


def set_terms(moments: MomentSet, batch: Batch, costs: MatchCosts, eos_coef: float) -> dict[str, torch.Tensor]:
    """L1, 1 - gIoU (means over matched moments) and the foreground BCE (mean over all moments) of one set."""
    found = match(moments, batch, costs)
    target = torch.zeros_like(moments.logits, dtype=torch.float32)
    target[found.row, found.pred] = 1.0
    weight = torch.where(target > 0, 1.0, eos_coef)
    label = (F.binary_cross_entropy_with_logits(moments.logits.float(), target, reduction="none") * weight).mean()
    if len(found.row) == 0:
        zero = moments.spans.sum() * 0
        return {"span_l1": zero, "giou": zero, "label": label}
    pred, gt = found.predicted(moments).float(), found.targets(batch)
    _, giou = pairwise_iou_giou(cxw_to_xx(pred), cxw_to_xx(gt))
    return {"span_l1": F.l1_loss(pred, gt), "giou": (1 - giou.diagonal()).mean(), "label": label}


@LOSSES.register("set_prediction")
class SetPrediction(Loss):
    """The matched set loss of the last decoder layer plus, with ``aux``, of every earlier layer."""

    def __init__(self, weight: float = 1.0, span_l1: float = 10.0, giou: float = 1.0, label: float = 4.0,
                 eos_coef: float = 0.1, cost_span: float = 10.0, cost_giou: float = 1.0, cost_label: float = 4.0,
                 aux: bool = True, **_: Any) -> None:
        super().__init__(weight)
        self.part_weights = {"span_l1": float(span_l1), "giou": float(giou), "label": float(label)}
        self.eos_coef = float(eos_coef)
        self.costs = MatchCosts(float(cost_span), float(cost_giou), float(cost_label))
        self.aux = bool(aux)
        self.parts: dict[str, torch.Tensor] = {}

    def forward(self, output: GroundingOutput, batch: Batch) -> torch.Tensor:
        moments = require_moments(output, "set_prediction")
        sets = [moments, *(moments.aux if self.aux else [])]
        total, self.parts = 0.0, {}
        for i, one in enumerate(sets):
            terms = set_terms(one, batch, self.costs, self.eos_coef)
            total = total + sum(self.part_weights[k] * v for k, v in terms.items())
            suffix = "" if i == 0 else f"_aux{i - 1}"
            self.parts.update({f"{k}{suffix}": v.detach() for k, v in terms.items()})
        return total


def clip_scores(output: GroundingOutput) -> tuple[torch.Tensor, torch.Tensor]:
    """Saliency logits (B, T) with padding at 0 (so that no arithmetic on them overflows), and the clip mask."""
    if output.saliency is None:
        raise GroundingError("a saliency loss needs a model with a saliency head")
    mask = output.clip_mask
    return output.saliency.float().masked_fill(~mask, 0.0), mask


def pick(keys: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` clips of each row with the highest ``keys`` (-inf = not a candidate) and whether each exists."""
    values, index = keys.topk(min(k, keys.shape[1]), dim=1)
    return index, torch.isfinite(values)


@LOSSES.register("saliency_margin")
class SaliencyMargin(Loss):
    """``max(0, margin + s_neg - s_pos)`` over ``pairs`` hard and ``pairs`` easy pairs a query, summed and
    divided by (queries x pairs) / 2, as Moment-DETR scales it. Pairs are drawn afresh each step: hard =
    the highest against the lowest rated relevant clips (ties broken at random; with ``ties="skip"`` a pair
    of equal ratings is skipped, which is how data without graded ratings trains; ``"keep"`` keeps it, as
    the authors' loader does, so the hinge then pushes one of two equally rated clips above the other),
    easy = a random relevant against a random irrelevant clip. Relevant = saliency target > 0."""

    def __init__(self, weight: float = 1.0, margin: float = 0.2, pairs: int = 2, ties: str = "skip", **_: Any) -> None:
        super().__init__(weight)
        if ties not in ("skip", "keep"):
            raise GroundingError(f"loss.saliency_margin.ties is '{ties}'; use skip or keep")
        self.margin, self.pairs, self.keep_ties = float(margin), int(pairs), ties == "keep"

    def forward(self, output: GroundingOutput, batch: Batch) -> torch.Tensor:
        scores, mask = clip_scores(output)
        target = batch.saliency.float()
        relevant, irrelevant = (target > 0) & mask, (target <= 0) & mask
        noise = torch.rand_like(target)
        inf = torch.tensor(float("-inf"), device=target.device)
        hard_pos, ok_hp = pick(torch.where(relevant, target + 1e-3 * noise, inf), self.pairs)
        hard_neg, ok_hn = pick(torch.where(relevant, -(target + 1e-3 * noise), inf), self.pairs)  # same noise: not the hard positive
        easy_pos, ok_ep = pick(torch.where(relevant, noise, inf), self.pairs)
        easy_neg, ok_en = pick(torch.where(irrelevant, noise, inf), self.pairs)
        pos, neg = torch.cat([hard_pos, easy_pos], 1), torch.cat([hard_neg, easy_neg], 1)
        valid = torch.cat([ok_hp & ok_hn, ok_ep & ok_en], 1)
        if not self.keep_ties:
            valid = valid & (target.gather(1, pos) > target.gather(1, neg))
        hinge = (self.margin + scores.gather(1, neg) - scores.gather(1, pos)).clamp_min(0) * valid
        return hinge.sum() / (len(scores) * 2 * self.pairs) * 2


def negative_rows(output: GroundingOutput, batch: Batch) -> torch.Tensor | None:
    """(B,) which rows of ``output.negative_saliency`` are real negative pairs (None when there are none)."""
    if output.negative_saliency is None:
        return None
    return negative_partners(batch.vid_index)[1]


@LOSSES.register("rank_contrastive")
class RankContrastive(Loss):
    """For each rating level r = 1 .. levels - 1 (ratings: ``round(saliency target * levels)``, so QVHighlights'
    sum of three 0-4 scores gives levels 12), ``-mean log softmax(s / tau)`` over the clips rated >= r, the
    softmax taken over the video's clips and (where the model made them) its negative pair's clips, which
    are rated 0. Rows without a clip rated >= r add 0; the sum over levels is divided by ``levels``."""

    def __init__(self, weight: float = 1.0, tau: float = 0.5, levels: int = 12, **_: Any) -> None:
        super().__init__(weight)
        self.tau, self.levels = float(tau), int(levels)

    def forward(self, output: GroundingOutput, batch: Batch) -> torch.Tensor:
        scores, mask = clip_scores(output)
        ratings = torch.round(batch.saliency.float() * self.levels) * mask
        neg_rows = negative_rows(output, batch)
        if neg_rows is not None:
            neg_mask = mask & neg_rows[:, None]
            scores = torch.cat([scores, output.negative_saliency.float().masked_fill(~neg_mask, 0.0)], 1)
            ratings = torch.cat([ratings, torch.zeros_like(ratings)], 1)
            mask = torch.cat([mask, neg_mask], 1)
        log_prob = torch.log_softmax((scores / self.tau).masked_fill(~mask, float("-inf")), dim=1).masked_fill(~mask, 0)
        total = scores.sum() * 0
        for level in range(1, self.levels):
            positive = (ratings >= level) & mask
            count = positive.sum(1)
            per_row = -(log_prob * positive).sum(1) / count.clamp_min(1)
            total = total + (per_row * (count > 0)).mean()
        return total / self.levels


@LOSSES.register("negative_pair")
class NegativePair(Loss):
    """``sum over clips of -log(1 - sigmoid(s_neg))``, averaged over queries: a video's clips must not look
    salient for a sentence about another video."""

    def forward(self, output: GroundingOutput, batch: Batch) -> torch.Tensor:
        rows = negative_rows(output, batch)
        if rows is None:
            return batch.saliency.sum() * 0
        valid = output.clip_mask & rows[:, None]
        return (F.softplus(output.negative_saliency.float().masked_fill(~valid, 0.0)) * valid).sum(1).mean()
