"""``tools/extract_features.py --recipe NAME --weights PATH``: a recipe over a folder or list of videos.

Each part writes ``<out>/<part.folder>/<vid>.<fmt>`` and appends a line to that folder's
``manifest.jsonl`` with the usual fields plus ``recipe``, ``recipe_part`` and the part's weights
(``weights``: the absolute path, ``weights_file``, ``weights_sha256``); the data layer turns them into
the checkpoint's feature provenance (``grounding.data.provenance``). Failures, resume (a video is
skipped when every part has it), shards and the summary work as in the backbone run (``pipeline.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from grounding.data.manifest import append_manifest, read_manifest
from grounding.errors import GroundingError
from grounding.extract.inputs import list_videos, take_shard
from grounding.extract.recipes import get_recipe
from grounding.extract.recipes.base import Recipe
from grounding.extract.recipes.encode import encode_recipe, load_models, probe
from grounding.extract.recipes.weights import resolve_weights, weights_record
from grounding.extract.runtime import RunSummary, progress_bar, resolve_device
from grounding.extract.writers import make_writer


@dataclass
class RecipeExtractConfig:
    videos: str | Path
    out: str | Path
    recipe: str
    weights: list[str] = field(default_factory=list)
    device: str = "cpu"
    batch_size: int = 16  # clips per forward pass
    shard: tuple[int, int] = (0, 1)
    id_map: str | Path | None = None
    overwrite: bool = False
    progress: bool = True


def manifest_fields(recipe: Recipe, part_name: str, weights: dict[str, dict[str, str]]) -> dict[str, object]:
    """The recipe fields of one part's manifest line (also what ``Grounder.encode_video`` records)."""
    part = recipe.part(part_name)
    record = weights[part_name]
    return {"backbone": f"{recipe.name}:{part.name}", "model": record["path"], "recipe": recipe.name,
            "recipe_part": part.name, "weights": record["path"], "weights_file": record["file"],
            "weights_sha256": record["sha256"], "feature_dim": part.feature_dim, "seconds_per_clip": part.clip_len,
            "pooling": part.pooling}


def extract_with_recipe(cfg: RecipeExtractConfig) -> RunSummary:
    """Extract every video of this shard that some part has not done yet."""
    if cfg.batch_size < 1:
        raise GroundingError("--batch-size must be at least 1")
    recipe = get_recipe(cfg.recipe)
    weights = resolve_weights(recipe, cfg.weights)
    jobs = take_shard(list_videos(cfg.videos, cfg.id_map), *cfg.shard)
    device, _ = resolve_device(cfg.device)  # recipes run in float32, as the reference features were computed
    out = Path(cfg.out)
    writers = {p.name: make_writer(recipe.fmt, out / p.folder) for p in recipe.parts}
    done = {p.name: read_manifest(out / p.folder) for p in recipe.parts}
    todo = [job for job in jobs if cfg.overwrite or not all(
        job.vid in done[p.name] and writers[p.name].exists(job.vid) for p in recipe.parts)]
    summary = RunSummary("video", total=len(jobs), skipped=len(jobs) - len(todo))
    models = load_models(recipe, weights, device) if todo else {}
    record = weights_record(recipe, weights)
    started = time.perf_counter()
    try:
        with progress_bar(len(todo), "video", cfg.progress) as bar:
            for job in todo:
                name = f"{job.vid} ({job.path})"
                try:
                    video = probe(job.path, recipe)
                    feats = encode_recipe(recipe, models, video, device, cfg.batch_size)
                    for part in recipe.parts:
                        writers[part.name].write(job.vid, feats[part.name])
                except (GroundingError, RuntimeError, ValueError, OSError) as err:
                    summary.fail(name, str(err) if isinstance(err, GroundingError) else f"{type(err).__name__}: {err}",
                                 bar)
                    bar.update(1)
                    continue
                for part in recipe.parts:
                    append_manifest(out / part.folder, {
                        "vid": job.vid, "video": str(job.path), "clips": int(feats[part.name].shape[0]),
                        "duration": round(video.info.duration, 4), "fps": round(video.info.fps, 6),
                        "num_frames": video.info.num_frames, **manifest_fields(recipe, part.name, record),
                        "feature_dim": int(feats[part.name].shape[1]), "format": recipe.fmt, "file": writers[part.name].location(job.vid)})
                summary.done += 1
                summary.features += min(int(f.shape[0]) for f in feats.values())
                bar.update(1)
    finally:
        for writer in writers.values():
            writer.close()
        summary.seconds = time.perf_counter() - started
    return summary
