"""CCMAN's two sides as search encoders: videos -> entries in the shared space, sentences -> queries.

Video side: ``model.video_encoder(video, mask)`` gives contextual clip tokens, ``embedding.video_proj``
their *un-normalised* projections; an entry for clips ``[i, j]`` is ``normalize(mean of projections
i..j)``, which equals projecting the mean clip token (the projection is affine): exactly how the
alignment losses embed a moment during training (``SpaceOutput.moments``).

Granularity (``search.granularity``):

- ``proposals`` (default): multi-scale sliding windows, lengths ``scales`` x the video (1/8, 1/4, 1/2,
  1 by default) at a stride of ``stride`` x the length. A query describes a *moment*, and moments are
  what the contrastive loss aligned with sentences, so a window of about the moment's length is the
  closest stored vector to its query; 26 entries per 32-clip video.
- ``clips``: one entry per clip (finer spans, but a single clip is a noisy view of an event and the
  losses never aligned single clips with whole sentences; 32 entries per video).
- ``both``: the union.

Query side: ``model.query_encoder(words, mask)`` -> the sentence vector -> ``embedding.embed_text``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from grounding.errors import GroundingError

GRANULARITIES = ("proposals", "clips", "both")


@dataclass
class Granularity:
    kind: str = "proposals"
    scales: list[float] = field(default_factory=lambda: [0.125, 0.25, 0.5, 1.0])
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
        return cls(section.get("granularity", "proposals"), list(section.get("scales") or [0.125, 0.25, 0.5, 1.0]),
                   float(section.get("stride", 0.5)))

    def as_dict(self) -> dict[str, Any]:
        return {"granularity": self.kind, "scales": list(self.scales), "stride": self.stride}


def windows_for(num_clips: int, granularity: Granularity) -> np.ndarray:
    """Entry windows (P, 2) as first and last clip (inclusive) of a video of ``num_clips`` clips."""
    out: list[tuple[int, int]] = []
    if granularity.kind in ("proposals", "both"):
        for scale in granularity.scales:
            length = max(1, round(scale * num_clips))
            step = max(1, round(granularity.stride * length))
            starts = list(range(0, max(num_clips - length, 0) + 1, step))
            if starts[-1] + length < num_clips:  # cover the end of the video too
                starts.append(num_clips - length)
            out += [(s, min(s + length, num_clips) - 1) for s in starts]
    if granularity.kind in ("clips", "both"):
        out += [(i, i) for i in range(num_clips)]
    return np.array(sorted(set(out)), dtype=np.int64).reshape(-1, 2)


def model_fingerprint(model: nn.Module) -> str:
    """16 hex digits of a SHA-256 over every weight (names, shapes, bytes): which model embedded an entry."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tuple(data.shape)).encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()[:16]


@torch.inference_mode()
def clip_projections(model: nn.Module, video: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
    """Un-normalised shared-space projections (V, T, E) of every clip of ``video`` (V, T, D)."""
    tokens = model.video_encoder(video, video_mask)
    return model.embedding.video_proj(tokens)


def video_entries(proj: torch.Tensor, num_clips: int, duration: float, granularity: Granularity
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One video's entries: unit embeddings (P, E) and spans (P, 2) in seconds, from its clip
    projections ``proj`` (T, E) (the first ``num_clips`` rows are valid)."""
    windows = torch.from_numpy(windows_for(num_clips, granularity))
    clips = torch.arange(num_clips)
    masks = ((clips[None] >= windows[:, :1]) & (clips[None] <= windows[:, 1:])).to(proj.dtype)  # (P, T)
    pooled = masks @ proj[:num_clips] / masks.sum(1, keepdim=True)
    step = duration / num_clips
    spans = np.stack([windows[:, 0].numpy() * step, (windows[:, 1].numpy() + 1) * step], 1)
    return F.normalize(pooled.float(), dim=-1).cpu().numpy(), spans.astype(np.float32)


def embed_videos(model: nn.Module, features: list[np.ndarray], durations: list[float], granularity: Granularity,
                 device: torch.device) -> list[tuple[np.ndarray, np.ndarray]]:
    """Entries ``(embeddings (P, E), spans (P, 2))`` of each video (features (T_i, D)), in one batch."""
    lengths = [len(f) for f in features]
    video = torch.zeros(len(features), max(lengths), features[0].shape[1])
    mask = torch.zeros(len(features), max(lengths), dtype=torch.bool)
    for i, f in enumerate(features):
        video[i, : len(f)] = torch.from_numpy(np.asarray(f, dtype=np.float32))
        mask[i, : len(f)] = True
    proj = clip_projections(model, video.to(device), mask.to(device))
    return [video_entries(proj[i], n, d, granularity) for i, (n, d) in enumerate(zip(lengths, durations, strict=True))]


@torch.inference_mode()
def embed_sentences(model: nn.Module, words: torch.Tensor, word_mask: torch.Tensor) -> np.ndarray:
    """Unit sentence embeddings (Q, E) of padded token inputs."""
    _, sentence, _ = model.query_encoder(words, word_mask)
    return model.embedding.embed_text(sentence).float().cpu().numpy()
