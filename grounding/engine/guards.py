"""Stop a run whose loss turned NaN/inf, naming the step and its queries, without syncing the GPU each step."""

from __future__ import annotations

from typing import Any

import torch

from grounding.errors import GroundingError


class NonFiniteLossGuard:
    """Collects each step's loss and checks them every ``interval`` steps (and at ``check()``).

    ``torch.isfinite(loss)`` in an ``if`` waits for the GPU to finish the step; reading the flags of
    ``interval`` steps at once costs one wait instead of ``interval``. On the CPU there is nothing to
    wait for, so the trainer uses ``interval=1`` there and stops at the very step that went bad.
    """

    def __init__(self, interval: int = 1, hint: str = "Lower train.lr, check those queries' features, or resume "
                 "from checkpoints/last.pt") -> None:
        self.interval = max(1, int(interval))
        self.hint = hint
        self.pending: list[tuple[int, int, list[Any], torch.Tensor, dict[str, torch.Tensor]]] = []

    def add(self, epoch: int, step: int, qids: list[Any], loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        self.pending.append((epoch, step, list(qids[:20]), loss.detach(), terms))
        if len(self.pending) >= self.interval:
            self.check()

    def check(self) -> None:
        if not self.pending:
            return
        finite = torch.isfinite(torch.stack([p[3].float() for p in self.pending]))
        if not bool(finite.all()):  # the one host-device sync
            epoch, step, qids, loss, terms = self.pending[int((~finite).nonzero()[0, 0])]
            late = (f" (found {len(self.pending)} steps later: the weights may already hold NaN)"
                    if self.interval > 1 else "")
            raise GroundingError(
                f"non-finite loss ({loss.item()}) at epoch {epoch}, step {step}{late}; batch qids {qids}; "
                f"terms { {k: round(float(v), 4) for k, v in terms.items()} }. {self.hint}"
            )
        self.pending.clear()
