"""The HTML report: one self-contained file per run (styles, script, thumbnails and, up to a size limit,
the video itself embedded), drawn in the browser by ``static/render.js``, the same code the web page
uses. Per video: a player, a strip of thumbnails (decoded with decord); per query: the top windows on a
timeline against the duration, the saliency curve and the list of moments; clicking one plays it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import mimetypes
from pathlib import Path
from typing import Any

import numpy as np

from grounding import atomic
from grounding.errors import GroundingError

STATIC = Path(__file__).with_name("static")
EMBED_LIMIT = 40 * 2**20  # videos up to 40 MB are embedded; larger ones are linked by path


def thumbnails(path: str | Path, duration: float, count: int = 12, height: int = 54) -> list[dict[str, Any]]:
    """``count`` evenly spaced frames as small base64 JPEG data URIs with their times in seconds."""
    import torch

    from grounding.extract.video_io import VideoReader

    reader = VideoReader(path)
    times, indices = thumbnail_indices(duration, reader.info.fps, reader.info.num_frames, count)
    frames = reader.read(indices, lambda batch: torch.from_numpy(np.ascontiguousarray(batch)))
    return thumbnail_uris(frames.numpy(), times, height)


def thumbnail_indices(duration: float, fps: float, num_frames: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The times (seconds) of ``count`` evenly spaced thumbnails and their frame indices."""
    times = (np.arange(count) + 0.5) * duration / count
    return times, np.minimum((times * fps).astype(np.int64), num_frames - 1)


def thumbnail_uris(frames: np.ndarray, times: np.ndarray, height: int = 54) -> list[dict[str, Any]]:
    """``(n, H, W, 3)`` uint8 frames as JPEG data URIs ``height`` pixels high (no torch: the web app's
    decoding process calls this too)."""
    from PIL import Image

    out = []
    for t, frame in zip(times, frames, strict=True):
        image = Image.fromarray(np.asarray(frame))
        image = image.resize((max(1, round(image.width * height / image.height)), height))
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="JPEG", quality=75)
        out.append({"t": round(float(t), 2), "src": "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()})
    return out


def video_source(path: str | Path, embed_limit: int = EMBED_LIMIT) -> tuple[str, str | None]:
    """A data URI for the video (self-contained), or a file URI and a note when it is too large."""
    path = Path(path).resolve()
    size = path.stat().st_size
    if size <= embed_limit:
        mime = mimetypes.guess_type(path.name)[0] or "video/mp4"
        return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode(), None
    return path.as_uri(), f"{path.name} ({size / 2**20:.0f} MB) is linked, not embedded; keep it at {path}"


def video_payload(video: Any, results: list[dict[str, Any]], embed_limit: int = EMBED_LIMIT,
                  num_thumbnails: int = 12) -> dict[str, Any]:
    """What ``render.js`` draws for one video (``video`` is an ``EncodedVideo``)."""
    payload: dict[str, Any] = {"vid": video.vid, "duration": video.duration, "clip_len": video.clip_len,
                               "results": results, "thumbnails": [], "video_src": None}
    if video.path:
        payload["thumbnails"] = thumbnails(video.path, video.duration, num_thumbnails)
        payload["video_src"], note = video_source(video.path, embed_limit)
        if note:
            payload["note"] = note
    return payload


def render_html(videos: list[dict[str, Any]], title: str) -> str:
    data = json.dumps(videos).replace("</", "<\\/")  # no "</script>" inside the JSON block
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title>\n<style>{(STATIC / 'style.css').read_text()}</style></head>\n"
        f"<body><h1>{html.escape(title)}</h1><div id=\"results\"></div>\n"
        f"<script>{(STATIC / 'render.js').read_text()}</script>\n"
        f"<script type=\"application/json\" id=\"grounding-data\">{data}</script>\n"
        "<script>renderGrounding(document.getElementById('results'), "
        "JSON.parse(document.getElementById('grounding-data').textContent));</script>\n</body></html>\n"
    )


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` atomically (``grounding.atomic``); an unwritable path is one clear error."""
    try:
        atomic.write_atomic(path, lambda fh: fh.write(text.encode("utf8")))
    except OSError as err:
        raise GroundingError(f"cannot write {path} ({err.strerror}); pass a writable path") from err


def write_report(path: str | Path, videos: list[dict[str, Any]], title: str = "Grounding results") -> Path:
    write_atomic(path, render_html(videos, title))
    return Path(path)
