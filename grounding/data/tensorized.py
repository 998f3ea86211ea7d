"""Batches assembled with tensor ops from a split held whole in memory (or on the GPU).

With a fixed clip count (``data.num_clips``) every video is a ``(T, D)`` matrix, so a split becomes a
few stacked tensors: videos ``(V, T, D)``, padded query tokens ``(N, L)``, and per-query targets.
A batch is then a handful of index operations instead of per-item Python, which keeps a GPU fed at
tens of thousands of queries per second. Batches are ``grounding.data.batch.Batch`` objects made by
the same ``make_batch`` as the per-item collate, so the two paths give equal batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from grounding.data.batch import Batch, all_windows, clip_saliency, make_batch, pad_sequences, window_to_clips
from grounding.data.dataset import GroundingDataset, pad_windows
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
        words, word_mask = pad_sequences([dataset.text.encode(r, dataset.max_words) for r in records],
                                         torch.long if dataset.text.kind == "ids" else torch.float32)
        self.word_lengths = word_mask.sum(1)  # kept on the host: trimming a batch's padding needs no sync
        self.words, self.word_mask = words.to(self.device), word_mask.to(self.device)
        durations = torch.tensor([float(r.duration) for r in records], dtype=torch.float32)
        windows = [all_windows(r.windows, float(r.duration)) for r in records]
        clips = [[window_to_clips(w, float(r.duration), num_clips) for w in ws] for ws, r in zip(windows, records, strict=True)]
        window_clips, window_spans, window_mask = pad_windows(windows, clips, durations)
        self.video_of = torch.tensor([index[r.vid] for r in records])  # host: distinct videos per batch without a sync
        self.window_clips, self.window_spans = window_clips.to(self.device), window_spans.to(self.device)
        self.window_mask = window_mask.to(self.device)
        self.window_count = window_mask.sum(1)  # host: the batch's window padding is trimmed like its word padding
        labels = [clip_saliency(r.extra, float(r.duration), num_clips) for r in records]
        self.labelled = torch.tensor([x is not None for x in labels], device=self.device)
        self.saliency = torch.from_numpy(np.stack([x if x is not None else np.zeros(num_clips, np.float32)
                                                   for x in labels])).to(self.device)  # (N, T)
        self.duration = durations.to(self.device)
        self.records = records
        self.num_clips = num_clips

    def __len__(self) -> int:
        return len(self.records)

    def batch(self, rows: torch.Tensor) -> Batch:
        rows = rows.cpu()
        width = int(self.word_lengths[rows].max())  # host-side: no device sync
        num_windows = int(self.window_count[rows].max())
        distinct, vid_index = torch.unique(self.video_of[rows], return_inverse=True)
        first = torch.full((len(distinct),), len(rows))
        first.scatter_reduce_(0, vid_index, torch.arange(len(rows)), "amin")
        order = first.argsort()  # distinct videos in order of first appearance, as collate stores them
        vid_index = order.argsort()[vid_index]
        distinct = distinct[order]
        host_rows = rows.tolist()
        rows = rows.to(self.device, non_blocking=True)
        video = self.videos[distinct.to(self.device, non_blocking=True)]  # (V, T, D)
        records = [self.records[i] for i in host_rows]
        return make_batch(
            video, torch.ones(video.shape[:2], dtype=torch.bool, device=self.device),
            vid_index.to(self.device, non_blocking=True), self.words[rows, :width], self.word_mask[rows, :width],
            start_idx=self.window_clips[rows, 0, 0], end_idx=self.window_clips[rows, 0, 1],
            span=self.window_spans[rows, 0], duration=self.duration[rows], qid=[r.qid for r in records],
            vid=[r.vid for r in records], query=[r.query for r in records], windows=[r.windows for r in records],
            window_clips=self.window_clips[rows, :num_windows], window_spans=self.window_spans[rows, :num_windows],
            window_mask=self.window_mask[rows, :num_windows],
            saliency=self.saliency[rows], saliency_labelled=self.labelled[rows],
        )

    def batches(self, batch_size: int, shuffle: bool, seed: int = 0, rank: int = 0, world: int = 1) -> Iterator[Batch]:
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
