"""Data that a config can make for itself: the built-in synthetic benchmark, written on first use."""

from __future__ import annotations

from typing import Any

from grounding.config import to_plain
from grounding.synthetic.benchmark import write_synthetic
from grounding.synthetic.spec import SyntheticSpec


def ensure_synthetic_data(cfg: Any) -> None:
    """Configs with a ``data.synthetic`` section get their benchmark written under ``data.root`` once."""
    spec = cfg.data.get("synthetic")
    if spec:
        write_synthetic(cfg.data.root, SyntheticSpec(**to_plain(spec)), progress=False)
