"""What a backbone is to the pipeline, the registry users pick one from, and quiet, checked loading of
transformers weights from a local folder (never a hub download)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from grounding.backbones.transforms import FramePreprocess
from grounding.errors import GroundingError
from grounding.registry import Registry

# key fragment -> the network whose state dicts hold it, first match wins (error messages name the file's network)
KNOWN_WEIGHTS = (
    ("pathway0_stem", "a SlowFast network (PySlowFast)"),
    ("multipathway_blocks", "a SlowFast network (PyTorchVideo)"),
    ("blocks.0.", "a PyTorchVideo network"),
    ("Conv3d_1a_7x7", "an I3D (Inception-v1 3D) network"),
    ("Mixed_5c", "an I3D (Inception-v1 3D) network"),
    ("conv1a.", "C3D"),
    ("conv3a.", "C3D"),
    ("visual.", "a CLIP model"),
    ("vision_model.", "a CLIP model"),
    ("patch_embed", "a vision transformer (ViT / VideoMAE)"),
    ("layer1.0.", "a 2D ResNet"),
    ("features.0.", "VGG"),
)


def describe_weights(keys: list[str]) -> str:
    """A short guess at which network a state dict with these keys belongs to, for error messages."""
    for fragment, name in KNOWN_WEIGHTS:
        if any(fragment in k for k in keys):
            return name
    shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
    return f"an unknown network (keys {shown})" if keys else "an empty state dict"


class Backbone(nn.Module):
    """Maps clips of preprocessed frames ``(B, N, 3, h, w)`` to one feature per clip ``(B, D)``.

    ``preprocess`` says how frames are resized, cropped and normalised; ``frames_per_clip`` is how many
    frames a clip gets (an image model averages its per-frame embeddings over them, a video model
    takes them as its input clip); ``feature_dim`` is D.
    """

    preprocess: FramePreprocess
    frames_per_clip: int
    feature_dim: int

    def forward(self, clips: torch.Tensor) -> torch.Tensor:  # (B, N, 3, h, w) -> (B, D)
        raise NotImplementedError


BACKBONES: Registry[Backbone] = Registry("backbone")


def require_model_dir(model_dir: str | Path | None, flag: str = "--model") -> Path:
    if model_dir is None:
        raise GroundingError(f"{flag} is required: a local folder with a transformers model (config.json + weights)")
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise GroundingError(
            f"{path} is not a transformers model folder (no config.json); download the model once with "
            "`save_pretrained` / `huggingface-cli download` and pass that folder"
        )
    return path


@contextlib.contextmanager
def _quiet_transformers():
    """transformers prints load reports (e.g. the text tower a vision-only load skips) and progress bars;
    ``load_weights`` checks the load itself."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_config(model_dir: Path) -> Any:
    from transformers import AutoConfig

    try:
        with _quiet_transformers():
            return AutoConfig.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise GroundingError(f"cannot read the model config in {model_dir} ({err}); is it a transformers model?") from err


def load_weights(model_cls: Any, model_dir: Path, unused_prefixes: tuple[str, ...] = (), **kwargs: Any) -> nn.Module:
    """``model_cls.from_pretrained`` offline; a weight the checkpoint lacks is an error, not a silent random
    init, unless it starts with one of ``unused_prefixes`` (parts the caller never uses, e.g. a pooler)."""
    try:
        with _quiet_transformers():
            model, info = model_cls.from_pretrained(
                model_dir, local_files_only=True, output_loading_info=True, **kwargs
            )
    except (OSError, ValueError, RuntimeError) as err:
        raise GroundingError(f"cannot load {model_cls.__name__} weights from {model_dir} ({err})") from err
    missing = sorted(k for k in info.get("missing_keys") or [] if not k.startswith(unused_prefixes))
    if missing:
        raise GroundingError(
            f"{model_dir} lacks weights {model_cls.__name__} needs ({', '.join(missing[:4])}"
            f"{', ...' if len(missing) > 4 else ''}); use a checkpoint that has them (for --backbone clip: "
            "a full CLIP model or a CLIPVisionModelWithProjection)"
        )
    return model.eval()


def build_backbone(name: str, model_dir: str | Path | None, frames_per_clip: int | None = None) -> Backbone:
    """The registered backbone ``name`` loaded from ``model_dir``; ``frames_per_clip=None`` takes its default."""
    return BACKBONES.get(name)(require_model_dir(model_dir), frames_per_clip)
