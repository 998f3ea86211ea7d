"""The video extraction run: decode in background workers, encode on the device, write, report.

A ``torch.utils.data.DataLoader`` over the videos (one video per item, ``num_workers`` processes) opens
each file, computes its frame indices, reads the distinct frames in batched ``get_batch`` calls and
resizes/crops them to uint8, while the main process runs the backbone on the previous video. Clips
are encoded ``batch_size`` at a time. A video that cannot be decoded comes back as a failure with its
reason, and the run goes on; so does one whose encoding or writing fails.

Resume: a video is skipped when its feature file exists *and* the manifest lists it (both are written
only once the video is complete), so rerunning the same command after a crash or a failure does only
what is left. ``overwrite=True`` redoes everything.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from grounding.backbones import Backbone, build_backbone
from grounding.backbones.transforms import FramePreprocess
from grounding.data.manifest import append_manifest, read_manifest
from grounding.errors import GroundingError
from grounding.extract.inputs import VideoJob, list_videos, take_shard
from grounding.extract.runtime import RunSummary, progress_bar, resolve_device
from grounding.extract.sampling import ClipSampling, frame_indices
from grounding.extract.video_io import VideoInfo, VideoReader
from grounding.extract.writers import make_writer


@dataclass
class ExtractConfig:
    videos: str | Path  # a folder (recursive) or a text file of paths
    out: str | Path
    backbone: str
    model: str | Path | None  # local transformers model folder
    clip_len: float = 2.0  # seconds per clip (QVHighlights-style); 1.0 for Charades-STA
    frames_per_clip: int | None = None  # None: the backbone's default (CLIP 1, video models their own)
    clip_count: str = "ceil"  # ceil | floor | round, see grounding.extract.sampling
    fmt: str = "npy"  # npy | npz | hdf5
    device: str = "cpu"
    batch_size: int = 64  # clips per forward pass
    num_workers: int = 2  # decoding processes; 0 decodes in the main process
    shard: tuple[int, int] = (0, 1)
    id_map: str | Path | None = None
    overwrite: bool = False
    progress: bool = True


@dataclass
class DecodedVideo:
    """A worker's result: the distinct sampled frames and, per clip, which of them it uses; or an error."""

    job: VideoJob
    info: VideoInfo | None = None
    frames: torch.Tensor | None = None  # (F, 3, h, w) uint8
    clip_frames: torch.Tensor | None = None  # (T, frames_per_clip) int64, rows of ``frames``
    error: str | None = None

    def pin_memory(self) -> DecodedVideo:  # called by the DataLoader when pin_memory=True
        if self.frames is not None:
            self.frames = self.frames.pin_memory()
        return self


class DecodeVideos(Dataset):
    """Decodes one video per item (in a DataLoader worker): frame indices, batched reads, resize/crop."""

    def __init__(self, jobs: list[VideoJob], sampling: ClipSampling, preprocess: FramePreprocess) -> None:
        self.jobs, self.sampling, self.preprocess = jobs, sampling, preprocess

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> DecodedVideo:
        job = self.jobs[i]
        try:
            reader = VideoReader(job.path)
            indices = frame_indices(reader.info.num_frames, reader.info.fps, self.sampling)  # (T, N)
            distinct, rows = np.unique(indices.ravel(), return_inverse=True)
            frames = reader.read(distinct, self.preprocess.resize_crop)
            clip_frames = torch.from_numpy(rows.reshape(indices.shape).astype(np.int64))
            return DecodedVideo(job, reader.info, frames, clip_frames)
        except Exception as err:  # noqa: BLE001 - any failure is this video's, reported by name
            return DecodedVideo(job, error=getattr(err, "reason", None) or f"{type(err).__name__}: {err}")


def _as_is(item: DecodedVideo) -> DecodedVideo:
    return item


def decode_loader(
    jobs: list[VideoJob], sampling: ClipSampling, preprocess: FramePreprocess, num_workers: int, pin_memory: bool = False
) -> DataLoader:
    """Decoded videos in order, ``num_workers`` background processes ahead of the consumer."""
    return DataLoader(
        DecodeVideos(jobs, sampling, preprocess),
        batch_size=None,
        num_workers=num_workers,
        collate_fn=_as_is,
        pin_memory=pin_memory,
    )


