"""CLIP image tower (``--backbone clip``): projected image embeddings, averaged over a clip's frames.

This is the setting of the QVHighlights CLIP features (ViT-B/32, one 2 s clip per feature, 512-d,
not normalised; the data layer can L2-normalise). The folder may hold a full CLIP model (the text
tower is skipped) or a vision tower saved as ``CLIPVisionModelWithProjection``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from grounding.backbones.base import BACKBONES, Backbone, load_config, load_weights
from grounding.backbones.transforms import CLIP_MEAN, CLIP_STD, FramePreprocess
from grounding.errors import GroundingError


@BACKBONES.register("clip")
class ClipImageBackbone(Backbone):
    def __init__(self, model_dir: Path, frames_per_clip: int | None = None) -> None:
        from transformers import CLIPVisionModelWithProjection

        super().__init__()
        config = load_config(model_dir)
        if config.model_type == "clip":
            vision_config = config.vision_config
            vision_config.projection_dim = config.projection_dim  # lives on the parent config only
        elif config.model_type == "clip_vision_model":
            vision_config = config
        else:
            raise GroundingError(
                f"{model_dir} holds a '{config.model_type}' model; --backbone clip needs a CLIP model "
                "(model_type clip or clip_vision_model)"
            )
        self.model = load_weights(CLIPVisionModelWithProjection, model_dir, config=vision_config)
        self.feature_dim = int(vision_config.projection_dim)
        self.frames_per_clip = frames_per_clip or 1
        self.preprocess = FramePreprocess.from_model_dir(model_dir, vision_config.image_size, CLIP_MEAN, CLIP_STD)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:  # (B, N, 3, h, w) -> (B, D)
        batch, frames = clips.shape[:2]
        embeds = self.model(pixel_values=clips.flatten(0, 1)).image_embeds  # (B * N, D)
        return embeds.view(batch, frames, -1).mean(dim=1)
