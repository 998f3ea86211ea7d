"""The loss interface, registry and the criterion that sums weighted terms.

Every term is a class registered by name; ``loss.<name>.weight`` in the config sets its weight and
0 switches it off (it is then not even computed). Each term's value is returned separately so that
it gets its own TensorBoard scalar; a term that sums several parts (``set_prediction``) leaves them in
``parts`` after each call, and they are logged as ``name/part``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from grounding.data.batch import Batch
from grounding.models.outputs import GroundingOutput, StageOutput
from grounding.registry import Registry


class Loss(nn.Module):
    """One weighted term. ``per_stage`` terms are applied to every stage with the stage's weight."""

    per_stage = False

    def __init__(self, weight: float = 1.0, **_: Any) -> None:
        super().__init__()
        self.weight = float(weight)

    def forward(self, output: GroundingOutput, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def stage(self, stage: StageOutput, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def compatible_with(self) -> list[str]:
        """Spaces (model fingerprints) this term makes the model compatible with; saved in every checkpoint."""
        return []


LOSSES: Registry[Loss] = Registry("loss")


class Criterion(nn.Module):
    def __init__(self, terms: dict[str, Loss], stage_weights: dict[str, float]) -> None:
        super().__init__()
        self.terms = nn.ModuleDict(terms)
        self.stage_weights = dict(stage_weights)

    def forward(self, output: GroundingOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and each term's unweighted value (detached), keyed ``name`` or ``stage/name``."""
        logs: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=batch.video.device)
        for name, term in self.terms.items():
            if term.weight == 0:
                continue
            if term.per_stage:
                for stage_name, stage in output.stages.items():
                    value = term.stage(stage, batch)
                    total = total + term.weight * self.stage_weights.get(stage_name, 1.0) * value
                    logs[f"{stage_name}/{name}"] = value.detach()
            else:
                value = term(output, batch)
                total = total + term.weight * value
                logs[name] = value.detach()
                logs.update({f"{name}/{part}": v for part, v in getattr(term, "parts", {}).items()})
        logs["total"] = total.detach()
        return total, logs

    def compatible_with(self) -> list[str]:
        """Fingerprints of the shared spaces this model is trained to query (the compat term's old model)."""
        return [space for term in self.terms.values() for space in term.compatible_with()]


def build_criterion(loss_cfg: Any, context: Any = None) -> Criterion:
    """The weighted terms of ``loss_cfg``; terms with ``needs_context`` (the compat term) also get
    ``context`` (``grounding.losses.compat.LossContext``: config, data, device)."""
    loss_cfg = dict(loss_cfg or {})
    stage_weights = dict(loss_cfg.pop("stage_weights", {}) or {})
    terms = {}
    for name, opts in loss_cfg.items():
        factory = LOSSES.get(name)
        extra = {"context": context} if getattr(factory, "needs_context", False) else {}
        terms[name] = factory(**dict(opts or {}), **extra)
    return Criterion(terms, stage_weights)
