"""Grounding a video of any length with a model trained on short ones.

A checkpoint has seen videos of at most ``max_duration`` seconds (its training features' manifest says
so), each turned into ``data.num_clips`` model clips (or kept at its native clip count, capped at
``data.max_clips``). A video that fits is processed exactly as in training: one window. A longer one
is cut into windows of that many native clips with 50 % overlap (the last aligned to the video's
end); each window is prepared like a training video and the model runs on all of them in batches,
so memory grows with the batch, not with the video.

Merging: a window's ranked windows come from a softmax over its own clips, so every window has a
confident "best" moment even where nothing relevant happens, and those scores cannot be compared
across windows. Each candidate is re-scored as

    score = mean saliency over its clips (sigmoid of the inside logits: absolute, comparable)
            * its joint score / the best joint score of its window (how sure the window is of it)

then all candidates go through one temporal NMS (duplicates from overlapping windows merge) and the
best ``top_k`` are returned. Saliency per native clip is the mean over the windows that cover it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from grounding.data.features import resample_mean
from grounding.models.decoding import batched_nms


@dataclass(frozen=True)
class WindowPlan:
    """Native clip ranges ``[start, end)`` and the model clip count per window (None = native length)."""

    ranges: list[tuple[int, int]]
    model_clips: int | None


def plan_windows(num_native: int, window_clips: int) -> list[tuple[int, int]]:
    """``[0, T)`` when it fits, else windows of ``window_clips`` with stride ``window_clips // 2``, the last
    one ending at ``T``: ``plan_windows(10, 4) == [(0, 4), (2, 6), (4, 8), (6, 10)]``."""
    if num_native <= window_clips:
        return [(0, num_native)]
    stride = max(1, window_clips // 2)
    starts = list(range(0, num_native - window_clips + 1, stride))
    if starts[-1] + window_clips < num_native:
        starts.append(num_native - window_clips)
    return [(s, s + window_clips) for s in starts]


def window_clip_count(provenance: dict, clip_len: float) -> int:
    """Native clips per window: the longest training video, else the model's clip count, else 75."""
    longest = provenance.get("max_duration")
    if longest:
        return max(1, math.ceil(float(longest) / clip_len - 1e-6))
    return int(provenance.get("num_clips") or provenance.get("max_clips") or 75)


def prepare_window(feats: np.ndarray, l2_normalize: bool, num_clips: int | None, max_clips: int | None) -> np.ndarray:
    """A window's features as the data layer prepares a training video (``FeatureBank._prepare``)."""
    if l2_normalize:
        feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-6)
    if num_clips:
        feats = resample_mean(feats, num_clips)
    elif max_clips and feats.shape[0] > max_clips:
        feats = resample_mean(feats, max_clips)
    return np.ascontiguousarray(feats, dtype=np.float32)


def stack_windows(feats: np.ndarray, ranges: list[tuple[int, int]], l2_normalize: bool, num_clips: int | None,
                  max_clips: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W, T, D)`` model inputs, zero-padded, and their mask ``(W, T)``."""
    prepared = [prepare_window(feats[a:b], l2_normalize, num_clips, max_clips) for a, b in ranges]
    width = max(p.shape[0] for p in prepared)
    video = torch.zeros((len(prepared), width, feats.shape[1]), dtype=torch.float32)
    mask = torch.zeros((len(prepared), width), dtype=torch.bool)
    for i, p in enumerate(prepared):
        video[i, : p.shape[0]] = torch.from_numpy(p)
        mask[i, : p.shape[0]] = True
    return video, mask


def native_saliency(model_saliency: np.ndarray, native_len: int) -> np.ndarray:
    """Model-clip saliency ``(N,)`` of a window -> one value per native clip (the model clip holding its centre)."""
    n = model_saliency.shape[0]
    idx = np.minimum(((np.arange(native_len) + 0.5) * n / native_len).astype(np.int64), n - 1)
    return model_saliency[idx]


def window_mean(saliency: np.ndarray, start_s: float, end_s: float, clip_len: float) -> float:
    """Mean native-clip saliency over the clips a window in seconds touches."""
    a = int(np.clip(math.floor(start_s / clip_len), 0, len(saliency) - 1))
    b = int(np.clip(math.ceil(end_s / clip_len), a + 1, len(saliency)))
    return float(saliency[a:b].mean())


def merge_windows(candidates: list[tuple[float, float, float]], nms_threshold: float, top_k: int
                  ) -> list[list[float]]:
    """Global NMS over re-scored ``(start_s, end_s, score)`` candidates; best ``top_k`` first."""
    if not candidates:
        return []
    cands = sorted(candidates, key=lambda c: -c[2])
    windows = torch.tensor([[c[0], c[1]] for c in cands], dtype=torch.float64)[None]
    scores = torch.tensor([c[2] for c in cands], dtype=torch.float64)[None]
    keep = batched_nms(windows, scores, nms_threshold)[0].tolist()
    return [list(c) for c, k in zip(cands, keep, strict=True) if k][:top_k]
