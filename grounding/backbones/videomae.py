"""transformers video models (``--backbone videomae``, alias ``xclip``): one clip in, one vector out.

Any model ``AutoModel`` loads that takes ``pixel_values`` ``(B, frames, 3, h, w)`` works: VideoMAE,
TimeSformer, ViViT, ... give the mean of the last hidden states over all tokens (their classifiers
pool the same way or by a CLS token; a pooler layer, often absent from checkpoints, is not used);
X-CLIP, which has ``get_video_features``, gives its projected video embedding. The frames per clip are fixed by the checkpoint (``num_frames`` in its config).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from grounding.backbones.base import BACKBONES, Backbone, load_config, load_weights
from grounding.backbones.transforms import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, FramePreprocess
from grounding.errors import GroundingError


def _setting(config: Any, name: str) -> Any:
    """A vision setting, on the config itself or on its ``vision_config`` (X-CLIP)."""
    value = getattr(config, name, None)
    if value is None and getattr(config, "vision_config", None) is not None:
        value = getattr(config.vision_config, name, None)
    return value


@BACKBONES.register("videomae")
@BACKBONES.register("xclip")
class VideoTransformerBackbone(Backbone):
    def __init__(self, model_dir: Path, frames_per_clip: int | None = None) -> None:
        from transformers import AutoModel

        super().__init__()
        config = load_config(model_dir)
        num_frames, image_size = _setting(config, "num_frames"), _setting(config, "image_size")
        if num_frames is None or image_size is None:
            raise GroundingError(
                f"{model_dir} ('{config.model_type}') has no num_frames/image_size in its config; "
                "--backbone videomae needs a video model such as VideoMAE or X-CLIP"
            )
        if frames_per_clip not in (None, num_frames):
            raise GroundingError(
                f"{model_dir} is a {num_frames}-frame video model; drop --frames-per-clip or set it to {num_frames}"
            )
        self.model = load_weights(AutoModel, model_dir, unused_prefixes=("pooler.",))
        self.video_features = hasattr(self.model, "get_video_features")  # X-CLIP and kin
        if self.video_features:
            self.feature_dim = int(config.projection_dim)
            mean, std = CLIP_MEAN, CLIP_STD
        else:
            self.feature_dim = int(config.hidden_size)
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        self.frames_per_clip = int(num_frames)
        self.preprocess = FramePreprocess.from_model_dir(model_dir, int(image_size), mean, std)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:  # (B, N, 3, h, w) -> (B, D)
        if self.video_features:
            out = self.model.get_video_features(pixel_values=clips)
            return out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers 4 / 5
        return self.model(pixel_values=clips).last_hidden_state.mean(dim=1)
