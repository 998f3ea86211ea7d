"""Device, precision and CPU-thread policy: one answer for training, inference and feature extraction.

- ``select_device``: ``auto`` (a GPU when torch sees one), ``cpu``, ``cuda`` or ``cuda:N``; under
  torchrun a bare ``cuda`` means this process's GPU (``LOCAL_RANK``).
- ``autocast_dtype`` (training and grounding inference): bf16 autocast on GPUs that support it, fp16
  on older ones, full precision on the CPU (CPU autocast is slower than fp32 for these small models);
  ``precision=fp32`` turns it off. ``weights_dtype`` (frozen feature backbones): fp16 on GPUs.
- ``configure_threads``: CPU threads shared among the runs on the machine (``CpuShare`` says why).
"""

from __future__ import annotations

import atexit
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import torch

from grounding.errors import GroundingError


def select_device(choice: str, env: Mapping[str, str] = os.environ, setting: str = "train.device") -> torch.device:
    """The torch device for ``choice``; ``setting`` names the option in error messages."""
    choice = str(choice)
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cpu":
        return torch.device("cpu")
    if not choice.startswith("cuda"):
        raise GroundingError(f"{setting}={choice}: use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise GroundingError(f"{setting}={choice}, but this torch sees no CUDA GPU; use cpu or auto, or install a CUDA "
                             "build of torch (README, 'GPU install')")
    if choice == "cuda":
        choice = f"cuda:{int(env.get('LOCAL_RANK', 0))}"
    device = torch.device(choice)
    torch.cuda.set_device(device)
    return device


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``device`` (None = full precision)."""
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise GroundingError(f"precision '{precision}': use auto, fp32, bf16 or fp16")
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def weights_dtype(device: torch.device, precision: str = "auto") -> torch.dtype:
    """The dtype a frozen network (a feature backbone) is cast to: float16 on CUDA, float32 on the CPU.

    No gradient flows through a frozen backbone, so bf16's wider range buys nothing there, while fp16's
    three extra mantissa bits keep features closer to float32 (cosine >= 0.99999, docs/features.md).
    """
    if device.type != "cuda" or precision == "fp32":
        return torch.float32
    return torch.bfloat16 if precision == "bf16" else torch.float16


class CpuShare:
    """This process's share of the CPU cores, among the grounding runs alive on the machine.

    Why: torch's default of one OpenMP thread per core collapses when two runs share a machine. Every
    parallel region waits for all its threads, and with twice as many threads as cores some thread is
    always descheduled: two concurrent 2-thread trainings on 2 cores ran 9x slower each (75 s instead of
    8.4 s per epoch), while 1 thread each costs 1.5x (docs/performance.md). Waiting passively
    (``OMP_WAIT_POLICY=PASSIVE``) avoided the collapse but made a run alone 1.7x slower.

    So every run registers itself in ``<tmp>/grounding-runs-<uid>/<pid>`` while it runs, and a run on
    ``auto`` uses ``(cores - threads of pinned runs) // auto runs`` threads (at least one). ``refresh`` re-reads the registry at most every
    ``interval`` seconds; training steps call it, so a run that started alone gives up cores within
    seconds when a second one starts, and takes them back when it ends. ``close`` (end of the run)
    unregisters and restores the thread count the process had. ``train.num_threads=N`` pins the count.
    """

    def __init__(self, folder: Path, cores: int | None = None, interval: float = 2.0, pinned: int | None = None) -> None:
        self.folder = folder
        self.cores = cores or os.cpu_count() or 1
        self.interval = interval
        self.pinned = pinned  # a run with a fixed thread count still registers, so the others leave it its cores
        self.entry: Path | None = folder / str(os.getpid())
        self.previous = torch.get_num_threads()
        self._checked = 0.0
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.entry.write_text("auto" if pinned is None else str(pinned))
        except OSError:  # a read-only folder: behave as if alone
            self.entry = None
        atexit.register(self.close)

    def live_runs(self) -> tuple[int, int]:
        """(runs sharing the cores, threads held by runs with a fixed count), this run included."""
        shared, pinned = 0, 0
        for item in self.folder.glob("[0-9]*"):
            try:
                os.kill(int(item.name), 0)
            except ProcessLookupError:
                item.unlink(missing_ok=True)  # a run that ended without cleaning up
                continue
            except (PermissionError, ValueError):
                pass  # another user's live process, or a name we did not write: count it
            try:
                text = item.read_text().strip()
            except OSError:
                continue
            if text.isdigit():
                pinned += int(text)
            else:
                shared += 1
        return max(shared, 1), pinned

    def threads(self) -> int:
        if self.pinned is not None:
            return self.pinned
        shared, pinned = self.live_runs()
        return max(1, (self.cores - pinned) // shared)

    def refresh(self, force: bool = False) -> int:
        """Apply this process's current share (cheap when called often: reads the registry every ``interval`` s)."""
        now = time.monotonic()
        if force or now - self._checked >= self.interval:
            self._checked = now
            count = self.threads()
            if count != torch.get_num_threads():
                torch.set_num_threads(count)
        return torch.get_num_threads()

    def close(self) -> None:
        if self.entry is not None:
            self.entry.unlink(missing_ok=True)
            self.entry = None
            torch.set_num_threads(self.previous)


def registry_dir() -> Path:
    """Where live runs register: per user and machine, whatever cache folder each run uses."""
    return Path(tempfile.gettempdir()) / f"grounding-runs-{os.getuid()}"


_share: CpuShare | None = None


def configure_threads(num_threads: int | str | None) -> int:
    """Apply ``train.num_threads``: a positive integer pins it; ``auto``/null shares the cores left by pinned
    runs among the grounding runs on this machine (``CpuShare``). Returns the thread count now in force."""
    global _share
    pinned = None
    if num_threads not in (None, "auto"):
        pinned = int(num_threads)
        if pinned < 1:
            raise GroundingError(f"train.num_threads={num_threads}: give a positive number or auto")
    release_threads()
    _share = CpuShare(registry_dir(), pinned=pinned)
    return _share.refresh(force=True)


def release_threads() -> None:
    """End of a run: leave the registry and restore the process's thread count."""
    global _share
    if _share is not None:
        _share.close()
        _share = None


def refresh_threads() -> None:
    """Follow changes in the number of runs sharing the CPU (a no-op when threads are pinned)."""
    if _share is not None:
        _share.refresh()
