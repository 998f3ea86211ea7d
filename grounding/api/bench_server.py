"""The web app under load and faults (``tools/bench_server.py``; ``tests/test_server_load.py`` runs the
same steps, smaller). Loopback only; every step is bounded in count and time.

1. **Load**: ``clients`` threads each ground cached videos ``requests`` times while one client uploads a
   long video and grounds it (its encoding runs the whole time): errors, p50/p95 latency of the
   cached requests, how many finished while the long one was encoding, the server's memory.
2. **Corrupt upload**: a file with a video's name and garbage inside is refused; the server still answers.
3. **Killed mid-upload**: the server process is killed (SIGKILL) while an upload arrives, then
   restarted on the same cache: the ``.part`` is gone, the earlier upload is still there and grounds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from grounding.errors import GroundingError
from grounding.timing import percentile


def call(url: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 120.0) -> tuple[int, dict[str, Any]]:
    """One request; returns (status, JSON body) for answers and errors alike."""
    request = urllib.request.Request(url + path, data=data, headers=headers or {}, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def ground(url: str, timeout: float = 120.0, **body: Any) -> tuple[int, dict[str, Any]]:
    return call(url, "/api/ground", json.dumps(body).encode(), {"Content-Type": "application/json"}, timeout)


def upload(url: str, path: Path, name: str | None = None) -> tuple[int, dict[str, Any]]:
    return call(url, "/api/upload", path.read_bytes(), {"X-Filename": name or path.name})


def run_load(url: str, library: list[str], long_video: Path, clients: int = 8, requests: int = 10,
             time_limit: float = 300.0) -> dict[str, Any]:
    """Step 1 of the module docstring; ``library`` names videos offered by the server (encoded first)."""
    for name in library:  # encode them once: the clients then ground cached videos only
        status, body = ground(url, video=name, query="warm up")
        if status != 200:
            raise GroundingError(f"warming up {name} failed: {status} {body}")
    long_times: dict[str, float] = {}

    def long_job() -> None:
        long_times["start"] = time.perf_counter()
        status, up = upload(url, long_video)
        status, body = ground(url, time_limit, video_id=up.get("video_id"), query="a person opens the door") \
            if status == 200 else (status, up)
        long_times["end"], long_times["status"] = time.perf_counter(), status
        long_times["seconds"] = long_times["end"] - long_times["start"]

    latencies: list[tuple[float, float]] = []  # (end time, seconds)
    errors: list[str] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        for i in range(requests):
            started = time.perf_counter()
            status, body = ground(url, video=library[(index + i) % len(library)], query=f"query {index} {i}", top_k=3)
            with lock:
                if status == 200 and body["videos"][0]["results"][0]["pred_relevant_windows"]:
                    latencies.append((time.perf_counter(), time.perf_counter() - started))
                else:
                    errors.append(f"{status}: {body.get('error', body)}")

    long = threading.Thread(target=long_job)
    long.start()
    time.sleep(0.5)  # the upload is in and the encoding under way before the clients start
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + time_limit
    for thread in [*threads, long]:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in [*threads, long]):
        raise GroundingError(f"the load did not finish within {time_limit:g} s")
    seconds = [s for _, s in latencies]
    during = sum(1 for end, _ in latencies if long_times["start"] < end < long_times["end"])
    return {"clients": clients, "requests": clients * requests, "errors": len(errors), "first_errors": errors[:3],
            "p50_ms": round(1000 * percentile(seconds, 0.5), 1) if seconds else None,
            "p95_ms": round(1000 * percentile(seconds, 0.95), 1) if seconds else None,
            "max_ms": round(1000 * max(seconds), 1) if seconds else None,
            "long_upload_and_encode_s": round(long_times["seconds"], 2), "long_status": long_times["status"],
            "finished_while_encoding": during}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_SERVE = "import sys; from grounding.cli.serve import main; sys.exit(main(sys.argv[1:]))"


class ServerProcess:
    """``grounding.cli.serve`` as a child process on a free loopback port (so it can be killed and measured)."""

    def __init__(self, model: str | Path, cache: Path, videos: str | Path | None = None, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = ["--model", str(model), "--port", str(self.port), "--cache", str(cache), "--device", "cpu", *extra]
        if videos:
            args += ["--videos", str(videos)]
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen([sys.executable, "-c", _SERVE, *args], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode()[-500:]  # type: ignore[union-attr]
                raise GroundingError(f"the server exited with status {self.process.returncode}: {err}")
            try:
                if call(self.url, "/api/info", timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise GroundingError("the server did not answer within 120 s")
            time.sleep(0.2)

    def memory_mb(self) -> dict[str, float]:
        """Resident set now and its peak (``VmHWM``), in MB (Linux)."""
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines())
        return {key: round(int(fields[name].split()[0]) / 1024, 1) for key, name in (("rss", "VmRSS"), ("peak", "VmHWM"))}

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        if self.process.stderr is not None:
            self.process.stderr.close()


def kill_mid_upload(server: ServerProcess, cache: Path, size: int = 4 * 2**20, timeout: float = 30.0) -> Path:
    """Send half of a ``size``-byte upload, wait until its ``.part`` is on disk, SIGKILL the server; returns the part."""
    uploads = cache / "uploads"
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(f"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filename: cut.mp4\r\nContent-Length: {size}"
                     "\r\n\r\n".encode() + b"\0" * (size // 2))
        deadline = time.monotonic() + timeout
        while not [p for p in uploads.glob(".*.part") if p.stat().st_size > 0]:
            if time.monotonic() > deadline:
                raise GroundingError("the upload never reached the disk")
            time.sleep(0.05)
        server.kill()
    return next(uploads.glob(".*.part"))


def run(clients: int = 8, requests: int = 10, long_seconds: int = 600) -> dict[str, Any]:
    """All three steps on the demo model (``grounding.api.demo``), the server in its own process."""
    from grounding.api.demo import build_demo
    from grounding.extract.synthetic import make_video

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        demo = build_demo(root / "demo", epochs=1)
        long_video = make_video(root / "long.mp4", 10 * long_seconds, fps=10, size=(64, 48))
        cache = root / "cache"
        server = ServerProcess(demo["run"], cache, demo["videos"], "--max-upload-mb", "64")
        try:
            library = sorted(p.name for p in Path(demo["videos"]).glob("*.mp4"))
            idle = server.memory_mb()
            out: dict[str, Any] = {"long_video_s": long_seconds, **run_load(server.url, library, long_video, clients,
                                                                           requests)}
            out["server_rss_mb_idle"], out["server_rss_mb_after"] = idle["rss"], server.memory_mb()["rss"]
            out["server_peak_rss_mb"] = server.memory_mb()["peak"]
            corrupt = root / "corrupt.mp4"
            corrupt.write_bytes(b"\0\0\0\x18ftypmp42" + os.urandom(200_000))
            status, body = upload(server.url, corrupt)
            out["corrupt_upload_status"] = status
            out["alive_after_corrupt"] = call(server.url, "/api/info")[0] == 200
            kept = set(p.name for p in (cache / "uploads").iterdir())
            part = kill_mid_upload(server, cache)
            started = time.perf_counter()
            server = ServerProcess(demo["run"], cache, demo["videos"], "--max-upload-mb", "64")
            out["restart_s"] = round(time.perf_counter() - started, 2)
            out["part_left_after_restart"] = part.exists()
            out["cache_intact_after_restart"] = set(p.name for p in (cache / "uploads").iterdir()) == kept
        finally:
            server.kill()
    return out
