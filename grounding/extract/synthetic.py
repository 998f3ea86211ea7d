"""Synthetic inputs for tests and benchmarks: small videos made with ffmpeg (from imageio-ffmpeg) and
randomly initialised transformers models saved to a folder, so that nothing is downloaded."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

from grounding.errors import GroundingError

# codec -> extra ffmpeg output options (fast settings; pixel formats every decoder takes)
CODEC_OPTIONS = {
    "libx264": ["-pix_fmt", "yuv420p", "-preset", "ultrafast"],
    "libvpx-vp9": ["-pix_fmt", "yuv420p", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k"],
    "libvpx": ["-pix_fmt", "yuv420p", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k"],
    "mjpeg": ["-pix_fmt", "yuvj420p", "-q:v", "5"],
    "mpeg4": ["-pix_fmt", "yuv420p", "-q:v", "5"],
}


def ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg
    except ImportError as err:
        raise GroundingError("making test videos needs imageio-ffmpeg: pip install imageio-ffmpeg") from err
    return imageio_ffmpeg.get_ffmpeg_exe()


def has_encoder(codec: str) -> bool:
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return any(line.split()[1:2] == [codec] for line in out.splitlines() if line.strip())


def make_video(
    path: str | Path,
    num_frames: int,
    fps: str | float = "30000/1001",
    size: tuple[int, int] = (64, 48),
    codec: str = "libx264",
    frame_index_pattern: bool = False,
) -> Path:
    """Write ``num_frames`` frames of ffmpeg's moving ``testsrc2`` pattern at exactly ``fps`` (a rational
    such as ``"30000/1001"`` keeps 29.97 exact); the container follows the suffix of ``path``.

    ``frame_index_pattern``: instead, frame ``k`` is a flat grey of level ``k mod 256``, stored
    losslessly (ffv1, use a .mkv path), so that a decoded frame tells which frame it is."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if frame_index_pattern:
        source = f"color=black:size={size[0]}x{size[1]}:rate={fps},format=gray,geq=lum='mod(N,256)'"
        codec_args = ["-c:v", "ffv1"]
    else:
        source = f"testsrc2=size={size[0]}x{size[1]}:rate={fps}"
        codec_args = ["-c:v", codec, *CODEC_OPTIONS.get(codec, [])]
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source]
    cmd += ["-frames:v", str(num_frames), *codec_args, str(path)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not write {path}: {result.stderr.strip()[-300:]}")
    return path


def _write_processor(folder: Path, processor: str, image_size: int, mean: Sequence[float], std: Sequence[float]) -> None:
    """The ``preprocessor_config.json`` a transformers image processor saves (written directly: the
    processor classes want torchvision, which extraction does not need)."""
    config = {
        "image_processor_type": processor,
        "do_resize": True,
        "size": {"shortest_edge": image_size},
        "do_center_crop": True,
        "crop_size": {"height": image_size, "width": image_size},
        "do_normalize": True,
        "image_mean": list(mean),
        "image_std": list(std),
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(config, indent=2))


def save_random_clip(
    folder: str | Path,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    image_size: int = 32,
    patch_size: int = 8,
    projection_dim: int = 16,
    full_model: bool = False,
    seed: int = 0,
) -> Path:
    """A random CLIP vision tower with projection (or, ``full_model``, a whole CLIP model) in ``folder``.
    ``hidden_size=768, num_layers=12, num_heads=12, image_size=224, patch_size=32, projection_dim=512``
    is CLIP ViT-B/32's image tower."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    from grounding.backbones.transforms import CLIP_MEAN, CLIP_STD

    folder = Path(folder)
    vision = dict(
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        image_size=image_size,
        patch_size=patch_size,
    )
    torch.manual_seed(seed)
    if full_model:
        text = dict(hidden_size=hidden_size, intermediate_size=4 * hidden_size, num_hidden_layers=num_layers,
                    num_attention_heads=num_heads, vocab_size=64, max_position_embeddings=16,
                    bos_token_id=0, eos_token_id=1, pad_token_id=1)
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim))
    else:
        model = CLIPVisionModelWithProjection(CLIPVisionConfig(projection_dim=projection_dim, **vision))
    model.save_pretrained(folder)
    _write_processor(folder, "CLIPImageProcessor", image_size, CLIP_MEAN, CLIP_STD)
    return folder


def save_random_videomae(
    folder: str | Path, num_frames: int = 4, image_size: int = 32, patch_size: int = 8, hidden_size: int = 32, seed: int = 0
) -> Path:
    import torch
    from transformers import VideoMAEConfig, VideoMAEModel

    from grounding.backbones.transforms import IMAGENET_MEAN, IMAGENET_STD

    folder = Path(folder)
    torch.manual_seed(seed)
    config = VideoMAEConfig(
        image_size=image_size, patch_size=patch_size, num_frames=num_frames, tubelet_size=2, hidden_size=hidden_size,
        num_hidden_layers=2, num_attention_heads=2, intermediate_size=2 * hidden_size,
    )
    VideoMAEModel(config).save_pretrained(folder)
    _write_processor(folder, "VideoMAEImageProcessor", image_size, IMAGENET_MEAN, IMAGENET_STD)
    return folder


def save_random_xclip(folder: str | Path, num_frames: int = 4, image_size: int = 32, seed: int = 0) -> Path:
    import torch
    from transformers import XCLIPConfig, XCLIPModel

    folder = Path(folder)
    torch.manual_seed(seed)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    config = XCLIPConfig(
        text_config=dict(small, vocab_size=64, max_position_embeddings=16),
        vision_config=dict(small, image_size=image_size, patch_size=8, num_frames=num_frames, mit_hidden_size=16,
                           mit_intermediate_size=32, mit_num_hidden_layers=1, mit_num_attention_heads=2),
        projection_dim=16, prompt_layers=1, prompt_attention_heads=2,
    )
    XCLIPModel(config).save_pretrained(folder)
    return folder
