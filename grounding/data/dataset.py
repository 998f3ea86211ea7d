"""The dataset that joins records, clip features and query tokens, and the collate that pads them.

A batch is a dict; every padded sequence travels with its boolean mask (True = real element):

    video        (B, T, D) float   clip features        video_mask (B, T) bool
    words        (B, L) int64 ids or (B, L, Dw) float   word_mask  (B, L) bool
    span         (B, 2)  normalised [start, end] of the target window in [0, 1]
    start_idx, end_idx (B,) int64  clips holding the target start / end (end inclusive)
    inside       (B, T) float      1 for clips inside the target window
    duration     (B,) float seconds, num_clips (B,) int64
    qid, vid, query, windows       lists (windows: all ground-truth windows in seconds)

The *target* window is the first ground-truth window; evaluation uses all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from grounding.data.features import FeatureBank
from grounding.data.records import MomentRecord
from grounding.data.text import TextInput


def window_to_clips(window: Sequence[float], duration: float, num_clips: int) -> tuple[int, int]:
    """First and last (inclusive) clip index that a ``[start, end]`` window in seconds touches."""
    start, end = window
    s_idx = int(np.clip(np.floor(start / duration * num_clips), 0, num_clips - 1))
    e_idx = int(np.clip(np.ceil(end / duration * num_clips) - 1, 0, num_clips - 1))
    return s_idx, max(s_idx, e_idx)


class GroundingDataset(Dataset):
    def __init__(
        self,
        records: Sequence[MomentRecord],
        features: FeatureBank,
        text: TextInput,
        max_words: int = 30,
        tags: dict[Any, list[str]] | None = None,
    ) -> None:
        self.records = list(records)
        self.features = features
        self.text = text
        self.max_words = max_words
        self.tags = tags or {}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        video = self.features.get(rec.vid)  # (T, D)
        num_clips = video.shape[0]
        duration = float(rec.duration)  # type: ignore[arg-type]  # clean_records guarantees it
        window = rec.windows[0] if rec.windows else [0.0, duration]
        s_idx, e_idx = window_to_clips(window, duration, num_clips)
        return {
            "video": video,
            "words": self.text.encode(rec, self.max_words),
            "span": np.asarray([window[0] / duration, window[1] / duration], dtype=np.float32),
            "start_idx": s_idx,
            "end_idx": e_idx,
            "duration": duration,
            "qid": rec.qid,
            "vid": rec.vid,
            "query": rec.query,
            "windows": rec.windows,
        }


def pad_sequences(arrays: Sequence[np.ndarray], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-length arrays along a new batch axis, zero-padded, with a validity mask."""
    lengths = [a.shape[0] for a in arrays]
    out = torch.zeros((len(arrays), max(lengths), *arrays[0].shape[1:]), dtype=dtype)
    mask = torch.zeros((len(arrays), max(lengths)), dtype=torch.bool)
    for i, (a, n) in enumerate(zip(arrays, lengths, strict=True)):
        out[i, :n] = torch.from_numpy(np.asarray(a)).to(dtype)
        mask[i, :n] = True
    return out, mask


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    video, video_mask = pad_sequences([it["video"] for it in items], torch.float32)
    word_dtype = torch.long if items[0]["words"].dtype == np.int64 else torch.float32
    words, word_mask = pad_sequences([it["words"] for it in items], word_dtype)
    start_idx = torch.tensor([it["start_idx"] for it in items], dtype=torch.long)
    end_idx = torch.tensor([it["end_idx"] for it in items], dtype=torch.long)
    positions = torch.arange(video.shape[1])
    inside = ((positions[None] >= start_idx[:, None]) & (positions[None] <= end_idx[:, None])).float()
    return {
        "video": video,
        "video_mask": video_mask,
        "words": words,
        "word_mask": word_mask,
        "span": torch.from_numpy(np.stack([it["span"] for it in items])),
        "start_idx": start_idx,
        "end_idx": end_idx,
        "inside": inside * video_mask,
        "duration": torch.tensor([it["duration"] for it in items], dtype=torch.float32),
        "num_clips": video_mask.sum(1),
        "qid": [it["qid"] for it in items],
        "vid": [it["vid"] for it in items],
        "query": [it["query"] for it in items],
        "windows": [it["windows"] for it in items],
    }


def batch_to(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """Move the tensors of a batch to ``device`` (non-blocking where pinned)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
