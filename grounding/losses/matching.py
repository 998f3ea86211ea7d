"""Hungarian matching of a set of predicted moments to a query's ground-truth windows (the DETR family).

Every prediction set is matched one-to-one to the ground truth by the minimum-cost assignment, with
cost ``span * L1(cxw) - giou * gIoU - label * p(foreground)``; matched predictions learn their window,
the others learn "no moment". ``linear_sum_assignment`` is a small exact solver written here (the
shortest augmenting path method of Jonker and Volgenant), so the project needs no scipy: the matrices
are tiny (10 queries x a few windows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from grounding.data.batch import Batch
from grounding.models.outputs import MomentSet
from grounding.models.spans import cxw_to_xx, pairwise_iou_giou, xx_to_cxw


def linear_sum_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a minimum-cost assignment of a (N, M) cost matrix: ``min(N, M)`` pairs, rows
    ascending (the contract of ``scipy.optimize.linear_sum_assignment``)."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if not np.isfinite(cost).all():
        raise ValueError("linear_sum_assignment: the cost matrix holds NaN or inf")
    transposed = cost.shape[0] > cost.shape[1]
    c = cost.T if transposed else cost  # n <= m: every row is assigned
    n, m = c.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)  # dual potentials (index 0 is a sentinel)
    match = np.zeros(m + 1, dtype=np.int64)  # match[j] = row (1-based) assigned to column j, 0 = free
    for row in range(1, n + 1):
        match[0] = row
        col0 = 0
        dist = np.full(m + 1, np.inf)
        prev = np.zeros(m + 1, dtype=np.int64)
        used = np.zeros(m + 1, dtype=bool)
        while match[col0] != 0:  # grow the shortest-path tree until it reaches a free column
            used[col0] = True
            r = match[col0]
            free = ~used[1:]
            reduced = c[r - 1] - u[r] - v[1:]
            better = free & (reduced < dist[1:])
            dist[1:][better] = reduced[better]
            prev[1:][better] = col0
            candidates = np.where(free, dist[1:], np.inf)
            col1 = int(np.argmin(candidates)) + 1
            delta = candidates[col1 - 1]
            u[match[used]] += delta
            v[used] -= delta
            dist[1:][free] -= delta
            col0 = col1
        while col0:  # flip the augmenting path
            col1 = prev[col0]
            match[col0] = match[col1]
            col0 = col1
    cols = np.nonzero(match[1:])[0]
    rows = match[1:][cols] - 1
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows)
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


@dataclass(frozen=True)
class MatchCosts:
    """Weights of the matching cost (Moment-DETR's and QD-DETR's defaults)."""

    span: float = 10.0
    giou: float = 1.0
    label: float = 4.0


@dataclass
class Matches:
    """The matched pairs of one prediction set: query row, prediction slot and window slot, each (P,)."""

    row: torch.Tensor
    pred: torch.Tensor
    window: torch.Tensor

    def predicted(self, moments: MomentSet) -> torch.Tensor:
        """(P, 2) the matched predictions' ``(centre, width)``."""
        return moments.spans[self.row, self.pred]

    def targets(self, batch: Batch) -> torch.Tensor:
        """(P, 2) the matched windows' ``(centre, width)``."""
        return xx_to_cxw(batch.window_spans[self.row, self.window].float())


@torch.no_grad()
def match(moments: MomentSet, batch: Batch, costs: MatchCosts) -> Matches:
    """The minimum-cost one-to-one matching of each query's predictions to its ground-truth windows."""
    b, q, _ = moments.spans.shape
    spans, prob = moments.spans.float(), torch.sigmoid(moments.logits.float())
    rows, preds, windows = [], [], []
    for i in range(b):
        target = batch.window_spans[i][batch.window_mask[i]].float()  # (W, 2) start, end
        if len(target) == 0:
            continue
        l1 = torch.cdist(spans[i], xx_to_cxw(target), p=1)  # (Q, W)
        _, giou = pairwise_iou_giou(cxw_to_xx(spans[i]), target)
        cost = costs.span * l1 - costs.giou * giou - costs.label * prob[i, :, None]
        pred, window = linear_sum_assignment(cost.cpu().numpy())
        rows.append(np.full(len(pred), i))
        preds.append(pred)
        windows.append(np.nonzero(batch.window_mask[i].cpu().numpy())[0][window])
    device = moments.spans.device
    as_tensor = lambda parts: torch.as_tensor(np.concatenate(parts) if parts else np.zeros(0), dtype=torch.long,  # noqa: E731
                                              device=device)
    return Matches(as_tensor(rows), as_tensor(preds), as_tensor(windows))
