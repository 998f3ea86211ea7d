"""One video through a recipe: each part decodes its frames, groups them into clips and encodes them.

Used by the extraction run (``run.py``) and by ``Grounder.encode_video``, so a grounded video gets
exactly the features the checkpoint was trained on. Frames stream through ``FfmpegFrames``, a batch of
clips at a time, so long videos never hold more than one batch of decoded frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from grounding.errors import GroundingError
from grounding.extract.recipes.base import Recipe, RecipePart
from grounding.extract.recipes.frames import FfmpegFrames, clip_batches
from grounding.extract.video_io import VideoInfo, VideoReader, VideoReadError


@dataclass(frozen=True)
class ProbedVideo:
    """What the parts need to know of a video before decoding it."""

    path: Path
    info: VideoInfo
    height: int
    width: int


def probe(path: str | Path, recipe: Recipe) -> ProbedVideo:
    """Frame count, rate and size of ``path``, or one clear error (unreadable, shorter than one clip)."""
    path = Path(path)
    try:
        reader = VideoReader(path)
        height, width = reader.frame_shape()
    except VideoReadError as err:
        raise GroundingError(f"cannot read video {path}: {err.reason}") from err
    if reader.info.duration < recipe.clip_len:
        raise GroundingError(
            f"video {path} lasts {reader.info.duration:.2f} s, shorter than one {recipe.clip_len:g} s clip of "
            f"recipe {recipe.name}; the released features have no clip for it (use a video of at least "
            f"{recipe.clip_len:g} s)")
    return ProbedVideo(path, reader.info, height, width)


def _position_batches(part: RecipePart, video: ProbedVideo, frames: FfmpegFrames,
                      batch_size: int) -> Iterator[np.ndarray]:
    """``(b, N)`` positions per batch of clips; the tail is known only once the stream has ended."""
    if part.streams_clip_count:  # one frame per clip, as many clips as the stream has frames
        start = 0
        while True:
            frames.read_until(start + batch_size - 1)
            stop = min(start + batch_size, frames.decoded)
            if stop <= start:
                return
            yield np.arange(start, stop, dtype=np.int64)[:, None]
            start = stop
            if frames.ended and start >= frames.decoded:
                return
    else:
        positions = part.clip_positions(video.info, None)  # (T, N), as if the stream never ended
        for start in range(0, positions.shape[0], batch_size):
            batch = positions[start : start + batch_size]
            frames.read_until(int(batch.max()))
            if frames.ended and batch.max() >= frames.decoded:  # the tail: the part's own padding rule
                batch = part.clip_positions(video.info, frames.decoded)[start : start + batch_size]
            yield batch


def part_clips(part: RecipePart, video: ProbedVideo, batch_size: int = 16) -> Iterator[np.ndarray]:
    """The part's clips, a batch at a time: ``(b, N, size, size, 3)`` uint8 decoded frames."""
    with FfmpegFrames(video.path, part.decode_fps(video.info), video.height, video.width, part.size) as frames:
        yield from clip_batches(frames, _position_batches(part, video, frames, batch_size))


@torch.inference_mode()
def encode_part(part: RecipePart, model: nn.Module, video: ProbedVideo, device: torch.device,
                batch_size: int = 16) -> np.ndarray:
    """``(T, D)`` float32 features of one part."""
    own = part.encode_video(model, video.path, device, batch_size)
    if own is not None:
        return own
    feats = []
    for clips in part_clips(part, video, batch_size):
        inputs = part.model_input(torch.from_numpy(clips).to(device))  # uint8 travels, normalised there
        feats.append(model(inputs).float().cpu())
    out = torch.cat(feats).numpy()
    if not np.isfinite(out).all():
        raise GroundingError(f"the {part.name} backbone produced NaN or inf features for {video.path}; "
                             "check its weights file")
    return out


def encode_recipe(recipe: Recipe, models: dict[str, nn.Module], video: ProbedVideo, device: torch.device,
                  batch_size: int = 16) -> dict[str, np.ndarray]:
    """Each part's ``(T_p, D_p)`` features, by part name."""
    return {part.name: encode_part(part, models[part.name], video, device, batch_size) for part in recipe.parts}


def concatenate(recipe: Recipe, feats: dict[str, np.ndarray]) -> np.ndarray:
    """The parts side by side in recipe order, cut to the shortest (what ``FeatureBank.load_raw`` reads)."""
    length = min(feats[p.name].shape[0] for p in recipe.parts)
    return np.concatenate([feats[p.name][:length] for p in recipe.parts], axis=1).astype(np.float32)


def load_models(recipe: Recipe, weights: dict[str, Path], device: torch.device) -> dict[str, nn.Module]:
    """Every part's backbone, weights loaded, on ``device`` in eval mode."""
    return {part.name: part.load(weights[part.name]).to(device).eval() for part in recipe.parts}
