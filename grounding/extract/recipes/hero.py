"""Frame sampling of the HERO video feature extractor (linjieli222/HERO_Video_Feature_Extractor), which
made the released QVHighlights SlowFast and CLIP features, as pure functions.

SlowFast (``slowfast/extract_feature``): ffmpeg decodes at 30 fps; the frames are padded to whole
seconds by repeating the last frame, cut into seconds, padded to whole clips by repeating the last
*second*, and grouped into clips of ``clip_len`` seconds (60 frames for 2 s); ``ceil(duration /
clip_len)`` clips are kept. In each clip, 32 frames are taken at ``linspace(0, L - 1, 32)`` (truncated,
clamped to the clip), ``L = 32 * 2 * floor(source fps) / 30``: a 30 fps source spreads them over the
whole clip (the last ones clamped to its last frame), a 15 fps one over its first second only. The slow
pathway takes every 4th of them (``linspace(0, 31, 8)``).

CLIP (``clip/``): ffmpeg decodes at ``1 / clip_len`` fps, one frame per clip, as many clips as ffmpeg
emits (a video shorter than ``clip_len + 0.1`` s is decoded at ``2 / max(int(duration), 1)`` fps).

ffmpeg's ``fps`` filter (``fps_filter_sources``) emits output frame ``n`` (time ``n / R``) as the last
source frame whose time, in output frames and rounded to nearest (halves up), is at most ``n``; a 0.5 fps
decode thus takes the frame on screen just before the middle of each 2 s clip.
"""

from __future__ import annotations

import math

import numpy as np
import torch

SLOWFAST_DECODE_FPS = 30
SLOWFAST_FRAMES = 32  # DATA.NUM_FRAMES of extract_SLOWFAST_8x8_R50.yaml
SLOWFAST_SAMPLING_RATE = 2  # DATA.SAMPLING_RATE
SLOWFAST_ALPHA = 4  # SLOWFAST.ALPHA


def clip_count(duration: float, clip_len: float) -> int:
    """``ceil(duration / clip_len)``: HERO's count (its duration is ffprobe's; ours decord's frames / fps)."""
    return max(1, math.ceil(duration / clip_len))


def slowfast_offsets(source_fps: float) -> np.ndarray:
    """The 32 frame offsets inside a 30 fps clip (before clamping to its length), from the source rate."""
    span = SLOWFAST_FRAMES * SLOWFAST_SAMPLING_RATE * math.floor(source_fps) / SLOWFAST_DECODE_FPS
    return torch.linspace(0, span - 1, SLOWFAST_FRAMES).long().numpy()  # torch, as HERO, for identical rounding


def slowfast_positions(duration: float, source_fps: float, clip_len: float, decoded: int | None) -> np.ndarray:
    """``(clips, 32)`` positions into the 30 fps frames; with ``decoded`` (the stream's length) known, the
    padding of the tail is applied (see the module docstring)."""
    per_second = SLOWFAST_DECODE_FPS
    per_clip = int(round(clip_len * per_second))
    offsets = np.minimum(slowfast_offsets(source_fps), per_clip - 1)
    count = clip_count(duration, clip_len)
    positions = np.arange(count)[:, None] * per_clip + offsets[None, :]
    if decoded is not None:
        seconds = math.ceil(decoded / per_second)  # after padding frames to whole seconds
        second = positions // per_second
        positions = np.where(second >= seconds, (seconds - 1) * per_second + positions % per_second, positions)
        positions = np.minimum(positions, decoded - 1)
    return positions.astype(np.int64)


def slow_pathway_index(num_frames: int = SLOWFAST_FRAMES) -> torch.Tensor:
    """Which of the fast pathway's frames the slow one takes: ``linspace(0, T - 1, T // alpha)``, truncated."""
    return torch.linspace(0, num_frames - 1, num_frames // SLOWFAST_ALPHA).long()


def clip_decode_fps(duration: float, clip_len: float) -> float:
    """The rate HERO's CLIP extractor decodes at (with its short-video exception)."""
    fps = 1.0 / clip_len
    if 0 < duration < 1 / fps + 0.1:
        fps = 2 / max(int(duration), 1)
    return fps


def fps_filter_sources(num_frames: int, source_fps: float, out_fps: float, count: int) -> np.ndarray:
    """Source frame index of each of the ``count`` frames ffmpeg's ``fps=out_fps`` filter emits, for a
    constant-rate source whose frame ``k`` starts at ``k / source_fps``."""
    out_pts = np.floor(np.arange(num_frames) / source_fps * out_fps + 0.5 + 1e-9)  # rounded to nearest, halves up
    n = np.arange(count)
    return np.clip(np.searchsorted(out_pts, n, side="right") - 1, 0, num_frames - 1).astype(np.int64)


def fps_filter_count(num_frames: int, source_fps: float, out_fps: float) -> int:
    """How many frames ``fps=out_fps`` emits for a constant-rate source: the duration in output frames,
    rounded to nearest (ffmpeg's default ``eof_action=round``)."""
    return max(1, math.floor(num_frames / source_fps * out_fps + 0.5))
