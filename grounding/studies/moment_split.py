"""One split as cached tensors for the compatibility study: each video once, every query, every moment.

Text-to-moment retrieval needs a gallery of *moments*, not of videos: a moment is one video's clips
inside one ground-truth window. Queries that name exactly the same clips of the same video share a
moment (one gallery item); every query's correct item is its own moment.

    videos        (V, T, D) float   clip features, padded    video_mask  (V, T) bool
    durations     (V,) float        seconds
    words         (N, L) int64 ids or (N, L, Dw) float        word_mask   (N, L) bool
    query_moment  (N,) int64        the moment each query describes (row of the moment tensors)
    moment_video  (M,) int64        the video each moment lies in (row of ``videos``)
    moment_clips  (M, 2) int64      first and last clip of each moment
    moment_mask   (M, T) bool       the clips inside each moment

A query's window is its training window (``grounding.data.batch.target_window``); queries without
any window cannot be retrieved and are skipped (the log says how many). Training batches are the
grounding ``Batch`` of ``grounding.data.batch`` (``vid_index`` = the video of each query).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from grounding.data.batch import Batch, make_batch, pad_sequences, target_window, window_to_clips
from grounding.data.features import FeatureBank
from grounding.data.records import MomentRecord
from grounding.data.settings import DEFAULT_MAX_WORDS
from grounding.data.text import TextInput
from grounding.errors import GroundingError

log = logging.getLogger(__name__)


@dataclass
class MomentSplit:
    videos: torch.Tensor
    video_mask: torch.Tensor
    words: torch.Tensor
    word_mask: torch.Tensor
    query_moment: torch.Tensor
    moment_video: torch.Tensor
    moment_clips: torch.Tensor
    durations: torch.Tensor
    qids: list
    vids: list[str]

    @property
    def moment_mask(self) -> torch.Tensor:
        """(M, T) the clips inside each moment."""
        clips = torch.arange(self.videos.shape[1])
        return (clips[None] >= self.moment_clips[:, :1]) & (clips[None] <= self.moment_clips[:, 1:])

    @property
    def num_queries(self) -> int:
        return int(self.query_moment.shape[0])

    @property
    def num_moments(self) -> int:
        return int(self.moment_video.shape[0])

    @property
    def video_dim(self) -> int:
        return int(self.videos.shape[-1])

    def batch(self, index: torch.Tensor) -> tuple[Batch, torch.Tensor]:
        """The queries ``index`` (B,) as a grounding ``Batch`` (each of their videos once; ``inside`` = the
        moment's clips), and the moment (B,) of each query."""
        moment = self.query_moment[index]
        rows, vid_index = torch.unique(self.moment_video[moment], return_inverse=True)
        num_clips = self.video_mask[rows].sum(1)[vid_index]
        start, end = self.moment_clips[moment].unbind(1)
        batch = make_batch(self.videos[rows], self.video_mask[rows], vid_index, self.words[index], self.word_mask[index],
                           start, end, span=torch.stack([start / num_clips, (end + 1) / num_clips], 1),
                           duration=self.durations[rows][vid_index], qid=[self.qids[i] for i in index.tolist()])
        return batch, moment

    def video_batches(self, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
        """All queries in batches of whole videos (random video order): each batch runs every video it
        needs through the video encoder once, and holds about ``batch_size`` queries."""
        query_video = self.moment_video[self.query_moment]
        order = torch.argsort(query_video, stable=True)
        videos, counts = torch.unique_consecutive(query_video[order], return_counts=True)
        groups = list(order.split(counts.tolist()))
        batches, current, size = [], [], 0
        for v in torch.randperm(len(videos), generator=generator).tolist():
            current.append(groups[v])
            size += len(groups[v])
            if size >= batch_size:
                batches.append(torch.cat(current))
                current, size = [], 0
        if current:
            batches.append(torch.cat(current))
        return batches

    def select(self, index: Sequence[int] | torch.Tensor) -> MomentSplit:
        """Keep only the queries ``index`` (and the moments they describe); videos are shared, not copied."""
        index = torch.as_tensor(index, dtype=torch.long)
        used, query_moment = torch.unique(self.query_moment[index], return_inverse=True)
        return MomentSplit(self.videos, self.video_mask, self.words[index], self.word_mask[index], query_moment,
                           self.moment_video[used], self.moment_clips[used], self.durations,
                           [self.qids[i] for i in index.tolist()], self.vids)

    def with_words(self, words: torch.Tensor, word_mask: torch.Tensor) -> MomentSplit:
        """The same split with other token inputs (e.g. an old model's own vocabulary)."""
        return MomentSplit(self.videos, self.video_mask, words, word_mask, self.query_moment, self.moment_video,
                           self.moment_clips, self.durations, self.qids, self.vids)


def encode_words(records: Sequence[MomentRecord], text: TextInput, max_words: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token inputs of ``records`` with ``text``: (N, L) ids or (N, L, Dw) features, and the mask (N, L)."""
    tokens = [text.encode(rec, max_words) for rec in records]
    return pad_sequences(tokens, torch.long if tokens[0].dtype == np.int64 else torch.float32)


def build_moment_split(records: Sequence[MomentRecord], bank: FeatureBank, text: TextInput, max_words: int = DEFAULT_MAX_WORDS,
                       name: str = "split") -> MomentSplit:
    total = len(records)
    records = [r for r in records if r.windows]
    if not records:
        raise GroundingError(f"{name}: no query has a ground-truth window, so there is no moment to retrieve")
    vids = list(dict.fromkeys(r.vid for r in records))
    video_row = {vid: i for i, vid in enumerate(vids)}
    videos, video_mask = pad_sequences([bank.get(vid) for vid in vids], torch.float32)
    moment_row: dict[tuple[int, int, int], int] = {}
    query_moment = []
    durations = {}
    for rec in records:
        v = video_row[rec.vid]
        durations[v] = float(rec.duration)  # type: ignore[arg-type]
        window = target_window(rec.windows, durations[v])
        start, end = window_to_clips(window, durations[v], int(video_mask[v].sum()))
        query_moment.append(moment_row.setdefault((v, start, end), len(moment_row)))
    keys = torch.tensor(list(moment_row), dtype=torch.long)  # (M, 3): video, first clip, last clip
    words, word_mask = encode_words(records, text, max_words)
    split = MomentSplit(videos, video_mask, words, word_mask, torch.tensor(query_moment, dtype=torch.long),
                        keys[:, 0].clone(), keys[:, 1:].clone(), torch.tensor([durations[v] for v in range(len(vids))]),
                        [r.qid for r in records], vids)
    log.info("%s: %d queries, %d moments in %d videos%s", name, split.num_queries, split.num_moments, len(vids),
             "" if total == len(records) else f" ({total - len(records)} queries without a window skipped)")
    return split
