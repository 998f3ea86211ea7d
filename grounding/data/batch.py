"""The one batch contract every path feeds the model: per-item loaders, tensorized splits, benchmarks,
the compatibility study, and single-video inference.

A batch holds each of its videos *once* and points every query at its video, so a video with several
queries in the batch runs through the video encoder a single time:

    video        (V, T, D) float   clip features of the batch's distinct videos   video_mask (V, T) bool
    vid_index    (B,) int64        row of ``video`` that query b is about
    words        (B, L) int64 ids or (B, L, Dw) float token features             word_mask  (B, L) bool
    span         (B, 2) float      target window, normalised to [0, 1]
    start_idx, end_idx (B,) int64  clips holding the target start / end (end inclusive)
    inside       (B, T) float      1 on the target window's clips, 0 elsewhere and on padding
    duration     (B,) float        seconds
    qid, vid, query, windows       per-query lists (windows: every ground-truth window, seconds)

``make_batch`` is the only constructor; ``target_window`` is the only rule for which window trains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch


def target_window(windows: Sequence[Sequence[float]], duration: float) -> list[float]:
    """The window a query trains on: its first ground-truth window, or the whole video when it has none."""
    return [float(windows[0][0]), float(windows[0][1])] if windows else [0.0, float(duration)]


def window_to_clips(window: Sequence[float], duration: float, num_clips: int) -> tuple[int, int]:
    """First and last (inclusive) clip index that a ``[start, end]`` window in seconds touches."""
    start, end = window
    s_idx = int(np.clip(np.floor(start / duration * num_clips), 0, num_clips - 1))
    e_idx = int(np.clip(np.ceil(end / duration * num_clips) - 1, 0, num_clips - 1))
    return s_idx, max(s_idx, e_idx)


def pad_sequences(arrays: Sequence[np.ndarray | torch.Tensor], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-length arrays along a new batch axis, zero-padded, with a validity mask."""
    lengths = [a.shape[0] for a in arrays]
    out = torch.zeros((len(arrays), max(lengths), *arrays[0].shape[1:]), dtype=dtype)
    mask = torch.zeros((len(arrays), max(lengths)), dtype=torch.bool)
    for i, (a, n) in enumerate(zip(arrays, lengths, strict=True)):
        out[i, :n] = torch.as_tensor(np.asarray(a) if not torch.is_tensor(a) else a).to(dtype)
        mask[i, :n] = True
    return out, mask


@dataclass
class Batch:
    video: torch.Tensor
    video_mask: torch.Tensor
    vid_index: torch.Tensor
    words: torch.Tensor
    word_mask: torch.Tensor
    span: torch.Tensor
    start_idx: torch.Tensor
    end_idx: torch.Tensor
    inside: torch.Tensor
    duration: torch.Tensor
    qid: list[Any] = field(default_factory=list)
    vid: list[str] = field(default_factory=list)
    query: list[str] = field(default_factory=list)
    windows: list[list[list[float]]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.vid_index.shape[0])

    @property
    def clip_mask(self) -> torch.Tensor:
        """(B, T) the valid clips of each query's video."""
        return self.video_mask[self.vid_index]

    @property
    def num_clips(self) -> torch.Tensor:
        """(B,) clips in each query's video."""
        return self.clip_mask.sum(1)

    def to(self, device: torch.device | str) -> Batch:
        """The same batch with every tensor on ``device`` (non-blocking where the memory is pinned)."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(self, **{k: v.to(device, non_blocking=True) for k, v in moved.items() if torch.is_tensor(v)})


def make_batch(
    video: torch.Tensor,
    video_mask: torch.Tensor,
    vid_index: torch.Tensor,
    words: torch.Tensor,
    word_mask: torch.Tensor,
    start_idx: torch.Tensor,
    end_idx: torch.Tensor,
    span: torch.Tensor,
    duration: torch.Tensor,
    qid: Sequence[Any] = (),
    vid: Sequence[str] = (),
    query: Sequence[str] = (),
    windows: Sequence[Any] = (),
) -> Batch:
    """Assemble a ``Batch``: derives the per-clip target (``inside``) from the boundary clips and the masks."""
    positions = torch.arange(video.shape[1], device=video.device)
    inside = (positions[None] >= start_idx[:, None]) & (positions[None] <= end_idx[:, None])
    inside = (inside & video_mask[vid_index]).float()
    return Batch(video, video_mask, vid_index, words, word_mask, span.float(), start_idx, end_idx, inside,
                 duration.float(), list(qid), list(vid), list(query), [list(w) for w in windows])


def distinct_videos(vids: Sequence[str]) -> tuple[list[str], list[int]]:
    """The distinct video ids in order of first appearance, and each query's row among them."""
    rows: dict[str, int] = {}
    index = [rows.setdefault(v, len(rows)) for v in vids]
    return list(rows), index
