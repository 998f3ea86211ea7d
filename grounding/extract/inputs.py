"""Which videos a run extracts: listing a folder or a list file, naming them, and splitting into shards.

- ``--videos DIR``: every file below DIR (recursively) ending in .mp4, .mkv, .webm, .avi or .mov
  (any case); ``--videos LIST``: a text file with one path per line (blank lines and ``#`` comments
  skipped; relative paths are relative to the list file's folder).
- A video's id (its feature file's name) is the file stem, or the ``vid`` that ``--id-map`` (a csv with
  columns ``path,vid``; relative paths as in a list file) gives its path. Ids must be unique.
- ``--shard i/n`` (0 <= i < n) keeps every n-th video of the id-sorted list from the i-th on, so the n
  shards partition the list whatever machine computes them, and long and short videos spread evenly.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from grounding.errors import GroundingError

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")

T = TypeVar("T")


@dataclass(frozen=True)
class VideoJob:
    vid: str
    path: Path


def _resolve(path: str, base: Path) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else base / candidate


def find_video_paths(source: str | Path) -> list[Path]:
    source = Path(source)
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
    if source.is_file():
        if source.suffix.lower() in VIDEO_EXTENSIONS:
            raise GroundingError(f"--videos {source} is a video; pass its folder, or a text file listing paths")
        lines = (line.strip() for line in source.read_text().splitlines())
        return [_resolve(line, source.parent) for line in lines if line and not line.startswith("#")]
    raise GroundingError(f"--videos {source} does not exist; pass a folder of videos or a text file of paths")


def read_id_map(path: str | Path) -> dict[Path, str]:
    """``{resolved video path: vid}`` from a csv with columns ``path`` and ``vid``."""
    path = Path(path)
    if not path.is_file():
        raise GroundingError(f"--id-map {path} does not exist")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not {"path", "vid"} <= set(reader.fieldnames or []):
            raise GroundingError(f"{path}: an id map needs a header with columns 'path' and 'vid', got {reader.fieldnames}")
        return {_resolve(row["path"].strip(), path.parent).resolve(): row["vid"].strip() for row in reader}


def make_jobs(paths: Sequence[Path], id_map: Mapping[Path, str] | None = None, where: str = "--videos") -> list[VideoJob]:
    """Name each path (stem, or its id-map entry) and sort by id; ids must be unique and non-empty."""
    jobs: list[VideoJob] = []
    unmapped: list[Path] = []
    for path in paths:
        if id_map is None:
            vid = path.stem
        else:
            vid = id_map.get(path.resolve(), "")
            if not vid:
                unmapped.append(path)
                continue
        if os.sep in vid or vid.startswith("."):
            raise GroundingError(f"video id '{vid}' ({path}) cannot name a feature file; fix it in the id map")
        jobs.append(VideoJob(vid, path))
    if unmapped:
        raise GroundingError(
            f"{len(unmapped)} video(s) from {where} have no row in the id map, e.g. {unmapped[0]}; "
            "add rows (path,vid) for them or leave them out of --videos"
        )
    seen: dict[str, Path] = {}
    for job in jobs:
        if job.vid in seen:
            raise GroundingError(
                f"two videos get the id '{job.vid}': {seen[job.vid]} and {job.path}; give them distinct ids "
                "with --id-map (a csv with columns path,vid)"
            )
        seen[job.vid] = job.path
    return sorted(jobs, key=lambda job: job.vid)


def list_videos(source: str | Path, id_map: str | Path | None = None) -> list[VideoJob]:
    paths = find_video_paths(source)
    if not paths:
        raise GroundingError(f"--videos {source} lists no videos (looked for {', '.join(VIDEO_EXTENSIONS)})")
    return make_jobs(paths, read_id_map(id_map) if id_map else None, where=str(source))


def parse_shard(text: str | None, env: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)``. Without one, a ``torchrun`` launch (``RANK``/``WORLD_SIZE``) gives one
    shard per process; otherwise the whole list is one shard."""
    if text is None:
        if int(env.get("WORLD_SIZE", "1")) > 1:
            return int(env.get("RANK", "0")), int(env["WORLD_SIZE"])
        return 0, 1
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise GroundingError(f"--shard '{text}' is not 'i/n' (e.g. 0/4 for the first of four shards)") from None
    if not (count >= 1 and 0 <= index < count):
        raise GroundingError(f"--shard {text}: need 0 <= i < n (shards are numbered from 0)")
    return index, count


def take_shard(items: Sequence[T], index: int, count: int) -> list[T]:
    return list(items[index::count])
