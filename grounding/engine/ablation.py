"""The standard ablation of CCMAN: each variant is the same config with a few overrides.

Every variant trains with the same data, epochs, batch size and seed, so the table compares the
architectures and losses alone.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

NO_ALIGNMENT = ["loss.contrastive.weight=0", "loss.clip_alignment.weight=0", "loss.attention_guidance.weight=0"]

VARIANTS: dict[str, list[str]] = {
    "full": [],
    "coarse_only": ["model.stages=[coarse]"],
    "fine_only": ["model.stages=[fine]"],
    "no_focus": ["model.focus=false"],
    "no_alignment": NO_ALIGNMENT,
    "baseline": ["model.name=span_baseline", *NO_ALIGNMENT],
}

TABLE_METRICS = ["test/R1@0.5", "test/R1@0.7", "test/mIoU", "test/plain/R1@0.5", "test/temporal/R1@0.5",
                 "test/novel/R1@0.5"]


def ablation_commands(config: str, work_root: Path, overrides: Sequence[str], variants: Sequence[str]) -> dict[str, list[str]]:
    tool = str(Path(__file__).resolve().parents[2] / "tools" / "train_grounding.py")
    return {name: [sys.executable, tool, "--config", config, "--work-dir", str(work_root / name), "--overwrite",
                   *overrides, *VARIANTS[name]] for name in variants}


def run_ablation(config: str, work_root: str | Path, overrides: Sequence[str] = (), variants: Sequence[str] = tuple(VARIANTS),
                 parallel: int = 1) -> dict[str, int]:
    """Run the variants (``parallel`` at a time), each logging to ``<work_root>/<name>.log``; return exit codes."""
    work_root = Path(work_root)
    work_root.mkdir(parents=True, exist_ok=True)
    pending = list(ablation_commands(config, work_root, overrides, variants).items())
    running: list[tuple[str, subprocess.Popen]] = []
    codes: dict[str, int] = {}
    while pending or running:
        while pending and len(running) < parallel:
            name, cmd = pending.pop(0)
            log = (work_root / f"{name}.log").open("w")
            print(f"[ablation] start {name}: {' '.join(cmd[1:])}", flush=True)
            running.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)))
        name, proc = running.pop(0)
        codes[name] = proc.wait()
        print(f"[ablation] {name} finished with exit code {codes[name]}", flush=True)
    return codes
