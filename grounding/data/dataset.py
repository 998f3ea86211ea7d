"""The dataset that joins records, clip features and query tokens, and the collate that batches them
(``grounding.data.batch`` says what a batch holds)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from grounding.data.batch import (
    Batch,
    all_windows,
    clip_saliency,
    distinct_videos,
    make_batch,
    pad_sequences,
    window_to_clips,
)
from grounding.data.features import FeatureBank
from grounding.data.records import MomentRecord
from grounding.data.settings import DEFAULT_MAX_WORDS
from grounding.data.text import TextInput


class GroundingDataset(Dataset):
    def __init__(
        self,
        records: Sequence[MomentRecord],
        features: FeatureBank,
        text: TextInput,
        max_words: int = DEFAULT_MAX_WORDS,
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
        duration = float(rec.duration)  # type: ignore[arg-type]  # clean_records guarantees it
        windows = all_windows(rec.windows, duration)
        return {"video": video, "words": self.text.encode(rec, self.max_words), "windows": windows,
                "window_clips": [window_to_clips(w, duration, video.shape[0]) for w in windows],
                "saliency": clip_saliency(rec.extra, duration, video.shape[0]), "record": rec}


def pad_windows(windows: Sequence[Sequence[Sequence[float]]], clips: Sequence[Sequence[tuple[int, int]]],
                durations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every query's windows, padded to the most any query has: clips (B, W, 2), normalised spans (B, W, 2), mask."""
    width = max(len(w) for w in windows)
    window_clips = torch.zeros(len(windows), width, 2, dtype=torch.long)
    window_spans = torch.zeros(len(windows), width, 2)
    window_mask = torch.zeros(len(windows), width, dtype=torch.bool)
    for i, (w, c) in enumerate(zip(windows, clips, strict=True)):
        window_clips[i, : len(c)] = torch.tensor(c, dtype=torch.long)
        window_spans[i, : len(w)] = torch.tensor(w, dtype=torch.float32) / durations[i]
        window_mask[i, : len(w)] = True
    return window_clips, window_spans, window_mask


def collate(items: Sequence[dict[str, Any]]) -> Batch:
    """Per-item samples -> one ``Batch``; a video shared by several queries is stored once."""
    records = [it["record"] for it in items]
    vids, vid_index = distinct_videos([r.vid for r in records])
    first = {v: next(it for it in items if it["record"].vid == v) for v in vids}
    video, video_mask = pad_sequences([first[v]["video"] for v in vids], torch.float32)
    word_dtype = torch.long if items[0]["words"].dtype == np.int64 else torch.float32
    words, word_mask = pad_sequences([it["words"] for it in items], word_dtype)
    duration = torch.tensor([float(r.duration) for r in records], dtype=torch.float32)
    window_clips, window_spans, window_mask = pad_windows([it["windows"] for it in items],
                                                          [it["window_clips"] for it in items], duration)
    labelled = torch.tensor([it["saliency"] is not None for it in items])
    saliency = None
    if labelled.any():
        saliency, _ = pad_sequences([it["saliency"] if it["saliency"] is not None else np.zeros(len(it["video"]))
                                     for it in items], torch.float32)
    return make_batch(
        video, video_mask, torch.tensor(vid_index, dtype=torch.long), words, word_mask,
        start_idx=window_clips[:, 0, 0], end_idx=window_clips[:, 0, 1], span=window_spans[:, 0],
        duration=duration, qid=[r.qid for r in records], vid=[r.vid for r in records],
        query=[r.query for r in records], windows=[r.windows for r in records], window_clips=window_clips,
        window_spans=window_spans, window_mask=window_mask, saliency=saliency, saliency_labelled=labelled,
    )
