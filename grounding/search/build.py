"""Index a library: every video of a split, or every feature file of a folder, through a model's video side.

The build commits a segment every ``commit_every`` videos, so a crash leaves the videos committed so far
searchable and a rerun with the same ``--out`` embeds only the videos that are not in the index yet. A
video whose features are missing or unusable is skipped and listed; the rest are indexed. Adding videos
later is the same call with new videos; ``remove_videos`` takes some out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from grounding.data.annotations import read_durations
from grounding.data.settings import data_root
from grounding.errors import GroundingError
from grounding.search.embed import Granularity
from grounding.search.index import MomentIndex
from grounding.search.model import SearchModel

log = logging.getLogger("grounding")

SOURCE_KEYS = ("features", "feature_format", "feature_key", "num_clips", "max_clips", "l2_normalize")


@dataclass
class LibraryVideo:
    vid: str
    duration: float


@dataclass
class BuildReport:
    added: int = 0
    already: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # vid -> why
    entries: int = 0
    kind: str = "flat"

    def summary(self) -> str:
        text = (f"{self.added} videos embedded, {self.already} already in the index, {len(self.skipped)} skipped; "
                f"{self.entries} entries ({self.kind} index)")
        if self.skipped:
            shown = "; ".join(f"{v}: {why}" for v, why in list(self.skipped.items())[:5])
            text += f"\nskipped (missing or unusable features): {shown}" + (" ..." if len(self.skipped) > 5 else "")
        return text


def source_spec(data_cfg: Any) -> dict[str, Any]:
    """The part of a ``data`` section that finds and prepares clip features (stage 2 reads them again)."""
    spec = {k: data_cfg.get(k) for k in SOURCE_KEYS if data_cfg.get(k) is not None}
    spec["root"] = str(Path(data_root(data_cfg)).resolve())
    return spec


def folder_library(folder: Path, durations: Path | None, clip_seconds: float) -> tuple[list[LibraryVideo], str]:
    """The videos of a feature folder (``<vid>.npy`` or ``<vid>.npz``) and the format they are in.

    Durations come from ``durations`` (a CSV with ``id,length`` or a JSON ``{vid: seconds}`` /
    ``{vid: {"duration": s}}``); without it a video lasts ``clips x clip_seconds``.
    """
    if not folder.is_dir():
        raise GroundingError(f"--features {folder} is not a folder of <vid>.npy or <vid>.npz files")
    files = sorted(p for p in folder.iterdir() if p.suffix in (".npy", ".npz"))
    if not files:
        raise GroundingError(f"{folder} holds no .npy or .npz feature files")
    fmt = "npy" if sum(p.suffix == ".npy" for p in files) >= len(files) / 2 else "npz"
    files = [p for p in files if p.suffix == f".{fmt}"]
    known = read_durations(durations, setting="--durations") if durations else {}
    videos = []
    for path in files:
        if path.stem in known:
            videos.append(LibraryVideo(path.stem, known[path.stem]))
            continue
        try:
            clips = np.load(path, mmap_mode="r").shape[0] if fmt == "npy" else None
        except (OSError, ValueError):
            clips = None  # unreadable: the build skips and lists it
        videos.append(LibraryVideo(path.stem, float(clips or 1) * clip_seconds))
    return videos, fmt


def build_index(model: SearchModel, out: str | Path, videos: Sequence[LibraryVideo], load: Callable[[str], np.ndarray],
                source: dict[str, Any], granularity: Granularity, index_settings: dict[str, Any] | None = None,
                search_settings: dict[str, Any] | None = None, batch_videos: int = 32, commit_every: int = 512,
                overwrite: bool = False, progress: bool = True) -> BuildReport:
    """Embed ``videos`` (features from ``load(vid)``) into the index at ``out``; resumes an earlier build."""
    create = {"embed_dim": model.embed_dim, "settings": granularity.as_dict(), "index": index_settings or {},
              "search": search_settings or {}}
    report = BuildReport()
    with MomentIndex.writer(out, create=create, overwrite=overwrite) as index:
        if index.embed_dim != model.embed_dim:
            raise GroundingError(f"index {out} holds {index.embed_dim}-d entries, {model.path} embeds {model.embed_dim}-d "
                                 "ones; pass --overwrite to rebuild it or choose another --out")
        foreign = sorted(s for s in index.spaces() if not model.answers(s))
        if foreign:
            raise GroundingError(f"index {out} was built by another model ({', '.join(foreign)}); adding {model.path}'s "
                                 "embeddings would mix spaces: pass --overwrite to rebuild it, choose another --out, "
                                 "or upgrade it with tools/upgrade_index.py")
        if index.settings and index.settings != granularity.as_dict():
            raise GroundingError(f"index {out} was built with {index.settings}, not {granularity.as_dict()}; "
                                 "keep its search.* granularity settings or pass --overwrite")
        model_id = index.register_model(model.fingerprint, model.fingerprint, "embedded", str(model.path))
        source_id = index.register_source(source)
        have = set(index.videos())
        todo = [v for v in dict((v.vid, v) for v in videos).values() if v.vid not in have]
        report.already = len(videos) - len(todo)
        if report.already:
            log.info("%s: %d of %d videos are already indexed; embedding the %d left", out, report.already,
                     len(videos), len(todo))
        pending: tuple[list, list, list] = ([], [], [])
        bar = tqdm(total=len(todo), desc="indexing", unit="video", disable=not progress, dynamic_ncols=True)
        for first in range(0, len(todo), batch_videos):
            chunk, feats = [], []
            for video in todo[first:first + batch_videos]:
                try:
                    f = np.asarray(load(video.vid), dtype=np.float32)
                    if f.ndim != 2 or not len(f) or not np.isfinite(f).all():
                        raise GroundingError(f"features of shape {f.shape} or not finite")
                except GroundingError as err:
                    report.skipped[video.vid] = str(err).split(";")[0]
                    continue
                chunk.append(video)
                feats.append(f)
            if chunk:
                for video, (emb, spans) in zip(chunk, model.embed_videos(feats, [v.duration for v in chunk], granularity),
                                               strict=True):
                    pending[0].append((video.vid, float(video.duration), source_id))
                    pending[1].append(emb)
                    pending[2].append(spans)
            bar.update(len(todo[first:first + batch_videos]))
            if len(pending[0]) >= commit_every:
                report.added += _flush(index, pending, model_id)
        report.added += _flush(index, pending, model_id)
        bar.close()
        for vid, why in report.skipped.items():
            log.warning("skipped %s: %s", vid, why)
        cached = index.manifest.get("faiss") or {}
        if report.added or cached.get("kind") != index.wanted_kind() or index.removed:
            report.kind = index.finalize()
        else:  # nothing new: the written structure is still right
            report.kind = cached["kind"]
        report.entries = index.num_entries
    return report


def _flush(index: MomentIndex, pending: tuple[list, list, list], model_id: int) -> int:
    count = len(pending[0])
    if count:
        index.add(pending[0], pending[1], pending[2], model_id)
        index.commit()
        for part in pending:
            part.clear()
    return count


def remove_videos(out: str | Path, vids: Sequence[str]) -> tuple[int, list[str]]:
    """Take ``vids`` out of the index; returns (videos left, vids that were not there)."""
    with MomentIndex.writer(out) as index:
        missing = index.remove_videos(vids)
        index.commit(write_faiss=True)
        return len(index.videos()), missing