@torch.inference_mode()
def encode_video(
    backbone: Backbone,
    frames: torch.Tensor,  # (F, 3, h, w) uint8
    clip_frames: torch.Tensor,  # (T, N) rows of frames
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
) -> np.ndarray:
    """One feature per clip, ``(T, D)`` float32; frames go to the device as uint8 and are normalised there."""
    frames = frames.to(device, non_blocking=True)
    clip_frames = clip_frames.to(device)
    feats = []
    for start in range(0, clip_frames.shape[0], batch_size):
        clips = frames[clip_frames[start : start + batch_size]]  # (b, N, 3, h, w) uint8
        feats.append(backbone(backbone.preprocess.normalize(clips, dtype)).float())
    return torch.cat(feats).cpu().numpy()


def extract_videos(cfg: ExtractConfig) -> RunSummary:
    """Extract the features of every video of this shard that is not done yet; see the module docstring."""
    return VideoExtraction(cfg).run()


class VideoExtraction:
    """One run: set up (videos, backbone, sampling, writer), then decode -> encode -> write per video."""

    def __init__(self, cfg: ExtractConfig) -> None:
        if cfg.batch_size < 1 or cfg.num_workers < 0:
            raise GroundingError("--batch-size must be at least 1 and --num-workers at least 0")
        if cfg.fmt == "hdf5" and cfg.shard[1] > 1:
            raise GroundingError(
                "--format hdf5 writes one file, which parallel shards cannot share; use --format npy or npz "
                "for sharded runs (or give each shard its own --out)"
            )
        self.cfg = cfg
        jobs = take_shard(list_videos(cfg.videos, cfg.id_map), *cfg.shard)
        self.device, self.dtype = resolve_device(cfg.device)
        self.backbone = build_backbone(cfg.backbone, cfg.model, cfg.frames_per_clip).to(self.device, self.dtype)
        self.sampling = ClipSampling(cfg.clip_len, self.backbone.frames_per_clip, cfg.clip_count)
        self.writer = make_writer(cfg.fmt, cfg.out)
        done = read_manifest(cfg.out)
        self.todo = [job for job in jobs if cfg.overwrite or not (job.vid in done and self.writer.exists(job.vid))]
        self.summary = RunSummary("video", total=len(jobs), skipped=len(jobs) - len(self.todo))

    def run(self) -> RunSummary:
        loader = decode_loader(
            self.todo, self.sampling, self.backbone.preprocess, self.cfg.num_workers, self.device.type == "cuda"
        )
        started = time.perf_counter()
        try:
            with progress_bar(len(self.todo), "video", self.cfg.progress) as bar:
                for item in loader:
                    self._finish(item, bar)
                    bar.update(1)
                    bar.set_postfix_str(f"{self.summary.features / (time.perf_counter() - started):.1f} clips/s")
        finally:
            self.writer.close()
            self.summary.seconds = time.perf_counter() - started
        return self.summary

    def _finish(self, item: DecodedVideo, bar) -> None:
        """Encode and write one decoded video, or record why it failed."""
        job, info, cfg = item.job, item.info, self.cfg
        name = f"{job.vid} ({job.path})"
        if item.error is not None:
            self.summary.fail(name, item.error, bar)
            return
        try:
            feats = encode_video(self.backbone, item.frames, item.clip_frames, cfg.batch_size, self.device, self.dtype)
            if not np.isfinite(feats).all():
                raise ValueError("the backbone produced NaN or inf features")
            self.writer.write(job.vid, feats)
        except (RuntimeError, ValueError, OSError) as err:  # e.g. out of memory, a full disk
            self.summary.fail(name, f"{type(err).__name__}: {err}", bar)
            return
        append_manifest(
            cfg.out,
            {
                "vid": job.vid,
                "video": str(job.path),
                "clips": int(feats.shape[0]),
                "duration": round(info.duration, 4),
                "fps": round(info.fps, 6),
                "num_frames": info.num_frames,
                "backbone": cfg.backbone,
                "model": str(cfg.model),
                "feature_dim": int(feats.shape[1]),
                "seconds_per_clip": self.sampling.clip_len,
                "frames_per_clip": self.sampling.frames_per_clip,
                "clip_count": self.sampling.rule,
                "format": cfg.fmt,
                "file": self.writer.location(job.vid),
            },
        )
        self.summary.done += 1
        self.summary.features += int(feats.shape[0])
