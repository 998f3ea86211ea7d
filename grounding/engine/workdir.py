"""A run's work dir: never silently overwritten; resume or an explicit overwrite.

A work dir *holds a run* once a checkpoint or ``metrics.json`` is written. What a start that failed
before its first checkpoint leaves behind (``config.yaml``, ``tb/``, ``train.log``, recognised by the
``train.log`` that every start writes first) is replaced by a plain rerun, so that fixing a typo
never needs ``--overwrite``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from grounding.errors import GroundingError

RUN_FILES = ("config.yaml", "checkpoints", "tb", "metrics.json", "train.log")
RESULT_FILES = ("checkpoints", "metrics.json")


def holds_run(work_dir: Path) -> bool:
    """A checkpoint or final metrics exist: something a rerun must not destroy unasked."""
    checkpoints = work_dir / "checkpoints"
    return (work_dir / "metrics.json").exists() or (checkpoints.is_dir() and any(checkpoints.iterdir()))


def _remove_run_files(work_dir: Path) -> None:
    for name in RUN_FILES:
        target = work_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for pred in work_dir.glob("predictions_*.jsonl"):
        pred.unlink()


def prepare_work_dir(work_dir: str | Path, resume: bool, overwrite: bool) -> Path:
    work_dir = Path(work_dir)
    if resume and overwrite:
        raise GroundingError(
            f"--resume and --overwrite contradict each other: pass --resume to continue the run in {work_dir}, "
            "or --overwrite to delete it and start again"
        )
    has_run = work_dir.is_dir() and holds_run(work_dir)
    if resume:
        if not (work_dir / "checkpoints" / "last.pt").is_file():
            fix = ("pass --overwrite instead of --resume to start again" if has_run
                   else "rerun without --resume to start a new run (nothing to continue: no epoch was completed)")
            raise GroundingError(f"--resume: {work_dir}/checkpoints/last.pt does not exist; {fix}")
        return work_dir
    if has_run and not overwrite:
        raise GroundingError(
            f"work dir {work_dir} already holds a run; pass --resume to continue it or --overwrite to replace it"
        )
    # --overwrite, or the leftovers of a start that failed before its first checkpoint (it wrote train.log first)
    if overwrite or (work_dir / "train.log").is_file():
        _remove_run_files(work_dir)
    elif (work_dir / "config.yaml").exists():
        raise GroundingError(
            f"work dir {work_dir} has a config.yaml that no run wrote; move it, choose another --work-dir, "
            "or pass --overwrite to replace it"
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    return work_dir
