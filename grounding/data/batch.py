"""The one batch contract every path feeds the model: per-item loaders, tensorized splits, benchmarks,
the compatibility study, and single-video inference.

A batch holds each of its videos *once* and points every query at its video, so a video with several
queries in the batch runs through the video encoder a single time:

    video        (V, T, D) float   clip features of the batch's distinct videos   video_mask (V, T) bool
    vid_index    (B,) int64        row of ``video`` that query b is about
    words        (B, L) int64 ids or (B, L, Dw) float token features             word_mask  (B, L) bool
    span         (B, 2) float      the first ground-truth window, normalised to [0, 1]
    start_idx, end_idx (B,) int64  clips holding its start / end (end inclusive)
    window_clips (B, W, 2) int64   first and last clip of every ground-truth window   window_mask (B, W) bool
    window_spans (B, W, 2) float   every ground-truth window, normalised
    inside       (B, T) float      1 on the clips of any ground-truth window, 0 elsewhere and on padding
    saliency     (B, T) float      per-clip saliency target in [0, 1]: annotated scores (QVHighlights:
                                   mean of the annotators / 4) where the data has them, else ``inside``
    duration     (B,) float        seconds
    qid, vid, query, windows       per-query lists (windows: every ground-truth window, seconds)
    video_tokens (V, T, D') float  optional: the model's video encoding of ``video``, where a caller that asks
                                   many questions of one video already has it (the Grounder); None otherwise

``make_batch`` is the only constructor; ``target_window`` is the rule for which window comes first
(the one the single-window losses use); multi-window losses read ``window_*``.
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


def all_windows(windows: Sequence[Sequence[float]], duration: float) -> list[list[float]]:
    """Every ground-truth window of a query (the whole video when it has none), target window first."""
    return [[float(a), float(b)] for a, b in windows] if windows else [target_window(windows, duration)]


SALIENCY_CLIP_SECONDS = 2.0  # QVHighlights' saliency labels are per 2 s clip
SALIENCY_MAX = 4.0


def clip_saliency(extra: dict[str, Any], duration: float, num_clips: int) -> np.ndarray | None:
    """Annotated saliency (QVHighlights ``relevant_clip_ids`` + ``saliency_scores``) on the model's
    ``num_clips`` clips of a ``duration`` s video, in [0, 1] (mean annotator score / 4; a model clip
    takes the highest label clip whose centre falls in it); None when the record has no labels."""
    if "relevant_clip_ids" not in extra or "saliency_scores" not in extra:
        return None
    ids = np.asarray(extra["relevant_clip_ids"], dtype=np.float64)
    scores = np.asarray(extra["saliency_scores"], dtype=np.float64).reshape(len(ids), -1).mean(1) / SALIENCY_MAX
    out = np.zeros(num_clips, dtype=np.float32)
    if ids.size:
        centres = (ids + 0.5) * SALIENCY_CLIP_SECONDS
        rows = np.clip(np.floor(centres / duration * num_clips), 0, num_clips - 1).astype(np.int64)
        np.maximum.at(out, rows, scores.astype(np.float32))
    return out


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
    window_clips: torch.Tensor
    window_spans: torch.Tensor
    window_mask: torch.Tensor
    inside: torch.Tensor
    saliency: torch.Tensor
    duration: torch.Tensor
    qid: list[Any] = field(default_factory=list)
    vid: list[str] = field(default_factory=list)
    query: list[str] = field(default_factory=list)
    windows: list[list[list[float]]] = field(default_factory=list)
    video_tokens: torch.Tensor | None = None

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
    window_clips: torch.Tensor | None = None,
    window_spans: torch.Tensor | None = None,
    window_mask: torch.Tensor | None = None,
    saliency: torch.Tensor | None = None,
    saliency_labelled: torch.Tensor | None = None,
    video_tokens: torch.Tensor | None = None,
) -> Batch:
    """Assemble a ``Batch``. Without ``window_*`` the query has one window (``start_idx``..``end_idx``);
    ``inside`` is derived from the windows and the masks; ``saliency`` rows not ``saliency_labelled``
    (or all rows, when no saliency is given) fall back to ``inside``."""
    if window_clips is None:
        window_clips = torch.stack([start_idx, end_idx], -1)[:, None]
        window_spans = span.float()[:, None]
        window_mask = torch.ones(window_clips.shape[:2], dtype=torch.bool, device=window_clips.device)
    positions = torch.arange(video.shape[1], device=video.device)
    covered = (positions[None, None] >= window_clips[..., :1]) & (positions[None, None] <= window_clips[..., 1:])
    clip_mask = video_mask[vid_index]
    inside = ((covered & window_mask[..., None]).any(1) & clip_mask).float()  # (B, T)
    if saliency is None:
        saliency = inside
    elif saliency_labelled is not None:
        saliency = torch.where(saliency_labelled[:, None], saliency.float(), inside)
    return Batch(video, video_mask, vid_index, words, word_mask, span.float(), start_idx, end_idx, window_clips,
                 window_spans.float(), window_mask, inside, saliency * clip_mask, duration.float(), list(qid),
                 list(vid), list(query), [list(w) for w in windows], video_tokens)


def distinct_videos(vids: Sequence[str]) -> tuple[list[str], list[int]]:
    """The distinct video ids in order of first appearance, and each query's row among them."""
    rows: dict[str, int] = {}
    index = [rows.setdefault(v, len(rows)) for v in vids]
    return list(rows), index
