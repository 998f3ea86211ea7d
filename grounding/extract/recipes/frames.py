"""Decoding as the reference pipelines do: one ffmpeg process per (video, part), frames streamed.

The released feature sets were decoded by the ffmpeg command line (HERO: ``fps=R`` filter, bicubic
``scale`` to a short side of S in the video's own pixel format, centre ``crop`` to S x S, rgb24
output). decord decodes the same full-resolution frames bit for bit, but its resize is not ffmpeg's,
and the scale filter works on YUV planes before the RGB conversion, which no torch resize reproduces;
so recipes run the same filter graph through ffmpeg (the binary of ``imageio-ffmpeg``, or ``ffmpeg``
on PATH) and read the raw frames from its pipe, one clip batch at a time.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from grounding.errors import GroundingError


def ffmpeg_binary() -> str:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        found = shutil.which("ffmpeg")
        if found:
            return found
    raise GroundingError("feature recipes decode with ffmpeg: pip install imageio-ffmpeg (or put ffmpeg on PATH)")


def scaled_size(height: int, width: int, size: int) -> tuple[int, int]:
    """``(h, w)`` after resizing the short side to ``size`` (the long side truncated, as HERO does)."""
    if height >= width:
        return int(height * size / width), size
    return size, int(width * size / height)


def filter_graph(fps: float, height: int, width: int, size: int) -> str:
    """``fps=R,scale=W:H,crop=S:S:X:Y``: HERO's ``ffmpeg-python`` chain written out."""
    new_h, new_w = scaled_size(height, width, size)
    x, y = int((new_w - size) / 2.0), int((new_h - size) / 2.0)
    return f"fps=fps={fps!r},scale={new_w}:{new_h},crop={size}:{size}:{x}:{y}"


class FfmpegFrames:
    """Frames of ``path`` decoded at ``fps`` and resized/cropped to ``size`` x ``size``, uint8 RGB, read
    in order; ``take(positions)`` returns the frames at those positions, padding past the end with the
    last frame, and forgets frames before ``keep_from``."""

    def __init__(self, path: str | Path, fps: float, height: int, width: int, size: int) -> None:
        self.path, self.size = Path(path), size
        self.frame_bytes = size * size * 3
        cmd = [ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
               "-vf", filter_graph(fps, height, width, size), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._buffer: list[np.ndarray] = []
        self._first = 0  # position of self._buffer[0]
        self.ended = False

    @property
    def decoded(self) -> int:
        return self._first + len(self._buffer)

    def read_until(self, position: int) -> None:
        assert self._proc.stdout is not None
        while not self.ended and self.decoded <= position:
            raw = self._proc.stdout.read(self.frame_bytes)
            if len(raw) < self.frame_bytes:
                self._finish()
                break
            self._buffer.append(np.frombuffer(raw, np.uint8).reshape(self.size, self.size, 3))

    def _finish(self) -> None:
        self.ended = True
        err = self._proc.stderr.read().decode(errors="replace").strip() if self._proc.stderr else ""
        code = self._proc.wait()
        if code != 0 or self.decoded == 0:
            reason = err.splitlines()[-1] if err else f"ffmpeg exited with {code} and no frames"
            raise GroundingError(f"cannot decode {self.path} with ffmpeg: {reason}")

    def take(self, positions: np.ndarray, keep_from: int | None = None) -> np.ndarray:
        """``positions`` (any shape) -> frames ``(*shape, size, size, 3)``."""
        self.read_until(int(positions.max()))
        last = self.decoded - 1
        rows = np.minimum(positions, last) - self._first
        if rows.min() < 0:
            raise ValueError("positions before the kept frames were requested")
        frames = np.stack([self._buffer[r] for r in rows.ravel()]).reshape(*rows.shape, self.size, self.size, 3)
        if keep_from is not None and keep_from > self._first:
            drop = min(keep_from - self._first, len(self._buffer) - 1)
            del self._buffer[:drop]
            self._first += drop
        return frames

    def rest(self) -> int:
        """Decode to the end; the number of frames the stream had."""
        while not self.ended:
            self.read_until(self.decoded)
            if len(self._buffer) > 1:
                self._first += len(self._buffer) - 1
                del self._buffer[:-1]
        return self.decoded

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> FfmpegFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def clip_batches(frames: FfmpegFrames, positions: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """The frames of each batch of clip positions ``(b, N)``, in order: ``(b, N, S, S, 3)`` uint8."""
    for batch in positions:
        yield frames.take(batch, keep_from=int(batch.min()))
