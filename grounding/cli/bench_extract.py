"""Measure feature-extraction speed (videos/s, clip features/s) with random CLIP-sized models.

Example (what docs/features.md reports):
    python tools/bench_extract.py --num-videos 4 --seconds 30 --models tiny clip-b32
    python tools/bench_extract.py --video ../shared/videos/charades_sample.mp4 --num-videos 8 --clip-len 1
    python tools/bench_extract.py --video my_videos/ --models clip-b32 --device cuda --num-workers 8
"""

from __future__ import annotations

import argparse

import torch

from grounding.extract.bench import MODELS, run_benchmark


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["tiny", "clip-b32"])
    parser.add_argument("--num-videos", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each generated video")
    parser.add_argument("--video-fps", default="30000/1001", help="frame rate of the generated videos")
    parser.add_argument("--size", default="640x360", help="WxH of the generated videos")
    parser.add_argument("--video", help="a video (used --num-videos times), or a folder or list file of videos, "
                        "instead of generated ones")
    parser.add_argument("--clip-len", type=float, default=2.0)
    parser.add_argument("--frames-per-clip", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work-dir", help="where temporary videos and models go (default: system temp)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    rows = run_benchmark(
        args.models, num_videos=args.num_videos, seconds=args.seconds, fps=args.video_fps, size=(width, height),
        video=args.video, clip_len=args.clip_len, frames_per_clip=args.frames_per_clip, batch_size=args.batch_size,
        num_workers=args.num_workers, device=args.device, work_dir=args.work_dir,
    )
    for row in rows:
        print(row.line())
    return 0
