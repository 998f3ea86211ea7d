"""Extraction throughput: videos/s and clip features/s for a few models on the same videos.

The videos are generated (``num_videos`` of ``seconds`` s each, ffmpeg's testsrc2 pattern, H.264),
``num_videos`` copies (links) of one real video, or an existing folder or list of videos. Each model is a randomly initialised transformers model of the named size
(weights do not change the speed). Times cover the extraction loop (decoding in workers, the model,
writing), not process start-up or model loading; a decode-only pass shows the decoding ceiling.
Each row also gives the peak memory of its run in this process (``grounding.timing.PeakMemory``: the
resident set on the CPU, allocated tensors on a GPU), which holds the model; the decoding workers are
processes of their own and not counted.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from grounding.backbones.transforms import CLIP_MEAN, CLIP_STD, FramePreprocess
from grounding.device import select_device
from grounding.extract import synthetic
from grounding.extract.inputs import VIDEO_EXTENSIONS, VideoJob, list_videos
from grounding.extract.pipeline import ExtractConfig, decode_loader, extract_videos
from grounding.extract.sampling import ClipSampling
from grounding.timing import PeakMemory, Stopwatch

# name -> save_random_clip arguments
MODELS = {
    "tiny": dict(hidden_size=32, num_layers=2, num_heads=2, image_size=32, patch_size=8, projection_dim=16),
    "clip-b32": dict(hidden_size=768, num_layers=12, num_heads=12, image_size=224, patch_size=32, projection_dim=512),
}


@dataclass
class BenchRow:
    name: str
    videos: int
    clips: int
    seconds: float
    peak_memory_mb: float | None = None

    def line(self) -> str:
        memory = "" if self.peak_memory_mb is None else f"  peak {self.peak_memory_mb:6.0f} MB"
        return (
            f"{self.name:>12}  {self.videos:4d} videos  {self.clips:6d} clips  {self.seconds:7.2f} s  "
            f"{self.videos / self.seconds:7.3f} videos/s  {self.clips / self.seconds:8.1f} clips/s{memory}"
        )


def _make_videos(folder: Path, num_videos: int, seconds: float, fps: str, size: tuple[int, int], video: str | None) -> Path:
    if video is not None:
        source = Path(video)
        if source.is_dir() or source.suffix.lower() not in VIDEO_EXTENSIONS:
            return source  # a folder or list file of videos, used as it is
        folder.mkdir(parents=True)
        for i in range(num_videos):
            (folder / f"copy{i:03d}{source.suffix}").symlink_to(source.resolve())
        return folder
    folder.mkdir(parents=True)
    num, _, den = fps.partition("/")
    frames = round(seconds * float(num) / float(den or 1))
    for i in range(num_videos):
        synthetic.make_video(folder / f"synthetic{i:03d}.mp4", frames, fps, size=size)
    return folder


def decode_only(jobs: list[VideoJob], sampling: ClipSampling, image_size: int, num_workers: int) -> BenchRow:
    preprocess = FramePreprocess(image_size, (image_size, image_size), CLIP_MEAN, CLIP_STD)
    with PeakMemory() as memory, Stopwatch() as watch:
        loader = decode_loader(jobs, sampling, preprocess, num_workers)
        clips = sum(item.clip_frames.shape[0] for item in loader if item.error is None)
    return BenchRow(f"decode@{image_size}", len(jobs), clips, watch.seconds, memory.peak_mb)


def run_benchmark(
    models: list[str],
    num_videos: int = 4,
    seconds: float = 30.0,
    fps: str = "30000/1001",
    size: tuple[int, int] = (640, 360),
    video: str | None = None,
    clip_len: float = 2.0,
    frames_per_clip: int = 1,
    batch_size: int = 64,
    num_workers: int = 2,
    device: str = "cpu",
    work_dir: str | Path | None = None,
) -> list[BenchRow]:
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        root = Path(tmp)
        videos = _make_videos(root / "videos", num_videos, seconds, fps, size, video)
        sampling = ClipSampling(clip_len, frames_per_clip)
        rows = [decode_only(list_videos(videos), sampling, 224, num_workers)]
        for name in models:
            model_dir = synthetic.save_random_clip(root / f"model-{name}", **MODELS[name])
            cfg = ExtractConfig(
                videos=videos, out=root / f"out-{name}", backbone="clip", model=model_dir, clip_len=clip_len,
                frames_per_clip=frames_per_clip, batch_size=batch_size, num_workers=num_workers, device=device,
                progress=False,
            )
            with PeakMemory(select_device(device, setting="--device")) as memory:
                summary = extract_videos(cfg)  # times its own loop: summary.seconds
            if summary.failures:
                raise RuntimeError(f"benchmark videos failed: {summary.failures}")
            rows.append(BenchRow(name, summary.done, summary.features, summary.seconds, memory.peak_mb))
        return rows
