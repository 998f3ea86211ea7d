"""The child side of ``grounding.api.sandbox``: ``python -m grounding.api.decode_child FILE MEMORY_MB``.

It opens one untrusted video with decord and answers the parent's requests over stdin/stdout, so that
a file crafted to crash, hang or exhaust ffmpeg takes down this process only. It imports decord, numpy
and PIL, never torch, so that it starts in a fraction of a second.

Messages both ways: a 4-byte little-endian length, a JSON header, then ``header["bytes"]`` raw bytes
(frames as ``uint8`` ``(n, H, W, 3)``). Requests: ``{"op": "read", "indices": [...]}`` and
``{"op": "thumbnails", "duration": s, "count": n}``; every answer has ``"ok"`` and, when false,
``"reason"``.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from typing import IO, Any

import numpy as np


def send(out: IO[bytes], header: dict[str, Any], payload: bytes = b"") -> None:
    data = json.dumps({**header, "bytes": len(payload)}).encode()
    out.write(struct.pack("<I", len(data)) + data)
    out.write(payload)
    out.flush()


def receive(inp: IO[bytes]) -> dict[str, Any] | None:
    head = inp.read(4)
    if len(head) < 4:
        return None  # the parent closed the pipe: we are done
    return json.loads(inp.read(struct.unpack("<I", head)[0]))


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split())
    for marker in ("ERROR opening:", "Error:", "Check failed:"):
        if marker in text:
            text = text[text.rindex(marker):]
    return (text[:200] + "...") if len(text) > 200 else text or type(err).__name__


def _limit_memory(megabytes: int) -> None:
    """Cap the address space: a file that makes the decoder allocate without end fails here, not the host."""
    if megabytes > 0:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (megabytes * 2**20, megabytes * 2**20))


def _open(path: str):
    import decord

    decord.logging.set_level(decord.logging.QUIET)
    reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    num_frames, fps = len(reader), float(reader.get_avg_fps())
    if num_frames < 1:
        raise ValueError("the video stream has no frames")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"the container reports no usable frame rate ({fps})")
    return reader, num_frames, fps


def _answer(reader: Any, num_frames: int, fps: float, request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    if request["op"] == "read":
        frames = np.ascontiguousarray(reader.get_batch([int(i) for i in request["indices"]]).asnumpy())
        return {"ok": True, "shape": list(frames.shape)}, frames.tobytes()
    if request["op"] == "thumbnails":
        from grounding.api.report import thumbnail_indices, thumbnail_uris

        times, indices = thumbnail_indices(float(request["duration"]), fps, num_frames, int(request["count"]))
        frames = reader.get_batch([int(i) for i in indices]).asnumpy()
        return {"ok": True, "thumbnails": thumbnail_uris(frames, times)}, b""
    return {"ok": False, "reason": f"unknown request {request['op']!r}"}, b""


def main(argv: list[str]) -> int:
    path, memory_mb = argv[0], int(argv[1])
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but messages may reach the parent's pipe
    _limit_memory(memory_mb)
    try:
        reader, num_frames, fps = _open(path)
    except Exception as err:  # decord raises RuntimeError/DECORDError for anything it cannot parse
        send(out, {"ok": False, "reason": _reason(err)})
        return 0
    send(out, {"ok": True, "num_frames": num_frames, "fps": fps})
    while (request := receive(inp)) is not None:
        try:
            header, payload = _answer(reader, num_frames, fps, request)
        except Exception as err:
            header, payload = {"ok": False, "reason": f"decoding failed ({_reason(err)})"}, b""
        send(out, header, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
