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
    distinct_videos,
    make_batch,
    pad_sequences,
    target_window,
    window_to_clips,
)
from grounding.data.features import FeatureBank
from grounding.data.records import MomentRecord
from grounding.data.text import TextInput


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
        duration = float(rec.duration)  # type: ignore[arg-type]  # clean_records guarantees it
        window = target_window(rec.windows, duration)
        s_idx, e_idx = window_to_clips(window, duration, video.shape[0])
        return {"video": video, "words": self.text.encode(rec, self.max_words), "window": window,
                "start_idx": s_idx, "end_idx": e_idx, "record": rec}


def collate(items: Sequence[dict[str, Any]]) -> Batch:
    """Per-item samples -> one ``Batch``; a video shared by several queries is stored once."""
    records = [it["record"] for it in items]
    vids, vid_index = distinct_videos([r.vid for r in records])
    first = {v: next(it for it in items if it["record"].vid == v) for v in vids}
    video, video_mask = pad_sequences([first[v]["video"] for v in vids], torch.float32)
    word_dtype = torch.long if items[0]["words"].dtype == np.int64 else torch.float32
    words, word_mask = pad_sequences([it["words"] for it in items], word_dtype)
    duration = torch.tensor([float(r.duration) for r in records], dtype=torch.float32)
    return make_batch(
        video, video_mask, torch.tensor(vid_index, dtype=torch.long), words, word_mask,
        start_idx=torch.tensor([it["start_idx"] for it in items], dtype=torch.long),
        end_idx=torch.tensor([it["end_idx"] for it in items], dtype=torch.long),
        span=torch.tensor([it["window"] for it in items], dtype=torch.float32) / duration[:, None],
        duration=duration, qid=[r.qid for r in records], vid=[r.vid for r in records],
        query=[r.query for r in records], windows=[r.windows for r in records],
    )
