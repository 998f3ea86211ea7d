"""The on-disk pieces of a moment index: immutable segments, the manifest, the writer lock.

    INDEX_DIR/
      index.json                 the manifest (replaced atomically: the index is whatever it names)
      segments/seg-000001/       one immutable batch of entries, written to a temporary name then renamed
        ids.npy (n,) int64  emb.npy (n, E) float32  video.npy (n,) int32  spans.npy (n, 2) float32
        model.npy (n,) int16  videos.json [[vid, duration, source], ...]
      removed-000007.npy         ids of entries taken out (removed videos, superseded by a backfill)
      faiss-000007.index         the search structure covering the segments the manifest says
      .lock                      held (flock) by the one process writing

Why segments: a build that dies after N committed segments leaves a manifest naming exactly those N,
so a reader always sees the last good index and a rerun embeds only the videos that are not in it.
Nothing is ever rewritten in place; files a new manifest no longer names are deleted after it is in.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grounding.atomic import write_atomic, write_folder_atomic
from grounding.errors import GroundingError

FORMAT = "grounding-moment-index"
VERSION = 1
MANIFEST = "index.json"


def write_json_atomic(obj: Any, path: Path) -> None:
    """A reader sees the old or the new file, never half (``grounding.atomic.write_atomic``)."""
    write_atomic(path, lambda fh: json.dump(obj, fh, indent=1), binary=False)


def save_npy_atomic(array: np.ndarray, path: Path) -> None:
    write_atomic(path, lambda fh: np.save(fh, array))


@dataclass
class Segment:
    """One immutable batch of entries (the arrays are memory-mapped where they are big)."""

    name: str
    ids: np.ndarray  # (n,) int64, increasing
    emb: np.ndarray  # (n, E) float32
    video: np.ndarray  # (n,) int32: row of ``videos``
    spans: np.ndarray  # (n, 2) float32 seconds
    model: np.ndarray  # (n,) int16: id in the manifest's model table
    videos: list[tuple[str, float, int]]  # (vid, duration, source)

    @classmethod
    def read(cls, folder: Path) -> Segment:
        try:
            arrays = {k: np.load(folder / f"{k}.npy", mmap_mode="r" if k == "emb" else None)
                      for k in ("ids", "emb", "video", "spans", "model")}
            videos = [tuple(v) for v in json.loads((folder / "videos.json").read_text())]
        except (OSError, ValueError) as err:
            raise GroundingError(f"index segment {folder} is damaged ({err}); rebuild the index with "
                                 "tools/build_index.py --overwrite") from err
        return cls(folder.name, videos=videos, **arrays)  # type: ignore[arg-type]

    @staticmethod
    def write(root: Path, name: str, ids: np.ndarray, emb: np.ndarray, video: np.ndarray, spans: np.ndarray,
              model: np.ndarray, videos: list[tuple[str, float, int]]) -> None:
        """Write every file into a temporary folder, fsync, then rename it into place
        (``grounding.atomic.write_folder_atomic``)."""

        def fill(tmp: Path) -> None:
            for key, array, dtype in (("ids", ids, np.int64), ("emb", emb, np.float32), ("video", video, np.int32),
                                      ("spans", spans, np.float32), ("model", model, np.int16)):
                np.save(tmp / f"{key}.npy", np.ascontiguousarray(array, dtype=dtype))
            (tmp / "videos.json").write_text(json.dumps([list(v) for v in videos]))

        write_folder_atomic(root / name, fill)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of ``folder``, or one clear error when the folder is not an index."""
    path = folder / MANIFEST
    if not folder.is_dir():
        raise GroundingError(f"{folder} does not exist; build an index first (tools/build_index.py --out {folder})")
    if not path.is_file():
        raise GroundingError(f"{folder} is not a moment index (it has no {MANIFEST}); pass the --out folder of "
                             "tools/build_index.py")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as err:
        raise GroundingError(f"{path} is not valid JSON ({err}); the index is damaged, rebuild it") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise GroundingError(f"{path} is not a moment index manifest (format is not '{FORMAT}'); pass the --out "
                             "folder of tools/build_index.py")
    if int(manifest.get("version", 0)) > VERSION:
        raise GroundingError(f"{folder} was written by a newer grounding (index version {manifest['version']}); "
                             "update grounding to search it")
    return manifest


class WriterLock:
    """An exclusive ``flock`` on ``INDEX_DIR/.lock``: a second writer is refused at once, and a writer
    that dies releases it with its process (no stale lock to clean by hand)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".lock"
        self.handle: Any = None

    def __enter__(self) -> WriterLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise GroundingError(f"index {self.path.parent} is being written by {holder}; wait for it to finish "
                                 "(two writers on one index are refused)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None
