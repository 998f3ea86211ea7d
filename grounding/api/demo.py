"""A grounding model you can build in under a minute on a CPU, with nothing downloaded: the newcomer flow.

``build_demo(folder)`` saves a tiny *random* CLIP (image and text towers, with a character-level
tokenizer) to ``folder/clip``, writes a few short synthetic videos, extracts their features with that
CLIP (``tools/extract_features.py``'s pipeline, so a ``manifest.jsonl`` records how), writes
Charades-STA style annotations for them, and trains CCMAN on them for a couple of epochs in
``folder/run``. The result answers nothing meaningfully (the backbone is random), but every step a
real model takes is exercised: ``Grounder.from_pretrained(folder/"run")`` reproduces the features of
any video with the saved CLIP, and ``Grounder.zero_shot(folder/"clip")`` runs on the same folder.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from grounding.errors import GroundingError

QUERIES = ["a person opens the door.", "someone holds a cup.", "the person is washing the dish.",
           "a person takes the book.", "person throws a pillow."]


def save_tiny_clip(folder: str | Path, seed: int = 0) -> Path:
    """A random full CLIP model (16-d embeddings) plus a character-level CLIP tokenizer, in ``folder``."""
    from transformers import CLIPTokenizer

    from grounding.extract.synthetic import save_random_clip

    folder = save_random_clip(folder, full_model=True, seed=seed)
    letters = list(string.ascii_lowercase)
    vocab = ["<|startoftext|>", "<|endoftext|>", *letters, *(c + "</w>" for c in letters)]  # 54 < 64 ids
    CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=[]).save_pretrained(folder)
    return folder


def write_demo_data(folder: Path, clip_dir: Path, num_videos: int = 6) -> Path:
    """Videos, their features (with manifest) and annotations under ``folder/data``; returns that folder."""
    from grounding.extract.pipeline import ExtractConfig, extract_videos
    from grounding.extract.synthetic import make_video

    data = folder / "data"
    lines, durations = [], []
    for i in range(num_videos):
        vid = f"demo{i:02d}"
        frames = 15 * (8 + 2 * i)  # 8 to 18 s at 15 fps
        make_video(data / "videos" / f"{vid}.mp4", frames, fps=15, size=(64, 48))
        duration = frames / 15
        durations.append(f"{vid},{duration}")
        for j, query in enumerate(QUERIES[:3]):
            start = (i + 2 * j) % max(1, int(duration) - 3)
            lines.append(f"{vid} {start:.1f} {start + 3:.1f}##{query}")
    summary = extract_videos(ExtractConfig(videos=data / "videos", out=data / "features", backbone="clip",
                                           model=clip_dir, clip_len=1.0, num_workers=0, progress=False))
    if summary.failures:
        raise GroundingError(f"demo feature extraction failed: {summary.failures}")
    (data / "annotations").mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        (data / "annotations" / f"charades_sta_{split}.txt").write_text("\n".join(lines) + "\n")
        (data / "annotations" / f"Charades_v1_{split}.csv").write_text("id,length\n" + "\n".join(durations) + "\n")
    return data


def demo_overrides(data: Path, epochs: int = 2) -> list[str]:
    """A small, fast CCMAN on the demo features (16-d, 16 model clips)."""
    items = {"data.root": str(data), "data.features": "features", "data.num_clips": 16, "model.video_dim": 16,
             "model.dim": 32, "model.heads": 2, "model.word_dim": 16, "model.embed_dim": 16, "train.device": "cpu",
             "train.batch_size": 8, "train.epochs": epochs, "train.num_figures": 0, "train.log_every": 1000}
    return [f"{k}={v}" for k, v in items.items()]


def build_demo(folder: str | Path, epochs: int = 2, overwrite: bool = False) -> dict[str, str]:
    """Build everything (see the module docstring); returns the paths a user needs next."""
    from grounding.config import load_config, packaged_config
    from grounding.engine.trainer import run_training

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise GroundingError(f"{folder} exists and is not empty; pass another folder or --overwrite")
    clip_dir = save_tiny_clip(folder / "clip")
    data = write_demo_data(folder, clip_dir)
    cfg = load_config(packaged_config("charades_sta.yaml"), demo_overrides(data, epochs))
    run_training(cfg, folder / "run", overwrite=True, progress=False)
    paths = {"clip": str(clip_dir), "run": str(folder / "run"), "videos": str(data / "videos")}
    (folder / "demo.json").write_text(json.dumps(paths, indent=1))
    return paths
