"""The web app's state and logic (``GroundingService``), apart from the HTTP layer so that it is easy to test.

- Uploads: refused at once when ``Content-Length`` is over the limit (the body is never read), cut at
  the limit when it arrives in chunks; at most ``max_active_uploads`` arrive at a time; each is checked
  (opened, duration, thumbnails) in a sandboxed decoder (``sandbox.SandboxedReader``) and kept in the
  ``UploadStore`` (byte quota, least recently used evicted).
- Grounding: encoded videos come from an ``EncodedCache`` (one lock per video, a bounded pool of
  encoding threads); decoding always goes through a sandboxed decoder; only the model call itself
  (milliseconds) is serialised, so grounding a cached video never waits for another video's encoding.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grounding.api.access import LOCAL_NAMES
from grounding.api.sandbox import SandboxedReader
from grounding.api.upload_store import UploadStore
from grounding.api.video_cache import Busy, EncodedCache
from grounding.errors import GroundingError
from grounding.extract.inputs import VIDEO_EXTENSIONS
from grounding.extract.video_io import VideoReadError


@dataclass
class ServerConfig:
    cache_dir: str | Path = "work_dirs/serve_cache"
    videos_dir: str | Path | None = None
    max_upload_bytes: int = 200 * 2**20
    max_cache_bytes: int = 2 * 2**30  # all uploads together; least recently used evicted past it
    max_video_seconds: float = 3 * 3600.0
    max_queries: int = 50
    encoded_cache: int = 4  # encoded videos kept in memory
    encode_workers: int = 1  # videos encoded at once
    max_waiting_encodes: int = 4  # encodings queued or running before new ones get 503
    max_active_uploads: int = 2  # uploads arriving at once before new ones get 503
    decode_timeout: float = 60.0  # seconds the sandboxed decoder may take per request
    decode_memory_mb: int = 4096  # its address-space cap
    token: str | None = None
    allowed_hosts: tuple[str, ...] | None = LOCAL_NAMES  # Host names served (any port); None: any

    def __post_init__(self) -> None:
        if self.max_upload_bytes > self.max_cache_bytes:
            raise GroundingError(f"--max-upload-mb ({self.max_upload_bytes / 2**20:g}) is larger than --max-cache-mb "
                                 f"({self.max_cache_bytes / 2**20:g}); raise the cache or lower the upload limit")


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Prepared:
    """What grounding a video needs besides the queries: its features and the page's thumbnails."""

    video: Any
    thumbnails: list[dict[str, Any]]


