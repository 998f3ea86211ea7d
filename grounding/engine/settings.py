"""Typed views of the config sections the engine reads, with every default in one place.

``configs/base/default.yaml`` states the same defaults for people; these dataclasses are what code
reads, so a missing key means the default below and never a scattered ``cfg.get(key, other_default)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from grounding.config import to_plain
from grounding.errors import GroundingError


def _from_section(cls: type, section: Any, name: str) -> Any:
    values = {k: v for k, v in to_plain(section or {}).items() if v is not None}
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise GroundingError(f"unknown option(s) {', '.join(f'{name}.{k}' for k in unknown)}; known: {sorted(known)}")
    return cls(**values)


@dataclass
class TrainSettings:
    epochs: int = 12
    batch_size: int = 32
    eval_batch_size: int = 128
    lr: float = 4e-4
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    decay: str = "cosine"
    grad_clip: float = 1.0
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    deterministic: bool = False
    eval_every: int = 1
    best_metric: str = "R1@0.5"
    log_every: int = 20
    num_workers: int = 0
    compile: bool = False
    fast_data: Any = "auto"  # auto | true | false
    num_threads: Any = "auto"  # auto | a positive integer
    num_figures: int = 4
    figure_every: int = 0

    @classmethod
    def from_config(cls, cfg: Any) -> TrainSettings:
        return _from_section(cls, cfg.get("train"), "train")


@dataclass
class Splits:
    """Which split trains, which selects ``best.pt`` and which are evaluated at the end."""

    train: str = "train"
    val: str | None = None
    evaluate: list[str] = field(default_factory=lambda: ["test"])

    @property
    def select(self) -> str:
        """The split ``best.pt`` is chosen on: the validation split, else the first evaluation split."""
        return self.val or self.evaluate[0]

    @classmethod
    def from_config(cls, cfg: Any) -> Splits:
        data = cfg.get("data") or {}
        evaluate = data.get("eval_splits") or [data.get("test_split") or "test"]
        return cls(train=data.get("train_split") or "train", val=data.get("val_split"), evaluate=list(evaluate))
