"""What a feature recipe is: a named, fixed reproduction of a released benchmark feature set.

A ``Recipe`` is one or more ``RecipePart``s (one per backbone), each a complete description of how its
features are made, so that the same numbers come out at extraction time and at grounding time
(``Grounder.encode_video``):

- **frame sampling**: the rate the video is decoded at (``decode_fps``), the seconds per clip
  (``clip_len``), and which decoded frames feed which clip (``clip_positions``; ``frame_times`` gives
  their times in the source video for docs and tests);
- **preprocessing**: the short-side resize and centre crop done while decoding (``size``), and the
  normalisation of the model input (``model_input``);
- **the backbone** and how it loads weights from a local file or folder (``load``; ``weights_name`` is
  the name looked for inside a ``--weights`` folder, ``weights_source`` says where to get it);
- **pooling and output**: ``pooling`` (one line for docs and manifests) and ``feature_dim``;
- **layout**: each part writes ``<out>/<folder>/<vid>.<format>`` with its own ``manifest.jsonl``, the
  layout the benchmark's feature config reads (e.g. ``configs/features/slowfast_clip_npz.yaml``); the
  parts are concatenated along D in their order, the shortest part setting the clip count (as the
  data layer's ``FeatureBank.load_raw`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from grounding.extract.video_io import VideoInfo


class RecipePart:
    """One backbone of a recipe (see the module docstring); subclasses set the attributes and methods.

    ``clip_positions(info, num_decoded)`` returns ``(T, N)`` positions into the frames decoded at
    ``decode_fps(info)``; ``num_decoded`` is None while decoding streams, then only parts whose clip
    count follows from ``info`` may answer (``streams_clip_count``: one frame per clip, as many clips as
    frames decoded). Positions past the last decoded frame mean the last frame (tile padding)."""

    name: str  # the part's key in ``--weights name=PATH``
    folder: str  # output subfolder
    feature_dim: int
    clip_len: float
    size: int  # short side resized to this, then a size x size centre crop
    weights_name: str  # what a --weights folder holds for this part
    weights_source: str  # where the weights come from (for errors and docs)
    pooling: str  # how a clip's frames become one vector (docs, manifest)
    architecture: str  # names the network in errors (e.g. "SlowFast R50 8x8")
    streams_clip_count: bool = False

    def decode_fps(self, info: VideoInfo) -> float:
        raise NotImplementedError

    def clip_positions(self, info: VideoInfo, num_decoded: int | None) -> np.ndarray:
        raise NotImplementedError

    def model_input(self, clips: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """uint8 ``(B, N, size, size, 3)`` -> what the model's ``forward`` takes (float, normalised), on the
        device ``clips`` is on."""
        raise NotImplementedError

    def load(self, weights: Path) -> nn.Module:
        """The backbone with ``weights`` loaded, in eval mode; a file of another network is a
        ``GroundingError`` naming both architectures."""
        raise NotImplementedError

    def encode_video(self, model: nn.Module, path: Path, device: torch.device, batch_size: int) -> np.ndarray | None:
        """``(T, D)`` features of the video at ``path`` for a part whose reference decodes in a way the
        shared ffmpeg stream cannot (charades_i3d: JPEG frames on disk); None (the default): use it."""
        return None


@dataclass(frozen=True)
class Recipe:
    """A named reproduction of a released feature set: its parts, in concatenation order.

    A second recipe plugs in as one module in ``grounding/extract/recipes/``: subclass ``RecipePart``
    for each backbone it needs (decode rate, clip positions, model input, weight loading), build a
    ``Recipe(name, parts, ...)`` and register it with ``@RECIPES.register("name")`` on a function
    returning it, then import the module in ``recipes/__init__.py``. Extraction
    (``tools/extract_features.py --recipe``), the manifest and provenance, and
    ``Grounder.encode_video`` then work for it unchanged."""

    name: str
    parts: tuple[RecipePart, ...]
    reference: str  # the released feature set and the pipeline that made it
    fmt: str = "npz"  # npy | npz | hdf5, as the benchmark's loader reads it
    features_config: str | None = None  # the configs/features/*.yaml that reads this layout

    @property
    def feature_dim(self) -> int:
        return sum(part.feature_dim for part in self.parts)

    @property
    def clip_len(self) -> float:
        return self.parts[0].clip_len

    def part(self, name: str) -> RecipePart:
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(name)