class GroundingService:
    def __init__(self, grounder: Any, config: ServerConfig) -> None:
        self.grounder = grounder
        self.config = config
        self.cache = Path(config.cache_dir)
        self.videos_dir = Path(config.videos_dir) if config.videos_dir else None
        if self.videos_dir is not None and not self.videos_dir.is_dir():
            raise GroundingError(f"--videos {self.videos_dir} is not a folder of videos")
        self.uploads = UploadStore(self.cache / "uploads", config.max_cache_bytes)
        self.encoded = EncodedCache(config.encoded_cache, config.encode_workers, config.max_waiting_encodes)
        self.model_lock = threading.Lock()  # the model call only: milliseconds
        self._active_uploads = 0

    # ------------------------------------------------------------------ videos offered
    def library(self) -> list[str]:
        if self.videos_dir is None:
            return []
        return sorted(p.name for p in self.videos_dir.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())

    def library_path(self, name: str) -> Path:
        if name not in self.library():
            raise RequestError(404, f"no video named '{name}' is offered here")
        return self.videos_dir / name  # type: ignore[operator]

    def upload_path(self, video_id: str) -> Path:
        try:
            return self.uploads.path(video_id)
        except KeyError:
            raise RequestError(404, f"no uploaded video '{video_id}'; upload it again") from None

    # ------------------------------------------------------------------ uploads
    async def save_upload(self, filename: str, length: int | None, chunks) -> dict[str, Any]:
        """Stream an upload into the store (see the module docstring); returns its id and size."""
        suffix = Path(filename or "").suffix.lower()
        if suffix not in VIDEO_EXTENSIONS:
            raise RequestError(415, f"'{filename or 'the upload'}' is not a video file; upload one of "
                                    f"{', '.join(VIDEO_EXTENSIONS)}")
        limit = self.config.max_upload_bytes
        too_big = RequestError(413, f"the upload is over {limit / 2**20:.0f} MB; this server takes up to "
                                    f"{limit / 2**20:.0f} MB (--max-upload-mb)")
        if length is not None and length > limit:
            raise too_big  # before reading a byte of the body
        if self._active_uploads >= self.config.max_active_uploads:
            raise RequestError(503, f"{self._active_uploads} uploads are arriving already; try again in a minute")
        self._active_uploads += 1  # the event loop runs one coroutine step at a time: no lock needed
        part = self.uploads.new_part()
        digest, size = hashlib.sha256(), 0
        try:
            with part.open("wb") as fh:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise too_big  # the rest is never stored; the HTTP server discards it
                    digest.update(chunk)
                    fh.write(chunk)
            if size == 0:
                raise RequestError(400, f"'{filename}' is empty (0 bytes); upload a video file")
            meta = await asyncio.to_thread(self._inspect, part, filename)
            video_id = digest.hexdigest()[:32] + suffix
            self.uploads.commit(part, video_id, meta)
        finally:
            part.unlink(missing_ok=True)
            self._active_uploads -= 1
        return {"video_id": video_id, "bytes": size}

    def _inspect(self, path: Path, shown_name: str) -> dict[str, Any]:
        """Open ``path`` in the sandbox: its duration within the limit, and its thumbnails."""
        with self._sandbox(path, shown_name) as reader:
            thumbnails = self._guarded(reader.thumbnails, reader.info.duration, shown_name=shown_name)
            return {"name": Path(shown_name).stem[:100] or path.name, "duration": reader.info.duration,
                    "thumbnails": thumbnails}

    def _sandbox(self, path: Path, shown_name: str) -> SandboxedReader:
        reader = self._guarded(SandboxedReader, path, self.config.decode_timeout, self.config.decode_memory_mb,
                               shown_name=shown_name)
        if reader.info.duration > self.config.max_video_seconds:
            reader.close()
            raise RequestError(413, f"'{shown_name}' lasts {reader.info.duration / 60:.1f} min; this server takes "
                                    f"videos up to {self.config.max_video_seconds / 60:.0f} min")
        return reader

    @staticmethod
    def _guarded(fn, *args: Any, shown_name: str) -> Any:
        try:
            return fn(*args)
        except VideoReadError as err:
            raise RequestError(415, f"'{shown_name}' is not a readable video ({err.reason})") from err

    # ------------------------------------------------------------------ grounding
    def ground(self, body: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        queries, top_k = self._queries(body)
        if body.get("video_id"):
            video_id = str(body["video_id"])
            path, url = self.upload_path(video_id), f"/media/{video_id}"
            try:
                meta = self.uploads.meta(video_id)
            except KeyError:
                raise RequestError(404, f"no uploaded video '{video_id}'; upload it again") from None
            self.uploads.pin(video_id)
            try:
                prepared = self._prepared(path, meta["name"], meta["thumbnails"])
            finally:
                self.uploads.unpin(video_id)
        elif body.get("video"):
            path, url = self.library_path(str(body["video"])), f"/library/{body['video']}"
            prepared = self._prepared(path, path.stem, None)
        else:
            raise RequestError(400, "give 'video_id' (from /api/upload) or 'video' (a name from /api/info)")
        with self.model_lock:
            results = self.grounder.predict(list(queries), prepared.video, top_k=top_k)
        video = prepared.video
        payload = {"vid": video.vid, "duration": video.duration, "clip_len": video.clip_len, "results": results,
                   "video_src": url, "thumbnails": prepared.thumbnails}
        return {"videos": [payload], "seconds": time.perf_counter() - started}

    def _queries(self, body: dict[str, Any]) -> tuple[list[str], int]:
        queries = body.get("queries", body.get("query"))
        if isinstance(queries, str):
            queries = [line for line in queries.splitlines() if line.strip()] or [queries]
        if not isinstance(queries, list) or not queries:
            raise RequestError(400, "give 'queries' (a list of sentences, or lines of text) or 'query'")
        if len(queries) > self.config.max_queries:
            raise RequestError(400, f"{len(queries)} queries; this server takes up to {self.config.max_queries} at once")
        try:
            top_k = int(body.get("top_k", 5))
        except (TypeError, ValueError):
            raise RequestError(400, "top_k must be a whole number") from None
        if not 1 <= top_k <= 50:
            raise RequestError(400, "top_k must be between 1 and 50")
        return queries, top_k

    def _prepared(self, path: Path, name: str, thumbnails: list[dict[str, Any]] | None) -> Prepared:
        def make() -> Prepared:
            with self._sandbox(path, path.name) as reader:
                video = self.grounder.encode_video(path, vid=name, reader=reader)
                thumbs = thumbnails if thumbnails is not None else self._guarded(
                    reader.thumbnails, video.duration, shown_name=path.name)
            return Prepared(video, thumbs)

        try:
            return self.encoded.get(str(path.resolve()), make)
        except Busy as err:
            raise RequestError(503, str(err)) from None
