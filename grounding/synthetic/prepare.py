"""Data that a config can make for itself: the synthetic benchmark of a ``data.synthetic`` section,
written under ``data.root`` by the command-line tools *before* they train or evaluate.

The trainer never writes datasets: a run reads what is there. Under torchrun every rank starts the
tool at once, so only global rank 0 writes (two writers of one folder would race on its files). The
other ranks need no wait of their own here: the process group does not exist yet, and the Trainer's
first barrier (right after it joins the group) cannot pass before rank 0 reaches it, which rank 0 does
only once the benchmark is written. (Writing the default benchmark takes seconds, well inside the
process group's start-up timeout.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from grounding.config import to_plain
from grounding.synthetic.benchmark import write_synthetic
from grounding.synthetic.spec import SyntheticSpec


def ensure_synthetic_data(cfg: Any) -> dict[str, int] | None:
    """Configs with a ``data.synthetic`` section get their benchmark written under ``data.root`` once
    (reused afterwards); returns its query counts per split, or None when the config has no section."""
    spec = cfg.data.get("synthetic")
    if not spec:
        return None
    return write_synthetic(cfg.data.root, SyntheticSpec(**to_plain(spec)), progress=False)


def is_rank_zero(environ: Mapping[str, str] = os.environ) -> bool:
    """True in a plain process and in torchrun's global rank 0 (``RANK`` absent or "0")."""
    return environ.get("RANK", "0") == "0"


def prepare_data(cfg: Any, environ: Mapping[str, str] = os.environ) -> None:
    """What a tool does before building a Trainer or an evaluation: write the config's synthetic
    benchmark, on rank 0 only (see the module docstring for why the other ranks do not wait here)."""
    if is_rank_zero(environ):
        ensure_synthetic_data(cfg)


__all__ = ["ensure_synthetic_data", "is_rank_zero", "prepare_data"]
