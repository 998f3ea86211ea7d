"""Vectorised temporal IoU between [start, end] windows.

Windows are taken as given: nothing is clipped to the video here, so a prediction past the end of the
video is scored as it is. A zero-length or reversed window, a degenerate union and a NaN (padding)
window all give IoU 0, never NaN, so padded batches can be reduced without masking first.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Union = Literal["hull", "sum"]


def pairwise_iou(pred: np.ndarray, gt: np.ndarray, union: Union = "hull") -> np.ndarray:
    """IoU of every ``pred`` window with every ``gt`` window: (..., N, 2) x (..., M, 2) -> (..., N, M).

    Leading dimensions broadcast, so ``pred (B, K, 2)`` with ``gt (M, 2)`` gives ``(B, K, M)`` and
    ``pred (Q, K, 2)`` with ``gt (Q, G, 2)`` gives each query's own ``(K, G)`` block.

    ``union`` picks how the union is computed; the two agree exactly in real arithmetic whenever the
    windows overlap (otherwise IoU is 0 either way) and differ only in float rounding. Matching the
    rounding matters at a threshold: ``"hull"`` (``max(end) - min(start)``) is what the 2D-TAN/VSLNet
    evaluators and the official QVHighlights R1 use; ``"sum"`` (``len_a + len_b - inter``) is what
    the official QVHighlights mAP uses.
    """
    pred = np.asarray(pred, dtype=float)
    gt = np.asarray(gt, dtype=float)
    p_start, p_end = pred[..., :, None, 0], pred[..., :, None, 1]  # (..., N, 1)
    g_start, g_end = gt[..., None, :, 0], gt[..., None, :, 1]  # (..., 1, M)
    with np.errstate(invalid="ignore"):
        inter = np.minimum(p_end, g_end) - np.maximum(p_start, g_start)  # (..., N, M), NaN for padding
        if union == "hull":
            total = np.maximum(p_end, g_end) - np.minimum(p_start, g_start)
        elif union == "sum":
            total = (p_end - p_start) + (g_end - g_start) - inter
        else:
            raise ValueError(f"union must be 'hull' or 'sum', not {union!r}")
        # inter > 0 implies both windows are well formed and total >= inter > 0, so IoU is in (0, 1].
        overlap = inter > 0
    return np.divide(inter, total, out=np.zeros(np.broadcast(inter, total).shape), where=overlap)
