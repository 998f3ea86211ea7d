"""Which frames of a video feed which clip: clip counts and frame indices as pure functions.

A video of ``num_frames`` frames at ``fps`` lasts ``duration = num_frames / fps`` seconds; frame ``k``
is shown during ``[k / fps, (k + 1) / fps)``. It is cut into clips of ``clip_len`` seconds: clip ``i``
covers ``[i * clip_len, min((i + 1) * clip_len, duration))``.

**Clip count** (``count_clips``), ``ceil`` by default::

    ceil:  ceil(duration / clip_len)   the last, partial clip is kept, so every frame is in a clip
    floor: floor(duration / clip_len)  a partial tail is dropped, every clip is full length
    round: round(duration / clip_len)  what ffmpeg's ``fps=1/clip_len`` filter yields, about

and at least one clip for any video with a frame. A tolerance of 1e-6 clip absorbs float error, so a
video of exactly 30 s (450 frames at 15 fps, 720 at 24) never grows a 31st, empty clip.
The ``ceil`` default matches the HERO video feature extractor (``ceil(frames / (clip_len *
rate))`` clips) and means a 30.7 s Charades video gives 31 one-second clips.

**Frame indices** (``frame_indices``): clip ``i`` is split into ``frames_per_clip`` equal parts and
the frame shown at the midpoint of each part is taken (for one frame per clip: the frame at the
clip's middle; ffmpeg's ``fps`` filter takes the one just before it, which can be a frame earlier).
The last clip of a ``ceil`` or ``round`` count is cut at the end of the video, so its frames spread
over the part that exists. Everything is computed from the real frame rate, so odd rates (29.97 =
30000/1001, 23.976) land on the right frames (taking 29.97 as 30 would drift a frame every 33 s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from grounding.errors import GroundingError

CLIP_COUNT_RULES = ("ceil", "floor", "round")
_TOLERANCE = 1e-6  # in clips (count) and in frames (index), against float error


def count_clips(duration: float, clip_len: float, rule: str = "ceil") -> int:
    """Number of ``clip_len``-second clips of a ``duration``-second video (see the module docstring)."""
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration}")
    ratio = duration / clip_len
    if rule == "ceil":
        count = math.ceil(ratio - _TOLERANCE)
    elif rule == "floor":
        count = math.floor(ratio + _TOLERANCE)
    elif rule == "round":
        count = math.floor(ratio + 0.5)
    else:
        raise ValueError(f"unknown clip count rule '{rule}'; use one of {CLIP_COUNT_RULES}")
    return max(1, count)


@dataclass(frozen=True)
class ClipSampling:
    """How a video is cut into clips: seconds per clip, frames sampled per clip, clip count rule."""

    clip_len: float
    frames_per_clip: int = 1
    rule: str = "ceil"

    def __post_init__(self) -> None:
        if not (self.clip_len > 0 and math.isfinite(self.clip_len)):
            raise GroundingError(f"--clip-len must be a positive number of seconds, got {self.clip_len}")
        if self.frames_per_clip < 1:
            raise GroundingError(f"--frames-per-clip must be at least 1, got {self.frames_per_clip}")
        if self.rule not in CLIP_COUNT_RULES:
            raise GroundingError(f"unknown clip count rule '{self.rule}'; use one of {', '.join(CLIP_COUNT_RULES)}")


def frame_indices(num_frames: int, fps: float, sampling: ClipSampling) -> np.ndarray:
    """Frame index of every sampled frame, ``(num_clips, frames_per_clip)`` int64, within ``[0, num_frames)``."""
    if num_frames < 1 or not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"need at least one frame and a positive frame rate, got {num_frames} frames at {fps} fps")
    duration = num_frames / fps
    num_clips = count_clips(duration, sampling.clip_len, sampling.rule)
    starts = np.arange(num_clips, dtype=np.float64) * sampling.clip_len
    ends = np.minimum(starts + sampling.clip_len, duration)
    parts = (np.arange(sampling.frames_per_clip, dtype=np.float64) + 0.5) / sampling.frames_per_clip
    times = starts[:, None] + (ends - starts)[:, None] * parts[None, :]  # (num_clips, frames_per_clip)
    return np.clip(np.floor(times * fps + _TOLERANCE), 0, num_frames - 1).astype(np.int64)
