"""Span geometry of set predictions: (centre, width) <-> (start, end) and the pairwise (generalised) IoU.

Spans are normalised to the video ([0, 1]). The DETR family regresses ``(centre, width)``; IoU, gIoU and
decoding read ``(start, end)``.
"""

from __future__ import annotations

import torch


def cxw_to_xx(spans: torch.Tensor) -> torch.Tensor:
    """(.., 2) ``(centre, width)`` -> ``(start, end)``."""
    centre, width = spans.unbind(-1)
    return torch.stack([centre - 0.5 * width, centre + 0.5 * width], dim=-1)


def xx_to_cxw(spans: torch.Tensor) -> torch.Tensor:
    """(.., 2) ``(start, end)`` -> ``(centre, width)``."""
    start, end = spans.unbind(-1)
    return torch.stack([0.5 * (start + end), end - start], dim=-1)


def pairwise_iou_giou(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and generalised IoU (N, M) of every ``(start, end)`` span of ``a`` (N, 2) with every one of ``b`` (M, 2).

    gIoU = IoU - (hull - union) / hull, where hull is the smallest span covering both: unlike IoU it still
    says how far apart two disjoint spans are, so it gives a gradient before predictions overlap.
    """
    a, b = a[:, None], b[None]
    inter = (torch.minimum(a[..., 1], b[..., 1]) - torch.maximum(a[..., 0], b[..., 0])).clamp_min(0)
    union = (a[..., 1] - a[..., 0]) + (b[..., 1] - b[..., 0]) - inter
    iou = inter / union.clamp_min(1e-6)
    hull = (torch.maximum(a[..., 1], b[..., 1]) - torch.minimum(a[..., 0], b[..., 0])).clamp_min(1e-6)
    return iou, iou - (hull - union) / hull
