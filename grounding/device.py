"""Device, precision and CPU-thread policy: one answer for training, inference and feature extraction.

- ``select_device``: ``auto`` (a GPU when torch sees one), ``cpu``, ``cuda`` or ``cuda:N``; under
  torchrun a bare ``cuda`` means this process's GPU (``LOCAL_RANK``).
- ``autocast_dtype`` (training and grounding inference): bf16 autocast on GPUs that support it, fp16
  on older ones, full precision on the CPU (CPU autocast is slower than fp32 for these small models);
  ``precision=fp32`` turns it off. ``weights_dtype`` (frozen feature backbones): fp16 on GPUs.
- ``configure_threads``: see its docstring for why the default is not simply one thread per core.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

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


def default_threads(cores: int | None = None, load: float | None = None) -> int:
    """CPU threads for a new run: the cores that the machine's other work leaves free (at least one).

    torch's default of one OpenMP thread per core falls off a cliff when two runs share a machine: each
    run's threads spin-wait on cores the other run holds, and both slow down about tenfold. Counting the
    one-minute load average (minus nothing of ours: the run has not started) as busy cores keeps a
    second run on the cores that are actually free; a run alone on the machine still gets them all.
    """
    cores = cores or os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # not available on this platform
            load = 0.0
    return max(1, min(cores, cores - int(load + 0.5)))


def configure_threads(num_threads: int | str | None) -> int:
    """Apply ``train.num_threads`` (an integer, or ``auto``/null for ``default_threads``); returns the count."""
    count = default_threads() if num_threads in (None, "auto") else int(num_threads)
    if count < 1:
        raise GroundingError(f"train.num_threads={num_threads}: give a positive number or auto")
    torch.set_num_threads(count)
    return count
