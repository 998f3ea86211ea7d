"""From per-clip scores to ranked windows in seconds, fully batched.

A window ``(i, j)`` (clips, end inclusive, ``j >= i``, at most ``max_len`` of the video long) scores
``p_start(i) * p_end(j)``, times ``(mean inside-moment probability over [i, j]) * (1 - mean over the
other clips)`` raised to ``inside_weight`` (0 ignores it): the second factor stops a short window
inside a long moment from scoring as well as the whole moment. The best ``candidates`` windows go through greedy temporal NMS
(a window is dropped when its IoU with a better kept one exceeds ``nms_threshold``; 1.0 = no NMS),
and the first ``topk`` survivors are returned as ``[start_s, end_s, score]``. Clip ``i`` of ``T``
spans ``[i, i + 1) * duration / T``.

A set prediction (``output.moments``, the DETR family) is decoded by ``decode_moments`` instead: its
moments, clipped to the video, ranked by foreground probability, through the same NMS (``nms_threshold:
1.0``, no NMS, is what Moment-DETR and QD-DETR do), the first ``topk`` kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from grounding.models.layers import masked_softmax
from grounding.models.outputs import GroundingOutput, MomentSet, StageOutput
from grounding.models.spans import cxw_to_xx


@dataclass
class DecodeConfig:
    topk: int = 5
    max_len: float = 1.0  # longest window as a fraction of the video
    nms_threshold: float = 0.5
    inside_weight: float = 0.0
    candidates: int = 50

    @classmethod
    def from_config(cls, cfg: Any) -> DecodeConfig:
        """From the config's ``decode`` section (missing keys keep the defaults above)."""
        section = cfg.get("decode") or {}
        return cls(**{k: v for k, v in dict(section).items() if v is not None})


def pairwise_window_iou(w: torch.Tensor) -> torch.Tensor:
    """IoU between all windows of each row: (B, C, 2) -> (B, C, C)."""
    start, end = w[..., 0], w[..., 1]
    inter = (torch.minimum(end[:, :, None], end[:, None]) - torch.maximum(start[:, :, None], start[:, None])).clamp_min(0)
    union = torch.maximum(end[:, :, None], end[:, None]) - torch.minimum(start[:, :, None], start[:, None])
    return inter / union.clamp_min(1e-9)


