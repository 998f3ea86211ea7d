"""The one training step, shared by the trainer, the compatibility study and the speed benchmarks:
autocast forward + loss, non-finite guard, scaled backward, gradient clipping, optimizer and schedule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from grounding.device import refresh_threads
from grounding.engine.guards import NonFiniteLossGuard

LossFn = Callable[[], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def make_optimizer(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float,
                   device: torch.device) -> torch.optim.AdamW:
    """AdamW; fused (one kernel for all parameters instead of a loop of small ops: 12 % of a CPU step)."""
    return torch.optim.AdamW(list(params), lr=lr, weight_decay=weight_decay, fused=device.type in ("cpu", "cuda"))


class TrainStep:
    def __init__(self, optimizer: torch.optim.Optimizer, device: torch.device, grad_clip: float = 1.0,
                 autocast: torch.dtype | None = None, scheduler: Any = None, guard: NonFiniteLossGuard | None = None
                 ) -> None:
        self.optimizer = optimizer
        self.device = device
        self.grad_clip = float(grad_clip)
        self.autocast = autocast
        self.scheduler = scheduler
        self.guard = guard or NonFiniteLossGuard(1)
        self.scaler = torch.amp.GradScaler("cuda", enabled=autocast == torch.float16)  # fp16 needs loss scaling
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.foreach = device.type in ("cpu", "cuda")
        self.count = 0  # steps taken

    def __call__(self, loss_fn: LossFn, qids: Sequence[Any] = (), epoch: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Compute the loss with ``loss_fn`` under autocast and take one optimisation step; returns the
        loss and its named terms (detached)."""
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            loss, terms = loss_fn()
        self.guard.add(epoch, self.count, qids, loss, terms)
        refresh_threads()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=self.foreach)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        self.count += 1
        return loss, terms

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None, "step": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.count = int(state["step"])
