"""A run's work dir: never silently overwritten; resume or an explicit overwrite."""

from __future__ import annotations

import shutil
from pathlib import Path

from grounding.errors import GroundingError

RUN_FILES = ("config.yaml", "checkpoints", "tb", "metrics.json", "train.log")


def prepare_work_dir(work_dir: str | Path, resume: bool, overwrite: bool) -> Path:
    work_dir = Path(work_dir)
    has_run = work_dir.is_dir() and any((work_dir / name).exists() for name in RUN_FILES)
    if resume:
        if not (work_dir / "checkpoints" / "last.pt").is_file():
            raise GroundingError(f"--resume: {work_dir}/checkpoints/last.pt does not exist; start a new run instead")
        return work_dir
    if has_run and not overwrite:
        raise GroundingError(
            f"work dir {work_dir} already holds a run; pass --resume to continue it or --overwrite to replace it"
        )
    if has_run and overwrite:
        for name in RUN_FILES + ("predictions_train.jsonl",):
            target = work_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        for pred in work_dir.glob("predictions_*.jsonl"):
            pred.unlink()
    work_dir.mkdir(parents=True, exist_ok=True)
    return work_dir
