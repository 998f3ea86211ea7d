"""The web app's HTTP contract: upload, ground, limits, refusals, the cache folder, a port in use."""

import json
import select
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.conftest import REPO


def _post(url, data, headers=None):
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _ground(url, **body):
    return _post(f"{url}/api/ground", json.dumps(body).encode(), {"Content-Type": "application/json"})


@pytest.fixture(scope="module")
def served(grounder, demo, tmp_path_factory):
    from grounding.api.server import ServerConfig, create_app, start_in_thread

    cache = tmp_path_factory.mktemp("serve") / "cache"
    config = ServerConfig(cache_dir=cache, videos_dir=demo[1]["videos"], max_upload_bytes=3 * 2**20,
                          max_video_seconds=60)
    server, url = start_in_thread(create_app(grounder, config))
    yield url, cache
    server.should_exit = True


def test_page_and_info(served):
    url, _ = served
    page = urllib.request.urlopen(url + "/", timeout=10).read().decode()
    assert 'id="ground-form"' in page and "/static/render.js" in page
    info = json.loads(urllib.request.urlopen(url + "/api/info", timeout=10).read())
    assert info["videos"] == [f"demo{i:02d}.mp4" for i in range(6)] and "checkpoint" in info["model"]


def test_upload_then_ground_the_real_clip(served, shared):
    url, cache = served
    status, up = _post(f"{url}/api/upload", (shared / "videos/charades_sample.mp4").read_bytes(),
                       {"X-Filename": "../../evil name.mp4"})
    assert status == 200 and up["video_id"].endswith(".mp4") and "/" not in up["video_id"]
    status, body = _ground(url, video_id=up["video_id"], queries="a person opens the door\nsomeone holds a cup",
                           top_k=2)
    assert status == 200, body
    video = body["videos"][0]
    assert video["duration"] == pytest.approx(30.697, abs=1e-2) and len(video["thumbnails"]) == 12
    assert [r["query"] for r in video["results"]] == ["a person opens the door", "someone holds a cup"]
    assert len(video["results"][0]["pred_relevant_windows"]) == 2
    media = urllib.request.urlopen(url + video["video_src"], timeout=10).read()
    assert media == (shared / "videos/charades_sample.mp4").read_bytes()
    # everything written is inside the cache folder, named by content (the video and what the page shows of it)
    assert sorted(p.name for p in (cache / "uploads").iterdir()) == [up["video_id"], up["video_id"] + ".json"]


def test_pick_a_library_video(served):
    status, body = _ground(served[0], video="demo01.mp4", query="a person opens the door.")
    assert status == 200 and body["videos"][0]["vid"] == "demo01"
    status, body = _ground(served[0], video="../secret.mp4", query="x")
    assert status == 404 and "no video named" in body["error"]


@pytest.mark.parametrize("name, data, status, message", [
    ("notes.txt", b"hello", 415, "is not a video file"),
    ("fake.mp4", b"hello there, not a video", 415, "is not a readable video"),
    ("empty.mp4", b"", 400, "is empty"),
])
def test_bad_uploads_are_refused_and_leave_nothing(served, name, data, status, message):
    url, cache = served
    before = sorted(p.name for p in (cache / "uploads").iterdir())
    got, body = _post(f"{url}/api/upload", data, {"X-Filename": name})
    assert got == status and message in body["error"]
    assert sorted(p.name for p in (cache / "uploads").iterdir()) == before


def _raw_upload(url: str, headers: str, body_chunks=()):
    """POST /api/upload on a bare socket; stops sending as soon as the server answers. Returns (status, error
    message, bytes of body sent)."""
    port = int(url.rsplit(":", 1)[1])
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(f"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Filename: big.mp4\r\n{headers}\r\n"
                     .encode())
        for chunk in body_chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer is there: the server did not wait for the rest
            sock.sendall(chunk)
            sent += len(chunk)
        reply = sock.makefile("rb")
        status = int(reply.readline().split()[1])
        headers = dict(line.lower().split(b":", 1) for line in iter(reply.readline, b"\r\n"))
        length = int(headers[b"content-length"])
        return status, json.loads(reply.read(length))["error"], sent


def test_an_upload_over_the_limit_is_refused_before_its_body_is_read(served):
    url, cache = served
    before = sorted(p.name for p in (cache / "uploads").iterdir())
    status, message, _ = _raw_upload(url, f"Content-Length: {3 * 2**20 + 1}\r\n")  # not one byte of body sent
    assert status == 413 and "this server takes up to 3 MB" in message
    # without a length, the body is counted as it arrives and cut at the limit: the answer comes long before
    # the client has sent 60 MB, and nothing is kept
    piece = b"\0" * 2**16
    chunks = (b"%x\r\n" % len(piece) + piece + b"\r\n" for _ in range(60 * 16))
    status, message, sent = _raw_upload(url, "Transfer-Encoding: chunked\r\n", chunks)
    assert status == 413 and "this server takes up to 3 MB" in message
    assert 3 * 2**20 < sent < 30 * 2**20
    assert sorted(p.name for p in (cache / "uploads").iterdir()) == before


def test_too_long_videos_and_bad_requests(served, tmp_path):
    from grounding.extract.synthetic import make_video

    url, _ = served
    long = make_video(tmp_path / "long.mp4", 61 * 5, fps=5, size=(32, 32))
    status, body = _post(f"{url}/api/upload", long.read_bytes(), {"X-Filename": "long.mp4"})
    assert status == 413 and "lasts 1.0 min; this server takes videos up to 1 min" in body["error"]
    status, body = _ground(url, video="demo00.mp4", queries=[" "])
    assert status == 400 and "query 1 is empty" in body["error"]
    status, body = _ground(url, query="door")
    assert status == 400 and "give 'video_id'" in body["error"]
    status, body = _ground(url, video_id="0" * 32 + ".mp4", query="door")
    assert status == 404


@pytest.mark.slow
def test_a_port_in_use_is_one_clear_error(demo, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, str(REPO / "tools/serve.py"), "--model", demo[1]["run"], "--port",
                               str(port), "--cache", str(tmp_path / "cache")], capture_output=True, text=True,
                              timeout=60, cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: cannot listen on 127.0.0.1:{port}: Address already in use (is another "
                                   "server running there?); stop it or pass another --port")
    assert done.stdout == "" and not (tmp_path / "cache").exists()  # refused before announcing a URL or writing
