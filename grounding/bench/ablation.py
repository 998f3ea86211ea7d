"""The standard ablation of CCMAN: each variant is the same config with a few overrides (or, for the
baseline, the baseline's model part), trained in this process one after another.

Every variant trains with the same data, epochs, batch size and seed, so the table compares the
architectures and losses alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from grounding.config import load_config, packaged_config
from grounding.engine.trainer import run_training
from grounding.errors import GroundingError

log = logging.getLogger("grounding")

NO_ALIGNMENT = ["loss.contrastive.weight=0", "loss.clip_alignment.weight=0", "loss.attention_guidance.weight=0"]

VARIANTS: dict[str, list[str]] = {
    "full": [],
    "coarse_only": ["model.stages=[coarse]"],
    "fine_only": ["model.stages=[fine]"],
    "no_focus": ["model.focus=false"],
    "no_alignment": NO_ALIGNMENT,
    "baseline": [],  # the baseline's own model and loss part (configs/models/span_baseline.yaml)
}

TABLE_METRICS = ["test/R1@0.5", "test/R1@0.7", "test/mIoU", "test/plain/R1@0.5", "test/temporal/R1@0.5",
                 "test/novel/R1@0.5"]


def variant_config(config: str | Path, name: str, overrides: Sequence[str]):
    """The resolved config of one variant: the experiment, its variant changes, then the user's overrides."""
    cfg = load_config(config, [*VARIANTS[name], *overrides])
    if name == "baseline":
        baseline = load_config(packaged_config("models/span_baseline.yaml"))
        cfg.model = OmegaConf.merge(baseline.model, {"video_dim": cfg.model.video_dim})
        cfg.loss = baseline.loss
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([o for o in overrides if o.startswith(("model.", "loss."))]))
    return cfg


def run_ablation(config: str | Path, work_root: str | Path, overrides: Sequence[str] = (),
                 variants: Sequence[str] = tuple(VARIANTS)) -> dict[str, str | None]:
    """Train each variant into ``<work_root>/<name>``; returns the error of each failed variant (None = done)."""
    work_root = Path(work_root)
    work_root.mkdir(parents=True, exist_ok=True)
    outcome: dict[str, str | None] = {}
    for name in variants:
        log.info("[ablation] %s: %s", name, " ".join(VARIANTS[name]) or "(as configured)")
        try:
            run_training(variant_config(config, name, overrides), work_root / name, overwrite=True, progress=False)
            outcome[name] = None
        except GroundingError as err:
            outcome[name] = str(err)
            log.error("[ablation] %s failed: %s", name, err)
    return outcome
