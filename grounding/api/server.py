"""``tools/serve.py``: a small local web app over a ``Grounder`` (FastAPI + one static page).

    GET  /                 the page: upload or pick a video, type queries, see timelines and thumbnails
    POST /api/upload       the raw video bytes as the body (header ``X-Filename``) -> ``{"video_id", ...}``
    POST /api/ground       JSON ``{"video_id" | "video", "queries": [...] | "query", "top_k"}`` ->
                           ``{"videos": [{"vid", "duration", "results": [prediction per query], ...}], "seconds"}``
    GET  /api/info         the model's name and the videos offered for picking

This module is the HTTP layer: routes, the access checks of ``access.py`` on every request (Host
header, and the token on ``/api/`` and video files), errors as ``{"error": message}`` with a 4xx/5xx
status. The logic (uploads, quota, sandboxed decoding, concurrency) is ``service.GroundingService``.
"""

import socket
import threading
import time
from pathlib import Path
from typing import Any

from grounding.api.access import host_allowed, token_matches
from grounding.api.service import GroundingService, RequestError, ServerConfig
from grounding.errors import GroundingError

__all__ = ["GroundingService", "RequestError", "ServerConfig", "check_port_free", "create_app", "run_server",
           "start_in_thread"]

STATIC = Path(__file__).with_name("static")
_GUARDED = ("/api/", "/media/", "/library/")


def check_port_free(host: str, port: int) -> None:
    """One clear error, before the model loads, when another program listens on ``host:port``."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            raise GroundingError(f"cannot listen on {host}:{port}: {err.strerror} (is another server running there?); "
                                 "stop it or pass another --port") from err


class AccessGuard:
    """ASGI middleware: the Host check on every request and the token on ``_GUARDED`` paths, answered before
    the app (and before a byte of an upload's body is read)."""

    def __init__(self, app: Any, config: ServerConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                from fastapi.responses import JSONResponse

                await JSONResponse({"error": refusal[1]}, status_code=refusal[0])(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: dict[str, Any]) -> tuple[int, str] | None:
        from urllib.parse import parse_qs

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host")
        if not host_allowed(host, self.config.allowed_hosts):
            return 400, (f"this server does not answer to the host name '{host}'; open it as http://127.0.0.1 "
                         "(or start it with --allow-host NAME)")
        if scope["path"].startswith(_GUARDED):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])[0]
            if not token_matches(self.config.token, headers.get("authorization"), query):
                return 401, "this server needs its token: send 'Authorization: Bearer TOKEN' (the page: open /?token=TOKEN)"
        return None


def create_app(grounder: Any, config: ServerConfig | None = None):
    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles

    config = config or ServerConfig()
    service = GroundingService(grounder, config)
    app = FastAPI(title="grounding", docs_url=None, redoc_url=None, on_shutdown=[service.encoded.shutdown])
    app.state.service = service
    app.add_middleware(AccessGuard, config=config)
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
        length = request.headers.get("content-length")  # absent for a chunked body: counted as it arrives
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
