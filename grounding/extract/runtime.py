"""What every extraction run shares: the device and precision it runs at, and its end-of-run summary."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from grounding.device import select_device, weights_dtype


def resolve_device(name: str) -> tuple[torch.device, torch.dtype]:
    """The extraction device and the dtype the backbone runs in, by the project's one policy
    (``grounding.device``): float32 on the CPU, bf16 (fp16 on older GPUs) on CUDA."""
    device = select_device(name, setting="--device")
    return device, weights_dtype(device)


def progress_bar(total: int, unit: str, enabled: bool = True) -> tqdm:
    """A bar with items/s and ETA (tqdm's defaults) on stderr; a rate postfix is added by the caller."""
    return tqdm(total=total, unit=unit, disable=not enabled, dynamic_ncols=True, file=sys.stderr, smoothing=0.1)


@dataclass
class RunSummary:
    """Counts of a run and every failure with its reason; ``exit_code`` is 1 when anything failed."""

    unit: str  # "video" or "query"
    total: int = 0
    skipped: int = 0
    done: int = 0
    features: int = 0  # clip (or token) feature vectors written
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)

    def fail(self, name: str, reason: str, bar: tqdm | None = None) -> None:
        self.failures.append((name, reason))
        message = f"FAILED {name}: {reason}"
        if bar is not None:
            bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr)

    @property
    def units(self) -> str:
        return "queries" if self.unit == "query" else f"{self.unit}s"

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    def text(self) -> str:
        rate = ""
        if self.done and self.seconds > 0:
            rate = (
                f" in {self.seconds:.1f} s ({self.done / self.seconds:.2f} {self.units}/s, "
                f"{self.features / self.seconds:.1f} features/s)"
            )
        lines = [
            f"{self.total} {self.units} in this shard: {self.done} extracted ({self.features} feature vectors){rate}, "
            f"{self.skipped} already done (skipped), {len(self.failures)} failed"
        ]
        if self.failures:
            lines.append(f"failed {self.units} (fix or remove them, then rerun the same command to retry only these):")
            lines += [f"  {name}: {reason}" for name, reason in self.failures]
        return "\n".join(lines)
