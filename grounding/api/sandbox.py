"""Decoding an untrusted video in a child process with a time limit (``SandboxedReader``).

decord parses the container and streams in C; a crafted file can crash it (a segfault ends the whole
process), hang it or make it allocate without end. The web app therefore never opens an uploaded file
in its own process: a ``SandboxedReader`` starts ``grounding.api.decode_child`` on the file, with an
address-space cap, and every request to it (open, read a chunk of frames, thumbnails) must answer
within ``timeout`` seconds. A crash, a hang or a malformed answer kills the child and raises
``VideoReadError`` with a one-line reason; the server goes on.

It has ``VideoReader``'s interface (``info``, ``read(indices, transform)``), so ``encode_file`` streams
features from it unchanged.
"""

from __future__ import annotations

import json
import os
import select
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from grounding.extract.video_io import VideoInfo, VideoReadError

CHILD = [sys.executable, "-m", "grounding.api.decode_child"]  # + FILE MEMORY_MB
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_MAX_HEADER = 16 * 2**20  # thumbnails as data URIs fit many times over
_MAX_FRAME_PIXELS = 8192 * 8192


class SandboxedReader:
    """One child decoding process per file; use as a context manager (or call ``close``)."""

    def __init__(self, path: str | Path, timeout: float = 60.0, memory_mb: int = 4096) -> None:
        self.path = Path(path)
        self.timeout = timeout
        if not self.path.is_file():
            raise VideoReadError(self.path, "no such file")
        if self.path.stat().st_size == 0:
            raise VideoReadError(self.path, "empty file")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))}
        self._child = subprocess.Popen([*CHILD, str(self.path), str(memory_mb)], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        try:
            header, _ = self._receive("opening")
        except BaseException:
            self.close()
            raise
        self.info = VideoInfo(int(header["num_frames"]), float(header["fps"]))

    def __enter__(self) -> SandboxedReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._child.poll() is None:
            self._child.kill()
        self._child.wait()
        for pipe in (self._child.stdin, self._child.stdout):
            if pipe is not None:
                pipe.close()

    def read(self, indices: np.ndarray, transform: Callable[[np.ndarray], Any], chunk: int = 32) -> Any:
        """Frames at ``indices``, ``chunk`` per request, each chunk through ``transform`` (as ``VideoReader.read``)."""
        import torch

        parts = []
        for start in range(0, len(indices), chunk):
            batch = [int(i) for i in indices[start : start + chunk]]
            header, payload = self._ask({"op": "read", "indices": batch}, f"decoding near frame {batch[0]}")
            shape = tuple(int(n) for n in header.get("shape", ()))
            if (len(shape) != 4 or shape[0] != len(batch) or shape[3] != 3 or shape[1] * shape[2] > _MAX_FRAME_PIXELS
                    or len(payload) != int(np.prod(shape))):
                self.close()
                raise VideoReadError(self.path, f"the decoder answered frames of shape {shape}")
            parts.append(transform(np.frombuffer(payload, dtype=np.uint8).reshape(shape)))
        return torch.cat(parts)

    def thumbnails(self, duration: float, count: int = 12) -> list[dict[str, Any]]:
        """As ``report.thumbnails``, made in the child."""
        header, _ = self._ask({"op": "thumbnails", "duration": duration, "count": count}, "making thumbnails")
        return list(header["thumbnails"])

    # ------------------------------------------------------------------ the pipe
    def _ask(self, request: dict[str, Any], doing: str) -> tuple[dict[str, Any], bytearray]:
        data = json.dumps(request).encode()
        try:
            self._child.stdin.write(struct.pack("<I", len(data)) + data)  # type: ignore[union-attr]
            self._child.stdin.flush()  # type: ignore[union-attr]
        except OSError:
            pass  # the child is gone; _receive says how
        return self._receive(doing)

    def _receive(self, doing: str) -> tuple[dict[str, Any], bytearray]:
        deadline = time.monotonic() + self.timeout
        size = struct.unpack("<I", self._read_exact(4, deadline, doing))[0]
        if size > _MAX_HEADER:
            self.close()
            raise VideoReadError(self.path, f"the decoder sent a malformed answer while {doing}")
        header = json.loads(self._read_exact(size, deadline, doing))
        payload = self._read_exact(int(header.get("bytes", 0)), deadline, doing)
        if not header.get("ok"):
            self.close()
            raise VideoReadError(self.path, str(header.get("reason", "the decoder refused it"))[:300])
        return header, payload

    def _read_exact(self, size: int, deadline: float, doing: str) -> bytearray:
        fd = self._child.stdout.fileno()  # type: ignore[union-attr]
        buf = bytearray()
        while len(buf) < size:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.close()
                raise VideoReadError(self.path, f"{doing} took longer than {self.timeout:g} s (the file may be "
                                                "damaged or crafted); it was stopped")
            chunk = os.read(fd, min(size - len(buf), 2**20))
            if not chunk:
                code = self._child.wait()
                self.close()
                how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
                raise VideoReadError(self.path, f"the decoder {how} while {doing} (the file may be damaged or crafted)")
            buf += chunk
        return buf  # writable, so frames become tensors without a copy
