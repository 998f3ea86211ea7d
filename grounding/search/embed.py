"""CCMAN's two sides as search encoders: videos -> entries in the shared space, sentences -> queries.

Video side: an entry for clips ``[i, j]`` is the model's ``embed_moments`` of those clips (the
``SharedSpaceModel`` interface: for CCMAN ``normalize(mean of the clips' shared-space projections)``,
exactly how the alignment losses embed a moment during training, ``SpaceOutput.moments``).

Granularity (``search.granularity``):

- ``proposals`` (default): multi-scale sliding windows, lengths ``scales`` x the video (1/16, 1/8, 1/4,
  1/2, 1 by default) at a stride of ``stride`` x the length. A query describes a *moment*, and moments are
  what the contrastive loss aligned with sentences, so a window of about the moment's length is the
  closest stored vector to its query; 57 entries per 32-clip video. The 1/16 windows (2 clips of a
  32-clip video) raise video recall: a video scores its best entry, and a short window that holds only
  the event is a cleaner view of it than a longer one that also holds its neighbours (docs/search.md).
- ``clips``: one entry per clip (finer spans, but a single clip is a noisy view of an event and the
  losses never aligned single clips with whole sentences; 32 entries per video).
- ``both``: the union.

Query side: the model's ``embed_sentences``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from grounding.errors import GroundingError
from grounding.models.existence import proposal_windows
from grounding.models.shared_space import SharedSpaceModel

GRANULARITIES = ("proposals", "clips", "both")
SCALES = (0.0625, 0.125, 0.25, 0.5, 1.0)  # index entry lengths as fractions of the video (search.scales)


@dataclass
class Granularity:
    kind: str = "proposals"
    scales: list[float] = field(default_factory=lambda: list(SCALES))
    stride: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in GRANULARITIES:
            raise GroundingError(f"search.granularity must be one of {', '.join(GRANULARITIES)}, not '{self.kind}'")
        if not self.scales or any(not 0 < s <= 1 for s in self.scales) or not 0 < self.stride <= 1:
            raise GroundingError(f"search.scales must be fractions in (0, 1] and search.stride in (0, 1]; got "
                                 f"{self.scales}, {self.stride}")

    @classmethod
    def from_config(cls, section: Any) -> Granularity:
        section = dict(section or {})
        return cls(section.get("granularity", "proposals"), list(section.get("scales") or SCALES),
                   float(section.get("stride", 0.5)))

    def as_dict(self) -> dict[str, Any]:
        return {"granularity": self.kind, "scales": list(self.scales), "stride": self.stride}


def windows_for(num_clips: int, granularity: Granularity) -> np.ndarray:
    """Entry windows (P, 2) as first and last clip (inclusive) of a video of ``num_clips`` clips: the
    proposals are the ones the existence part scores (``grounding.models.existence.proposal_windows``)."""
    out: list[tuple[int, int]] = []
    if granularity.kind in ("proposals", "both"):
        out += [tuple(w) for w in proposal_windows(num_clips, granularity.scales, granularity.stride).tolist()]
    if granularity.kind in ("clips", "both"):
        out += [(i, i) for i in range(num_clips)]
    return np.array(sorted(set(out)), dtype=np.int64).reshape(-1, 2)


def entry_spans(num_clips: int, duration: float, granularity: Granularity) -> tuple[np.ndarray, np.ndarray]:
    """A video's entry windows (P, 2) as first and last clip, and their spans (P, 2) in seconds."""
    windows = windows_for(num_clips, granularity)
    step = duration / num_clips
    return windows, np.stack([windows[:, 0] * step, (windows[:, 1] + 1) * step], 1).astype(np.float32)


@torch.inference_mode()
def embed_videos(space: SharedSpaceModel, features: list[np.ndarray], durations: list[float],
                 granularity: Granularity, device: torch.device) -> list[tuple[np.ndarray, np.ndarray]]:
    """Entries ``(embeddings (P, E), spans (P, 2))`` of each video (features (T_i, D)): every video through
    the encoder once, all of their windows embedded in one ``embed_moments`` call."""
    lengths = [len(f) for f in features]
    video = torch.zeros(len(features), max(lengths), features[0].shape[1])
    mask = torch.zeros(len(features), max(lengths), dtype=torch.bool)
    for i, f in enumerate(features):
        video[i, : len(f)] = torch.from_numpy(np.asarray(f, dtype=np.float32))
        mask[i, : len(f)] = True
    planned = [entry_spans(n, d, granularity) for n, d in zip(lengths, durations, strict=True)]
    clips = torch.arange(video.shape[1])
    moment_masks = [(clips[None] >= torch.from_numpy(w[:, :1])) & (clips[None] <= torch.from_numpy(w[:, 1:]))
                    for w, _ in planned]  # (P_i, T) each
    vid_index = torch.cat([torch.full((len(m),), i) for i, m in enumerate(moment_masks)])
    embedded = space.embed_moments(video.to(device), mask.to(device), torch.cat(moment_masks).to(device),
                                   vid_index.to(device)).float().cpu().numpy()
    out, first = [], 0
    for (_, spans), m in zip(planned, moment_masks, strict=True):
        out.append((embedded[first:first + len(m)], spans))
        first += len(m)
    return out
