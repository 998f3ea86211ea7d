"""The web app's uploads on disk: a byte quota with least-recently-used eviction, and nothing left over.

Layout, all under ``ROOT`` (``--cache``/uploads):

    <32 hex>.<ext>          an accepted video, named by its content hash (never by the client's name)
    <32 hex>.<ext>.json     what the page shows of it: the client's file stem, duration, thumbnails
    .<32 hex>.part          an upload still arriving

A video is committed by writing its ``.json`` (atomically) and then renaming its ``.part`` over the
video name; at start every ``.part`` (a process killed mid-upload), every video without its ``.json``
and every ``.json`` without its video are removed, so a crash at any point leaves no leftover. Use
refreshes a video's modification time, which is the recency that eviction reads (it survives a
restart). One server per cache folder. After each commit the least recently used videos are removed until the folder holds at most
``quota_bytes``; the video just added and videos in use (``pinned``) are never removed.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from pathlib import Path
from typing import Any

from grounding import atomic
from grounding.errors import GroundingError

VIDEO_ID = re.compile(r"^[0-9a-f]{32}\.(mp4|mkv|webm|avi|mov)$")


class UploadStore:
    def __init__(self, root: str | Path, quota_bytes: int) -> None:
        if quota_bytes <= 0:
            raise GroundingError(f"the upload quota must be positive, got {quota_bytes} bytes; pass --max-cache-mb > 0")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.quota = quota_bytes
        self._lock = threading.Lock()
        self._pins: dict[str, int] = {}
        self.removed_at_start = self._remove_leftovers()

    # ------------------------------------------------------------------ files
    def new_part(self) -> Path:
        """A fresh name for an upload still arriving; delete it (or ``commit`` it) when done."""
        return self.root / f".{uuid.uuid4().hex}.part"

    def commit(self, part: Path, video_id: str, meta: dict[str, Any]) -> list[str]:
        """Move a checked ``part`` to ``video_id`` with its ``meta``; returns the ids evicted to stay in quota."""
        if not VIDEO_ID.match(video_id):
            raise ValueError(f"not a video id: {video_id!r}")
        with self._lock:
            atomic.write_atomic(self._meta_path(video_id), lambda fh: fh.write(json.dumps(meta).encode()))
            part.replace(self.root / video_id)  # an upload of the same content replaces it: same bytes
            return self._evict(keep=video_id)

    def path(self, video_id: str) -> Path:
        """The file of an accepted upload, marked as just used; ``KeyError`` when there is none."""
        with self._lock:
            path = self.root / video_id
            if not VIDEO_ID.match(video_id) or not path.is_file():
                raise KeyError(video_id)
            os.utime(path)
            return path

    def meta(self, video_id: str) -> dict[str, Any]:
        """What was stored with the upload (``KeyError`` when it is gone)."""
        try:
            return json.loads(self._meta_path(video_id).read_text())
        except (OSError, ValueError):
            raise KeyError(video_id) from None

    def pin(self, video_id: str) -> None:
        """Keep ``video_id`` through eviction until ``unpin`` (it is being encoded or sent)."""
        with self._lock:
            self._pins[video_id] = self._pins.get(video_id, 0) + 1

    def unpin(self, video_id: str) -> None:
        with self._lock:
            self._pins[video_id] -= 1
            if not self._pins[video_id]:
                del self._pins[video_id]

    def ids(self) -> list[str]:
        """Accepted uploads, least recently used first."""
        return [p.name for p in self._videos()]

    def used_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.iterdir() if p.is_file())

    # ------------------------------------------------------------------ inside
    def _meta_path(self, video_id: str) -> Path:
        return self.root / f"{video_id}.json"

    def _videos(self) -> list[Path]:
        videos = [p for p in self.root.iterdir() if VIDEO_ID.match(p.name)]
        return sorted(videos, key=lambda p: p.stat().st_mtime_ns)

    def _evict(self, keep: str) -> list[str]:
        evicted = []
        videos = self._videos()
        used = sum(p.stat().st_size + self._meta_path(p.name).stat().st_size for p in videos)
        for video in videos:
            if used <= self.quota:
                break
            if video.name == keep or video.name in self._pins:
                continue
            size = video.stat().st_size + self._meta_path(video.name).stat().st_size
            video.unlink()
            self._meta_path(video.name).unlink(missing_ok=True)
            used -= size
            evicted.append(video.name)
        return evicted

    def _remove_leftovers(self) -> list[str]:
        removed = []
        for path in self.root.iterdir():
            name = path.name
            orphan_meta = name.endswith(".json") and not (self.root / name[: -len(".json")]).is_file()
            bare_video = VIDEO_ID.match(name) and not self._meta_path(name).is_file()
            staged = name.startswith(".")  # our .part files and grounding.atomic's temporary ones
            if path.is_file() and (staged or orphan_meta or bare_video):
                path.unlink()
                removed.append(name)
        return removed
