"""``tools/serve.py``: a small local web app over a ``Grounder`` (FastAPI + one static page).

    GET  /                 the page: upload or pick a video, type queries, see timelines and thumbnails
    POST /api/upload       the raw video bytes as the body (header ``X-Filename``) -> ``{"video_id", ...}``
    POST /api/ground       JSON ``{"video_id" | "video", "queries": [...] | "query", "top_k"}`` ->
                           ``{"videos": [{"vid", "duration", "results": [prediction per query], ...}], "seconds"}``
    GET  /api/info         the model's name and the videos offered for picking

Safety: it binds 127.0.0.1 unless told otherwise; an upload is streamed straight into the cache folder
(never a system temp file), counted as it arrives and cut off past ``max_upload_bytes``; a file that
decord cannot open as a video, or that lasts longer than ``max_video_seconds``, is deleted and refused
with a message; uploads are named by their content hash, never by the client's file name, so nothing
is written outside ``cache_dir``. Errors are ``{"error": message}`` with a 4xx status.
"""


import hashlib
import re
import socket
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grounding.errors import GroundingError
from grounding.extract.inputs import VIDEO_EXTENSIONS

STATIC = Path(__file__).with_name("static")
_VIDEO_ID = re.compile(r"^[0-9a-f]{32}\.(mp4|mkv|webm|avi|mov)$")


@dataclass
class ServerConfig:
    cache_dir: str | Path = "work_dirs/serve_cache"
    videos_dir: str | Path | None = None
    max_upload_bytes: int = 200 * 2**20
    max_video_seconds: float = 3 * 3600.0
    max_queries: int = 50
    encoded_cache: int = 4  # encoded videos kept in memory


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _drain(chunks, budget: int) -> None:
    """Discard up to ``budget`` more bytes of a refused upload; a client still sending would otherwise see a
    broken connection instead of the 413 message."""
    async for chunk in chunks:
        budget -= len(chunk)
        if budget < 0:
            return


