"""Learning-rate schedule: linear warm-up, then cosine, linear or constant decay (per optimizer step).

On the ground floor (torch only) because the trainer and the forward adapter's fit
(``grounding.compat.adapter``, below the engine) both schedule with it.
"""

from __future__ import annotations

import math

import torch


def warmup_decay(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, decay: str = "cosine",
                 min_ratio: float = 0.01) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        if decay == "cosine":
            return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        if decay == "linear":
            return min_ratio + (1 - min_ratio) * (1 - progress)
        return 1.0

    if decay not in ("cosine", "linear", "constant"):
        raise ValueError(f"train.decay must be cosine, linear or constant, not {decay}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
