"""One way to time code and measure its memory, for every benchmark (training, API, search, extraction).

- ``time_calls``: warm-up calls first (caches, lazy initialisation, allocator growth), then ``repeats``
  timed calls, each ending with the device's ``sync``: a CUDA call returns as soon as its kernels are
  queued, so without waiting for them a timer measures launches, not work.
- ``Stopwatch``: one timed section (a build, an extraction run), with the same ``sync``.
- ``summarise`` / ``in_ms``: median, min, max and mean; ``percentile`` for tail latencies.
- ``PeakMemory``: the peak memory of a section, on a GPU and on the CPU (its docstring says what is counted).
"""

from __future__ import annotations

import ctypes
import gc
import os
import re
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

Sync = Callable[[], None]
MB = 2**20


def no_sync() -> None:
    """The CPU runs an operation before returning: nothing to wait for."""


def device_sync(device: torch.device | str | None) -> Sync:
    """What waits for ``device``'s queued work: ``torch.cuda.synchronize`` on a GPU, nothing on the CPU."""
    if device is not None and torch.device(device).type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return no_sync


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int = 1, sync: Sync = no_sync) -> list[float]:
    """Seconds taken by each of ``repeats`` calls of ``fn``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


class Stopwatch:
    """Times one ``with`` block: ``with Stopwatch() as watch: ...`` then ``watch.seconds``."""

    def __init__(self, sync: Sync = no_sync) -> None:
        self.sync = sync
        self.seconds = float("nan")
        self._start = 0.0

    def __enter__(self) -> Stopwatch:
        self.sync()  # work queued before the block is not the block's
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.sync()
        self.seconds = time.perf_counter() - self._start


def summarise(values: Sequence[float]) -> dict[str, float]:
    """Median (the figure to quote: robust to a stray slow run), min, max and mean."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "mean": statistics.fmean(values)}


def in_ms(seconds: Sequence[float]) -> dict[str, float]:
    """``summarise`` of durations given in seconds, in milliseconds."""
    return summarise([s * 1000 for s in seconds])


def percentile(values: Sequence[float], q: float) -> float:
    """The value below which a share ``q`` (0..1) of ``values`` lie (nearest rank; no interpolation)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class PeakMemory:
    """The peak memory of a ``with`` block: ``with PeakMemory(device) as mem: ...`` then ``mem.report()``.

    - On a GPU: ``torch.cuda.max_memory_allocated`` after resetting the peak at entry (tensors only,
      not the caching allocator's reserve), ``kind`` ``cuda allocated``.
    - On the CPU: the process's resident set (``kind`` ``resident set``), which counts everything
      (Python objects, numpy arrays, torch's libraries: a few hundred MB before any model), and not
      child processes such as DataLoader or decoding workers. The peak of a process only grows, so
      at entry the block resets it (Linux: ``5`` into ``/proc/self/clear_refs``) and reads ``VmHWM``
      at exit: ``scope`` ``section``. Where that fails (another system, a read-only ``/proc``) the
      figure is the peak since the process started (``getrusage``), ``scope`` ``process``.
      ``added_mb`` is the peak minus the resident set at entry: the most the block itself held at
      once (None when the scope is the process). Memory an earlier block freed stays resident in the
      C allocator and would be reused without growing the resident set, hiding the block's own
      use; so at entry the block first hands it back to the system (glibc's ``malloc_trim``).
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.peak_mb = float("nan")
        self.added_mb: float | None = None
        self.scope = "section"
        self._start_mb = 0.0

    @property
    def kind(self) -> str:
        return "cuda allocated" if self.device.type == "cuda" else "resident set"

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start_mb = torch.cuda.memory_allocated(self.device) / MB
        else:
            _release_free_memory()
            self.scope = "section" if _reset_peak_rss() else "process"
            self._start_mb = current_rss_mb()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / MB
        else:
            self.peak_mb = peak_rss_mb() if self.scope == "section" else process_peak_rss_mb()
        self.added_mb = max(0.0, self.peak_mb - self._start_mb) if self.scope == "section" else None

    def report(self) -> dict[str, Any]:
        """Flat keys, to merge into a benchmark's result row."""
        return {"peak_memory_mb": round(self.peak_mb, 1),
                "memory_added_mb": None if self.added_mb is None else round(self.added_mb, 1),
                "memory_kind": self.kind, "memory_scope": self.scope}


_STATUS = Path("/proc/self/status")


def _release_free_memory() -> None:
    """Collect Python garbage and return the C heap's free pages to the system (glibc only)."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the resident set may include freed memory
        pass


def _reset_peak_rss() -> bool:
    """Start a new peak resident set for this process (Linux >= 4.0); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _STATUS.is_file()
    except OSError:
        return False


def peak_rss_mb() -> float:
    """The peak resident set since the last reset (``VmHWM``), or since the process started."""
    try:
        found = re.search(r"^VmHWM:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        found = None
    return int(found.group(1)) / 1024 if found else process_peak_rss_mb()


def process_peak_rss_mb() -> float:
    """The peak resident set since the process started (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float:
    """The resident set now (``/proc/self/statm``); the process's peak where /proc is missing."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return process_peak_rss_mb()
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / MB
