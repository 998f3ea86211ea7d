"""``qvh_slowfast_clip``: the released QVHighlights video features (Moment-DETR's release, made with the
HERO video feature extractor): SlowFast R50 8x8 (Kinetics-400) 2304-d then CLIP ViT-B/32 512-d, one
vector per 2 s clip, each part in its own folder of ``<vid>.npz`` (key ``features``), the layout of
``configs/features/slowfast_clip_npz.yaml`` (``features/slowfast_features``, ``features/clip_features``).

The sampling is ``hero.py``. SlowFast input: 224 short side, 224 centre crop, ``(x / 255 - 0.45) /
(0.225 + 1e-8)``; output: the mean over time and space of each pathway's last stage, slow then fast.
CLIP input: the same resize and crop, CLIP's mean/std (``+ 1e-8``), one frame per clip; output:
the projected image embedding, not normalised (the data layer's ``l2_normalize`` does that).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from grounding.backbones.transforms import CLIP_MEAN, CLIP_STD
from grounding.errors import GroundingError
from grounding.extract.recipes import RECIPES, hero
from grounding.extract.recipes.base import Recipe, RecipePart
from grounding.extract.video_io import VideoInfo

CLIP_LEN = 2.0
SIZE = 224
_EPS = 1e-8  # HERO's Normalize divides by (std + 1e-8)


def _normalise(clips: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 ``(B, N, H, W, 3)`` -> float ``(B, 3, N, H, W)``, in HERO's order of operations."""
    x = clips.permute(0, 4, 1, 2, 3).float() / 255.0  # permuting the uint8 first: same values, less to move
    m = torch.tensor(mean, dtype=torch.float32, device=clips.device).view(1, 3, 1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=clips.device).view(1, 3, 1, 1, 1)
    return (x - m) / (s + _EPS)


class SlowFastPart(RecipePart):
    name = "slowfast"
    folder = "slowfast_features"
    feature_dim = 2304
    clip_len = CLIP_LEN
    size = SIZE
    weights_name = "SLOWFAST_8x8_R50.pkl"
    weights_source = "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/kinetics400/SLOWFAST_8x8_R50.pkl"
    pooling = "32 frames of each 2 s clip at 30 fps (HERO offsets), slow = every 4th; global average per pathway"
    architecture = "SlowFast R50 8x8"

    def decode_fps(self, info: VideoInfo) -> float:
        return float(hero.SLOWFAST_DECODE_FPS)

    def clip_positions(self, info: VideoInfo, num_decoded: int | None) -> np.ndarray:
        return hero.slowfast_positions(info.duration, info.fps, self.clip_len, num_decoded)

    def model_input(self, clips: torch.Tensor) -> list[torch.Tensor]:
        fast = _normalise(clips, (0.45, 0.45, 0.45), (0.225, 0.225, 0.225))  # (B, 3, 32, H, W)
        slow = torch.index_select(fast, 2, hero.slow_pathway_index(fast.shape[2]).to(fast.device))
        return [slow, fast]

    def load(self, weights: Path) -> nn.Module:
        from grounding.backbones.slowfast import load_slowfast

        return load_slowfast(weights)


class _ClipImageEmbeds(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.feature_dim = int(model.config.projection_dim)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, D)
        return self.model(pixel_values=pixels).image_embeds


class ClipPart(RecipePart):
    name = "clip"
    folder = "clip_features"
    feature_dim = 512
    clip_len = CLIP_LEN
    size = SIZE
    weights_name = "clip-vit-base-patch32"
    weights_source = ("the transformers folder of openai/clip-vit-base-patch32 (huggingface-cli download "
                      "openai/clip-vit-base-patch32 --local-dir clip-vit-base-patch32)")
    pooling = "one frame per 2 s clip (ffmpeg fps=0.5); projected image embedding"
    architecture = "CLIP ViT-B/32"
    streams_clip_count = True

    def decode_fps(self, info: VideoInfo) -> float:
        return hero.clip_decode_fps(info.duration, self.clip_len)

    def clip_positions(self, info: VideoInfo, num_decoded: int | None) -> np.ndarray:
        if num_decoded is None:
            raise ValueError("the CLIP part has as many clips as ffmpeg decodes frames")
        return np.arange(num_decoded, dtype=np.int64)[:, None]

    def model_input(self, clips: torch.Tensor) -> torch.Tensor:
        return _normalise(clips, CLIP_MEAN, CLIP_STD)[:, :, 0]  # (B, 3, H, W): one frame per clip

    def load(self, weights: Path) -> nn.Module:
        from grounding.backbones.clip import ClipImageBackbone

        if not weights.is_dir():
            from grounding.backbones.slowfast import identify, read_state_dict

            try:
                held = identify(read_state_dict(weights))
            except GroundingError:
                held = "something else"
            raise GroundingError(f"{weights} is a file holding {held}; the clip part of qvh_slowfast_clip needs "
                                 f"{self.architecture} as a transformers folder ({self.weights_source})")
        return _ClipImageEmbeds(ClipImageBackbone(weights).model)


@RECIPES.register("qvh_slowfast_clip")
def qvh_slowfast_clip() -> Recipe:
    return Recipe(
        name="qvh_slowfast_clip",
        parts=(SlowFastPart(), ClipPart()),
        reference="QVHighlights features of Moment-DETR's release (HERO video feature extractor: "
                  "SlowFast R50 8x8 Kinetics-400 + CLIP ViT-B/32, 2 s clips)",
        fmt="npz",
        features_config="configs/features/slowfast_clip_npz.yaml",
    )
