"""Frame preprocessing, split where it is cheapest: resize and crop in the decoding workers (uint8 out,
so little crosses process and device boundaries), scale and normalise on the model's device.

The settings come from the model folder's ``preprocessor_config.json`` (what a transformers image or
video processor saves: ``size``, ``crop_size``, ``do_center_crop``, ``image_mean``, ``image_std``),
falling back to the backbone's defaults. Resizing is bicubic with antialiasing in torch, which is
close to, not bit-identical with, the PIL bicubic resize of the transformers processors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from grounding.errors import GroundingError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class FramePreprocess:
    """``size``: an int resizes the shorter side to it (aspect kept), ``(h, w)`` resizes to exactly that;
    ``crop``: a centre crop ``(h, w)`` after the resize, or None."""

    size: int | tuple[int, int]
    crop: tuple[int, int] | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def resize_crop(self, frames: np.ndarray) -> torch.Tensor:
        """``(n, H, W, 3)`` uint8 RGB -> ``(n, 3, h, w)`` uint8, resized and centre-cropped."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        height, width = x.shape[-2:]
        if isinstance(self.size, int):
            short, long = (height, width) if height <= width else (width, height)
            new_long = int(self.size * long / short)  # the transformers processors truncate too
            new_hw = (self.size, new_long) if height <= width else (new_long, self.size)
        else:
            new_hw = self.size
        if tuple(new_hw) != (height, width):
            x = F.interpolate(x, size=new_hw, mode="bicubic", antialias=True, align_corners=False)
        if self.crop is not None:
            x = _center_crop(x, self.crop)
        return x.round_().clamp_(0, 255).to(torch.uint8)

    def normalize(self, frames: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """uint8 ``(..., 3, h, w)`` -> ``dtype``, scaled to [0, 1] and normalised by mean/std per channel."""
        mean = torch.tensor(self.mean, device=frames.device, dtype=dtype).view(3, 1, 1)
        std = torch.tensor(self.std, device=frames.device, dtype=dtype).view(3, 1, 1)
        return (frames.to(dtype) / 255.0 - mean) / std

    @classmethod
    def from_model_dir(
        cls,
        model_dir: str | Path,
        image_size: int,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> FramePreprocess:
        """Read ``preprocessor_config.json`` if the folder has one; else resize the short side to
        ``image_size`` and centre-crop a square of it, normalising with ``mean``/``std``."""
        path = Path(model_dir) / "preprocessor_config.json"
        if not path.is_file():
            return cls(image_size, (image_size, image_size), tuple(mean), tuple(std))
        try:
            cfg = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise GroundingError(f"{path} is not valid JSON ({err}); fix or delete it") from err
        size = _parse_size(cfg.get("size"), image_size, path) if cfg.get("do_resize", True) else image_size
        crop = None
        if cfg.get("do_center_crop", True):
            crop_size = _parse_size(cfg.get("crop_size"), image_size, path)
            crop = (crop_size, crop_size) if isinstance(crop_size, int) else crop_size
        elif isinstance(size, int):
            crop = (size, size)  # a shortest-side resize alone has no fixed shape; a model needs one
        if cfg.get("do_normalize", True):
            mean, std = cfg.get("image_mean", mean), cfg.get("image_std", std)
        else:
            mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        return cls(size, crop, tuple(float(m) for m in mean), tuple(float(s) for s in std))


def _parse_size(value: Any, default: int, where: Path) -> int | tuple[int, int]:
    """transformers writes sizes as an int, ``{"shortest_edge": s}`` or ``{"height": h, "width": w}``."""
    if value is None:
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        if "shortest_edge" in value:
            return int(value["shortest_edge"])
        if "height" in value and "width" in value:
            return int(value["height"]), int(value["width"])
    raise GroundingError(f"{where}: cannot read the image size {value!r}; expected an int, shortest_edge or height/width")


def _center_crop(x: torch.Tensor, crop: tuple[int, int]) -> torch.Tensor:
    """Centre crop ``(n, 3, H, W)`` to ``crop``, zero-padding first where the frame is smaller."""
    height, width = x.shape[-2:]
    pad_h, pad_w = max(0, crop[0] - height), max(0, crop[1] - width)
    if pad_h or pad_w:
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        height, width = x.shape[-2:]
    top, left = (height - crop[0]) // 2, (width - crop[1]) // 2
    return x[..., top : top + crop[0], left : left + crop[1]]
