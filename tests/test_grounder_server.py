"""The web app: its HTTP contract (upload, ground, limits, refusals, the cache folder, a port in use), its access
checks (Host header, token, bind policy) and its parts (the upload store, the encoded-video cache)."""

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


def _get(url, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_a_foreign_host_name_is_refused(served):
    """DNS rebinding: a page on evil.example whose name resolves to 127.0.0.1 sends Host: evil.example."""
    url, _ = served
    status, body = _get(url + "/api/info", {"Host": "evil.example:80"})
    assert status == 400 and "does not answer to the host name 'evil.example:80'" in json.loads(body)["error"]
    assert _get(url + "/", {"Host": "evil.example"})[0] == 400
    assert _get(url + "/api/info", {"Host": "localhost"})[0] == 200


def test_a_token_guards_every_api_call_and_video_but_not_the_page(grounder, demo, tmp_path):
    from grounding.api.server import ServerConfig, create_app, start_in_thread

    server, url = start_in_thread(create_app(grounder, ServerConfig(cache_dir=tmp_path, videos_dir=demo[1]["videos"],
                                                                    token="s3cret")))
    try:
        assert _get(url + "/")[0] == 200
        for path in ("/api/info", "/library/demo00.mp4"):
            status, body = _get(url + path)
            assert status == 401 and "needs its token" in json.loads(body)["error"]
            assert _get(url + path, {"Authorization": "Bearer wrong"})[0] == 401
            assert _get(url + path, {"Authorization": "Bearer s3cret"})[0] == 200
        assert _get(url + "/library/demo00.mp4?token=s3cret")[0] == 200  # what the page's <video src> carries
        status, body = _post(f"{url}/api/upload", b"x", {"X-Filename": "a.mp4"})
        assert status == 401 and not list((tmp_path / "uploads").iterdir())
    finally:
        server.should_exit = True


def test_the_bind_policy(capsys):
    from grounding.api.access import allowed_hosts_for, host_allowed
    from grounding.errors import GroundingError

    assert host_allowed("127.0.0.1:7860", allowed_hosts_for("127.0.0.1", None))
    assert host_allowed("[::1]:7860", allowed_hosts_for("127.0.0.1", None))
    assert not host_allowed("evil.example", allowed_hosts_for("127.0.0.1", None))
    with pytest.raises(GroundingError, match="--host 0.0.0.0 would let every machine .* set --token"):
        allowed_hosts_for("0.0.0.0", None)
    assert allowed_hosts_for("0.0.0.0", "t") is None and "warning: serving on 0.0.0.0" in capsys.readouterr().err
    assert host_allowed("box.lan", allowed_hosts_for("0.0.0.0", "t", ["box.lan"]))
    assert not host_allowed("other.lan", allowed_hosts_for("192.168.1.5", "t", ["box.lan"]))


def test_serve_refuses_a_network_address_without_a_token_before_loading_the_model(tmp_path, capsys):
    from grounding.cli.serve import main

    with pytest.raises(SystemExit) as stop:
        main(["--model", str(tmp_path / "no_such_run"), "--host", "0.0.0.0", "--cache", str(tmp_path / "cache")])
    assert stop.value.code == 2 and "set --token SECRET" in capsys.readouterr().err  # not "no such run"


def _fill(store, tmp_path, name, size):
    part = store.new_part()
    part.write_bytes(b"v" * size)
    return store.commit(part, name, {"name": name})


def test_the_upload_store_keeps_a_byte_quota_evicting_the_least_recently_used(tmp_path):
    import os

    from grounding.api.upload_store import UploadStore

    store = UploadStore(tmp_path, quota_bytes=1000)
    ids = [f"{i:032x}.mp4" for i in range(4)]
    for i, name in enumerate(ids[:3]):
        assert _fill(store, tmp_path, name, 250) == []
        os.utime(tmp_path / name, ns=(i * 10**9, i * 10**9))  # a clear order of use
    store.path(ids[0])  # used: now the most recent
    assert _fill(store, tmp_path, ids[3], 250) == [ids[1]]  # 4 x 250 bytes + metadata > 1000: the oldest unused goes
    assert store.ids() == [ids[2], ids[0], ids[3]] and store.used_bytes() <= 1000
    assert not (tmp_path / f"{ids[1]}.json").exists()
    store.pin(ids[2])
    assert _fill(store, tmp_path, f"{9:032x}.mp4", 250) == [ids[0]]  # the pinned one is skipped
    with pytest.raises(KeyError):
        store.path(ids[1])


def test_the_upload_store_removes_leftovers_of_a_crash_at_start(tmp_path):
    from grounding.api.upload_store import UploadStore

    store = UploadStore(tmp_path, quota_bytes=10**6)
    kept = f"{1:032x}.mp4"
    _fill(store, tmp_path, kept, 10)
    (tmp_path / f".{2:032x}.part").write_bytes(b"half an upload")  # killed mid-upload
    (tmp_path / f"{3:032x}.mp4").write_bytes(b"renamed, no metadata")  # cannot happen in order, but is harmless
    (tmp_path / f"{4:032x}.mp4.json").write_text("{}")  # metadata without its video
    (tmp_path / f".{kept}.json.123.abcd.tmp").write_text("{")  # an atomic write cut short
    again = UploadStore(tmp_path, quota_bytes=10**6)
    assert sorted(again.removed_at_start) == sorted([f".{2:032x}.part", f"{3:032x}.mp4", f"{4:032x}.mp4.json",
                                                     f".{kept}.json.123.abcd.tmp"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [kept, kept + ".json"] and again.meta(kept) == {"name": kept}


def test_the_encoded_cache_encodes_once_per_video_and_never_blocks_a_cached_one():
    import threading
    import time

    from grounding.api.video_cache import Busy, EncodedCache

    cache = EncodedCache(capacity=2, workers=1, max_waiting=1)
    cache.get("cached", lambda: "ready")
    release, calls = threading.Event(), []

    def slow():
        calls.append(1)
        release.wait(10)
        return "long"

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("long", slow))) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    started = time.perf_counter()
    assert cache.get("cached", lambda: "never") == "ready" and time.perf_counter() - started < 0.05
    with pytest.raises(Busy):  # the one encoding slot is taken and the queue is full
        cache.get("another", lambda: "x")
    release.set()
    for thread in threads:
        thread.join(10)
    assert results == ["long"] * 3 and calls == [1]  # three requests, one encoding
    assert cache.keys() == ["cached", "long"] and not cache._locks
    cache.shutdown()
