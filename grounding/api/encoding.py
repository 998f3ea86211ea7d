"""A video file -> clip features, streamed: the extractor's sampling, preprocessing and backbone, a chunk
of clips at a time, so that an hour-long video never holds more than one chunk of frames in memory.

The features equal what ``tools/extract_features.py`` writes for the same file and settings (same
``frame_indices``, ``FramePreprocess`` and ``pipeline.encode_video``); only the decoding is chunked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grounding.backbones import Backbone
from grounding.errors import GroundingError
from grounding.extract.pipeline import encode_video as encode_clips
from grounding.extract.sampling import ClipSampling, frame_indices
from grounding.extract.video_io import VideoReader, VideoReadError


@dataclass
class EncodedVideo:
    """Raw (not yet normalised or resampled) clip features of one video and how they were made.

    ``features`` is ``(T, D)`` float32, clip ``i`` covering ``[i, i + 1) * clip_len`` seconds (the last
    one cut at ``duration``). Pass it to ``predict`` as often as you like: it is encoded once."""

    vid: str
    duration: float
    clip_len: float
    features: np.ndarray
    provenance: dict[str, Any]
    path: str | None = None
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)  # model-ready windows per grounder

    @property
    def num_clips(self) -> int:
        return int(self.features.shape[0])


def quiet_decoder_logs() -> None:
    """ffmpeg's own log lines (e.g. 'moov atom not found') would precede our one-line message on stderr;
    decord's error text keeps the reason."""
    try:
        import decord

        decord.logging.set_level(decord.logging.QUIET)
    except ImportError:
        pass  # VideoReader raises the install hint


def open_video(path: str | Path, clip_len: float, opened: Any = None) -> VideoReader:
    """A reader for ``path``, or one clear error: not a file, not a video, empty, shorter than one clip.
    ``opened``: a reader of ``path`` already open elsewhere (the web app's sandboxed one), only checked."""
    path = Path(path)
    if opened is not None:
        reader = opened
    else:
        if path.is_dir():
            raise GroundingError(f"{path} is a folder; pass a video file")
        quiet_decoder_logs()
        try:
            reader = VideoReader(path)
        except VideoReadError as err:
            raise GroundingError(f"cannot read video {path}: {err.reason}; pass a video file (mp4, mkv, webm, avi, "
                                 "mov)") from err
    if reader.info.duration < clip_len:
        raise GroundingError(f"video {path} lasts {reader.info.duration:.2f} s, shorter than one {clip_len:g} s clip "
                             "of the features the model uses; nothing to ground")
    return reader


@torch.inference_mode()
def encode_file(path: str | Path, backbone: Backbone, sampling: ClipSampling, device: torch.device,
                dtype: torch.dtype = torch.float32, chunk_clips: int = 64, batch_size: int = 32,
                reader: VideoReader | None = None) -> tuple[np.ndarray, float]:
    """``(T, D)`` features and the duration in seconds; frames decoded ``chunk_clips`` clips at a time."""
    reader = reader or open_video(path, sampling.clip_len)
    indices = frame_indices(reader.info.num_frames, reader.info.fps, sampling)  # (T, N)
    parts = []
    for start in range(0, indices.shape[0], chunk_clips):
        chunk = indices[start : start + chunk_clips]
        distinct, rows = np.unique(chunk.ravel(), return_inverse=True)
        try:
            frames = reader.read(distinct, backbone.preprocess.resize_crop)
        except VideoReadError as err:
            raise GroundingError(f"cannot read video {path}: {err.reason}; the file may be damaged") from err
        clip_frames = torch.from_numpy(rows.reshape(chunk.shape).astype(np.int64))
        parts.append(encode_clips(backbone, frames, clip_frames, batch_size, device, dtype))
    feats = np.concatenate(parts)
    if not np.isfinite(feats).all():
        raise GroundingError(f"the backbone produced NaN or inf features for {path}; check the model folder")
    return feats, reader.info.duration