def batched_nms(windows: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy NMS on windows sorted by descending score (B, C, 2); returns a keep mask (B, C).

    Greedy NMS keeps window c iff no *kept* better window overlaps it by more than ``threshold``.
    That rule has exactly one solution, so instead of a Python loop over the C candidates we iterate
    ``keep <- valid & ~any(keep[c'] & overlaps[c', c])`` over whole tensors until it stops changing:
    after k rounds the first k windows are final, and in practice it settles in a handful of rounds.
    """
    valid = torch.isfinite(scores) & (scores > 0)
    if threshold >= 1.0:
        return valid
    c = windows.shape[1]
    earlier = torch.ones(c, c, dtype=torch.bool, device=windows.device).triu(1)  # [c', c]: c' ranks above c
    suppresses = (pairwise_window_iou(windows) > threshold) & earlier  # (B, C', C)
    keep = valid
    for _ in range(c):
        new_keep = valid & ~(keep.unsqueeze(2) & suppresses).any(1)
        if torch.equal(new_keep, keep):
            break
        keep = new_keep
    return keep


def window_scores(start_logits, end_logits, inside_logits, mask, max_len: float, inside_weight: float) -> torch.Tensor:
    """Joint scores (B, T, T) of every window (start i, end j); invalid windows score 0."""
    p_start, p_end = masked_softmax(start_logits.float(), mask), masked_softmax(end_logits.float(), mask)
    scores = p_start[:, :, None] * p_end[:, None, :]
    t = mask.shape[1]
    idx = torch.arange(t, device=mask.device)
    length = idx[None, :] - idx[:, None] + 1  # (T, T), clips in window (i, j)
    num = mask.sum(1).view(-1, 1, 1)
    valid = (length[None] >= 1) & (length[None] <= (max_len * num).clamp_min(1)) & mask[:, :, None] & mask[:, None, :]
    if inside_weight > 0:
        p_in = torch.sigmoid(inside_logits.float()) * mask
        csum = torch.cat([torch.zeros_like(p_in[:, :1]), p_in.cumsum(1)], dim=1)  # (B, T + 1)
        in_sum = csum[:, None, 1:] - csum[:, :-1, None]  # (B, T, T): sum over clips i..j
        mean_in = in_sum / length.clamp_min(1)[None]
        outside = (num - length[None]).clamp_min(1)
        mean_out = (csum[:, -1].view(-1, 1, 1) - in_sum) / outside
        scores = scores * (mean_in * (1 - mean_out)).clamp_min(1e-9) ** inside_weight
    return scores * valid


def decode(stage: StageOutput, mask: torch.Tensor, duration: torch.Tensor,
           cfg: DecodeConfig, saliency_logits: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Ranked windows (B, K, 3) as ``[start_s, end_s, score]`` (rows past the valid ones are NaN) and
    per-clip saliency (B, T) = sigmoid(saliency head logits), or sigmoid(inside logits) for a model
    without a saliency head; 0 on padding."""
    scores = window_scores(stage.start_logits, stage.end_logits, stage.inside_logits, mask, cfg.max_len, cfg.inside_weight)
    b, t, _ = scores.shape
    top = scores.view(b, -1).topk(min(cfg.candidates, t * t), dim=1)
    starts, ends = top.indices // t, top.indices % t
    step = (duration / mask.sum(1).clamp_min(1)).unsqueeze(1)
    windows = torch.stack([starts * step, (ends + 1) * step], dim=-1)  # (B, C, 2)
    picked = ranked_windows(windows, top.values, cfg)
    saliency = torch.sigmoid((stage.inside_logits if saliency_logits is None else saliency_logits).float()) * mask
    return picked, saliency


def ranked_windows(windows: torch.Tensor, scores: torch.Tensor, cfg: DecodeConfig) -> torch.Tensor:
    """Candidate windows (B, C, 2) in seconds with ``scores`` (B, C) sorted best first -> the first ``topk``
    survivors of NMS as (B, K, 3) ``[start_s, end_s, score]``, NaN rows past the kept ones."""
    keep = batched_nms(windows, scores, cfg.nms_threshold)
    # stable order: kept windows first (by score), then drop the rest
    rank = torch.where(keep, torch.arange(keep.shape[1], device=keep.device)[None].float(), float("inf"))
    order = rank.argsort(dim=1)[:, : cfg.topk]
    picked = torch.cat([windows.gather(1, order[..., None].expand(-1, -1, 2)), scores.gather(1, order)[..., None]], -1)
    picked[~keep.gather(1, order)] = float("nan")
    return picked


def decode_moments(moments: MomentSet, duration: torch.Tensor, cfg: DecodeConfig) -> torch.Tensor:
    """Ranked windows (B, K, 3) of a set prediction: every moment clipped to the video, scored by its
    foreground probability (a moment of zero length after clipping is dropped)."""
    spans = cxw_to_xx(moments.spans.float()).clamp(0, 1)
    scores = torch.sigmoid(moments.logits.float()).masked_fill(spans[..., 1] <= spans[..., 0], 0.0)
    scores, order = scores.sort(dim=1, descending=True)
    windows = spans.gather(1, order[..., None].expand(-1, -1, 2)) * duration[:, None, None]
    return ranked_windows(windows, scores, cfg)


def decode_output(output: GroundingOutput, duration: torch.Tensor, cfg: DecodeConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``decode`` of a model's output (its decoded stage's windows and its saliency head's clip scores), or
    ``decode_moments`` of its set prediction with the saliency head's raw scores (0 on padding), as the
    DETR family's authors write them: only their ranking means something, and a sigmoid rounds to 0 in the
    prediction file once QD-DETR's negative-pair term has pushed every score far below 0."""
    if output.moments is None:
        return decode(output.decoded, output.clip_mask, duration, cfg, output.saliency)
    saliency = output.saliency.float().masked_fill(~output.clip_mask, 0.0)
    return decode_moments(output.moments, duration, cfg), saliency