def check_port_free(host: str, port: int) -> None:
    """One clear error, before the model loads, when another program listens on ``host:port``."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            raise GroundingError(f"cannot listen on {host}:{port}: {err.strerror} (is another server running there?); "
                                 "stop it or pass another --port") from err


class GroundingService:
    """The app's state and logic, kept apart from the HTTP layer so that it is easy to test."""

    def __init__(self, grounder: Any, config: ServerConfig) -> None:
        self.grounder = grounder
        self.config = config
        self.cache = Path(config.cache_dir)
        (self.cache / "uploads").mkdir(parents=True, exist_ok=True)
        self.videos_dir = Path(config.videos_dir) if config.videos_dir else None
        if self.videos_dir is not None and not self.videos_dir.is_dir():
            raise GroundingError(f"--videos {self.videos_dir} is not a folder of videos")
        self.lock = threading.Lock()  # one model call at a time
        self.encoded: OrderedDict[str, Any] = OrderedDict()
        self.names: dict[str, str] = {}  # upload id -> the client's file stem, shown on the page only

    def library(self) -> list[str]:
        if self.videos_dir is None:
            return []
        return sorted(p.name for p in self.videos_dir.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())

    def library_path(self, name: str) -> Path:
        if name not in self.library():
            raise RequestError(404, f"no video named '{name}' is offered here")
        return self.videos_dir / name  # type: ignore[operator]

    def upload_path(self, video_id: str) -> Path:
        path = self.cache / "uploads" / video_id
        if not _VIDEO_ID.match(video_id) or not path.is_file():
            raise RequestError(404, f"no uploaded video '{video_id}'; upload it again")
        return path

    async def save_upload(self, filename: str, length: int | None, chunks) -> dict[str, Any]:
        """Stream an upload into the cache (see the module docstring); returns its id and duration."""
        suffix = Path(filename or "").suffix.lower()
        if suffix not in VIDEO_EXTENSIONS:
            raise RequestError(415, f"'{filename or 'the upload'}' is not a video file; upload one of "
                                    f"{', '.join(VIDEO_EXTENSIONS)}")
        limit = self.config.max_upload_bytes
        too_big = RequestError(413, f"the upload is over {limit / 2**20:.0f} MB; this server takes up to "
                                    f"{limit / 2**20:.0f} MB (--max-upload-mb)")
        tmp = self.cache / "uploads" / f".{uuid.uuid4().hex}.part"
        digest, size = hashlib.sha256(), 0
        try:
            if length is not None and length > limit:
                await _drain(chunks, 2 * limit)
                raise too_big
            with tmp.open("wb") as fh:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        fh.close()
                        tmp.unlink(missing_ok=True)
                        await _drain(chunks, 2 * limit)  # read (not keep) the rest, so the client gets the answer
                        raise too_big
                    digest.update(chunk)
                    fh.write(chunk)
            if size == 0:
                raise RequestError(400, f"'{filename}' is empty (0 bytes); upload a video file")
            self._check_video(tmp, filename)
            video_id = digest.hexdigest()[:32] + suffix
            tmp.replace(self.cache / "uploads" / video_id)
            self.names[video_id] = Path(filename).stem[:100] or video_id
        finally:
            tmp.unlink(missing_ok=True)
        return {"video_id": video_id, "bytes": size}

    def _check_video(self, path: Path, shown_name: str) -> None:
        from grounding.extract.video_io import VideoReader, VideoReadError

        try:
            info = VideoReader(path).info
        except VideoReadError as err:
            raise RequestError(415, f"'{shown_name}' is not a readable video ({err.reason})") from err
        if info.duration > self.config.max_video_seconds:
            raise RequestError(413, f"'{shown_name}' lasts {info.duration / 60:.1f} min; this server takes videos up "
                                    f"to {self.config.max_video_seconds / 60:.0f} min")

    def ground(self, body: dict[str, Any]) -> dict[str, Any]:
        from grounding.api.report import thumbnails

        started = time.perf_counter()
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
        if body.get("video_id"):
            path, url = self.upload_path(str(body["video_id"])), f"/media/{body['video_id']}"
            name = self.names.get(str(body["video_id"]), path.stem)
        elif body.get("video"):
            path, url = self.library_path(str(body["video"])), f"/library/{body['video']}"
            name = path.stem
        else:
            raise RequestError(400, "give 'video_id' (from /api/upload) or 'video' (a name from /api/info)")
        with self.lock:
            video = self._encoded(path, name)
            results = self.grounder.predict(list(queries), video, top_k=top_k)
        payload = {"vid": video.vid, "duration": video.duration, "clip_len": video.clip_len, "results": results,
                   "video_src": url, "thumbnails": thumbnails(path, video.duration)}
        return {"videos": [payload], "seconds": time.perf_counter() - started}

    def _encoded(self, path: Path, name: str) -> Any:
        key = str(path.resolve())
        if key not in self.encoded:
            self._check_video(path, path.name)
            self.encoded[key] = self.grounder.encode_video(path, vid=name)
            while len(self.encoded) > self.config.encoded_cache:
                self.encoded.popitem(last=False)
        self.encoded.move_to_end(key)
        return self.encoded[key]


def create_app(grounder: Any, config: ServerConfig | None = None):
    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles

    service = GroundingService(grounder, config or ServerConfig())
    app = FastAPI(title="grounding", docs_url=None, redoc_url=None)
    app.state.service = service
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(RequestError)
    async def request_error(_: Request, err: RequestError):
        return JSONResponse({"error": str(err)}, status_code=err.status)

    @app.exception_handler(GroundingError)
    async def grounding_error(_: Request, err: GroundingError):
        return JSONResponse({"error": str(err)}, status_code=400)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return (STATIC / "index.html").read_text()

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {"model": service.grounder.name, "videos": service.library(),
                "max_upload_mb": service.config.max_upload_bytes / 2**20,
                "max_video_minutes": service.config.max_video_seconds / 60}

    @app.post("/api/upload")
    async def upload(request: Request) -> dict[str, Any]:
        length = request.headers.get("content-length")
        return await service.save_upload(request.headers.get("x-filename", ""), int(length) if length else None,
                                         request.stream())

    @app.post("/api/ground")
    def ground(body: dict[str, Any]) -> dict[str, Any]:
        return service.ground(body)

    @app.get("/media/{video_id}")
    def media(video_id: str):
        return FileResponse(service.upload_path(video_id))

    @app.get("/library/{name}")
    def library(name: str):
        return FileResponse(service.library_path(name))

    return app


def run_server(app: Any, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning")


def start_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, timeout: float = 20.0):
    """Serve ``app`` from a background thread (tests, notebooks); returns ``(server, url)``.
    ``port=0`` takes a free port. Stop with ``server.should_exit = True``."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise GroundingError(f"the server did not start on {host}:{port}")
        time.sleep(0.05)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://{host}:{bound}"
