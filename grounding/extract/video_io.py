"""Reading frames with decord: open a video, check it is decodable, fetch frames in batched reads.

Every way a file can fail (missing, not a video, no frames, a broken stream found mid-read) raises
``VideoReadError`` with the path and a one-line reason, so that the pipeline can report the file by
name and go on with the next one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from grounding.errors import GroundingError


class VideoReadError(Exception):
    """A video that cannot be decoded; ``reason`` is short enough for a one-line report."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def _decord():
    try:
        import decord
    except ImportError as err:
        raise GroundingError(
            "feature extraction reads videos with decord, which is not installed; "
            "run `pip install decord` (or `pip install -e .[extract]`)"
        ) from err
    return decord


def _reason(err: Exception) -> str:
    """decord's messages carry C++ source locations and ffmpeg log lines; keep the informative tail."""
    text = " ".join(str(err).split())
    for marker in ("ERROR opening:", "Error:", "Check failed:"):
        if marker in text:
            text = text[text.rindex(marker) :]
    return (text[:200] + "...") if len(text) > 200 else text or type(err).__name__


class VideoReader:
    """A decord reader with the checks and errors the pipeline needs.

    One decoding thread per reader by default: decord's multithreaded decoding fails on some VP9 webm
    files (``avcodec_send_packet`` EAGAIN) and is no faster on typical videos; parallelism comes from
    the pipeline's decoding workers instead."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoReadError(self.path, "no such file")
        if self.path.stat().st_size == 0:
            raise VideoReadError(self.path, "empty file")
        decord = _decord()
        try:
            self._reader = decord.VideoReader(str(self.path), ctx=decord.cpu(0), num_threads=threads)
            num_frames = len(self._reader)
            fps = float(self._reader.get_avg_fps())
        except Exception as err:  # decord raises RuntimeError/DECORDError for anything it cannot parse
            raise VideoReadError(self.path, f"not a readable video ({_reason(err)})") from err
        if num_frames < 1:
            raise VideoReadError(self.path, "the video stream has no frames")
        if not (math.isfinite(fps) and fps > 0):
            raise VideoReadError(self.path, f"the container reports no usable frame rate ({fps})")
        self.info = VideoInfo(num_frames, fps)

    def frame_shape(self) -> tuple[int, int]:
        """``(height, width)`` of the decoded frames (decodes the first frame)."""
        try:
            height, width = self._reader[0].shape[:2]
        except Exception as err:
            raise VideoReadError(self.path, f"decoding the first frame failed ({_reason(err)})") from err
        self._reader.seek(0)
        return int(height), int(width)

    def read(
        self,
        indices: np.ndarray,
        transform: Callable[[np.ndarray], torch.Tensor],
        chunk: int = 32,
    ) -> torch.Tensor:
        """Frames at sorted ``indices``, ``chunk`` per ``get_batch`` call, each chunk passed through
        ``transform`` ((n, H, W, 3) uint8 -> tensor) before the next is decoded, so that only one chunk
        of full-resolution frames is ever held."""
        parts = []
        for start in range(0, len(indices), chunk):
            batch = [int(i) for i in indices[start : start + chunk]]
            try:
                frames = self._reader.get_batch(batch).asnumpy()
            except Exception as err:
                raise VideoReadError(self.path, f"decoding failed near frame {batch[0]} ({_reason(err)})") from err
            parts.append(transform(frames))
        return torch.cat(parts)
