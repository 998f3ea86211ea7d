"""Batches assembled with tensor ops from a split held whole in memory (or on the GPU).

With a fixed clip count (``data.num_clips``) every video is a ``(T, D)`` matrix, so a split becomes a
few stacked tensors: videos ``(V, T, D)``, padded query tokens ``(N, L)``, and per-query targets.
A batch is then a handful of index operations instead of per-item Python, which keeps a GPU fed at
tens of thousands of queries per second. Batches have exactly the keys and meaning of
``dataset.collate`` (plus ``vid_index``, which the contrastive loss uses to find same-video pairs).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from grounding.data.dataset import GroundingDataset, pad_sequences, window_to_clips
from grounding.errors import GroundingError


class TensorizedSplit:
    def __init__(self, dataset: GroundingDataset, device: torch.device | str = "cpu") -> None:
        num_clips = dataset.features.num_clips
        if not num_clips:
            raise GroundingError("tensorized batches need a fixed clip count: set data.num_clips or train.fast_data=false")
        records = dataset.records
        vids = sorted({r.vid for r in records})
        index = {v: i for i, v in enumerate(vids)}
        self.device = torch.device(device)
        self.videos = torch.from_numpy(np.stack([dataset.features.get(v) for v in vids])).to(self.device)  # (V, T, D)
        words, self.word_mask = pad_sequences([dataset.text.encode(r, dataset.max_words) for r in records],
                                     torch.long if dataset.text.kind == "ids" else torch.float32)
        self.word_lengths = self.word_mask.sum(1)  # kept on the host: trimming a batch's padding needs no sync
        self.words, self.word_mask = words.to(self.device), self.word_mask.to(self.device)
        durations = np.asarray([float(r.duration) for r in records], dtype=np.float32)
        windows = np.asarray([r.windows[0] if r.windows else [0.0, float(r.duration)] for r in records], dtype=np.float32)
        clips = np.asarray([window_to_clips(w, d, num_clips) for w, d in zip(windows, durations, strict=True)])
        self.vid_index = torch.as_tensor([index[r.vid] for r in records], device=self.device)
        self.start_idx = torch.as_tensor(clips[:, 0], device=self.device)
        self.end_idx = torch.as_tensor(clips[:, 1], device=self.device)
        self.span = torch.as_tensor(windows / durations[:, None], device=self.device)
        self.duration = torch.as_tensor(durations, device=self.device)
        self.records = records
        self.num_clips = num_clips

    def __len__(self) -> int:
        return len(self.records)

    def batch(self, rows: torch.Tensor) -> dict[str, Any]:
        rows = rows.cpu()
        width = int(self.word_lengths[rows].max())  # host-side: no device sync
        host_rows = rows.tolist()
        rows = rows.to(self.device, non_blocking=True)
        vid_index = self.vid_index[rows]
        video = self.videos[vid_index]  # (B, T, D)
        start, end = self.start_idx[rows], self.end_idx[rows]
        pos = torch.arange(self.num_clips, device=self.device)
        inside = ((pos[None] >= start[:, None]) & (pos[None] <= end[:, None])).float()
        return {
            "video": video,
            "video_mask": torch.ones(video.shape[:2], dtype=torch.bool, device=self.device),
            "words": self.words[rows, :width],
            "word_mask": self.word_mask[rows, :width],
            "span": self.span[rows], "start_idx": start, "end_idx": end, "inside": inside,
            "duration": self.duration[rows],
            "num_clips": torch.full((len(host_rows),), self.num_clips, device=self.device),
            "vid_index": vid_index,
            "qid": [self.records[i].qid for i in host_rows],
            "vid": [self.records[i].vid for i in host_rows],
            "query": [self.records[i].query for i in host_rows],
            "windows": [self.records[i].windows for i in host_rows],
        }

    def batches(self, batch_size: int, shuffle: bool, seed: int = 0, rank: int = 0, world: int = 1
                ) -> Iterator[dict[str, Any]]:
        """Shuffled (seeded, so a resumed epoch sees the same order) or ordered batches of this rank's shard."""
        if shuffle:
            order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        else:
            order = torch.arange(len(self))
        if shuffle and world > 1 and len(order) % world:  # equal batch counts per rank, as DDP needs
            order = torch.cat([order, order[: world - len(order) % world]])
        order = order[rank::world]
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start : start + batch_size])
