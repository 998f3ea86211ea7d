"""Another feature backbone for the old model: the same videos, other clip features.

An upgrade often changes the clip feature extractor together with the model (the old system read
one backbone's features, the new one reads a stronger backbone's). Where only one set of features
exists (the synthetic benchmark), the old model reads a **fixed, seeded random nonlinear view** of
them: ``tanh(x R / sqrt(D))`` with ``R`` (D, dim) Gaussian, so it keeps part of the information in
another coordinate system and dimension, as a different extractor would. ``compat.old.features``:
``null`` (the same features as the new models) or ``{kind: projection, dim: 256, seed: 7}``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch

from grounding.errors import GroundingError
from grounding.studies.moment_split import MomentSplit


def projection_view(videos: torch.Tensor, dim: int, seed: int) -> torch.Tensor:
    """(V, T, D) clip features -> (V, T, dim): ``tanh(x R / sqrt(D))``, ``R`` seeded N(0, 1)."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(videos.shape[-1], dim, generator=generator) / math.sqrt(videos.shape[-1])
    return torch.tanh(videos.float() @ weight)


def old_feature_view(split: MomentSplit, spec: dict[str, Any] | None) -> MomentSplit:
    """``split`` with the old model's clip features per ``compat.old.features`` (None: unchanged)."""
    if not spec:
        return split
    kind = spec.get("kind", "projection")
    if kind != "projection":
        raise GroundingError(f"compat.old.features.kind must be 'projection', not '{kind}'")
    dim = int(spec.get("dim", split.video_dim))
    if dim < 1:
        raise GroundingError(f"compat.old.features.dim must be positive, not {dim}")
    videos = projection_view(split.videos, dim, int(spec.get("seed", 7))) * split.video_mask[..., None]
    return replace(split, videos=videos)
