"""The CCMAN ablation: variants that each change one thing, several seeds, mean and spread per cell,
and the rows a reader needs to judge the numbers (video-free priors, the baseline's size).

Like the compatibility studies it trains through the engine (``run_training``, hence ``TrainStep``)
and writes its summary with the studies' one writer (``grounding.studies.protocol.StudySummary``):
``ablation.md``, ``ablation.csv`` and ``ablation.json``.

Every variant trains with the same data, epochs, batch size and seeds. ``coarse_only`` and
``fine_only`` keep the full model's balance between localisation and alignment: the full model's
localisation terms weigh 0.5 (coarse) + 1.0 (fine) = 1.5 in all, so a single stage gets 1.5.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from grounding.config import apply_overrides, load_config, packaged_config, to_plain
from grounding.engine.trainer import run_training
from grounding.errors import GroundingError
from grounding.eval.results_table import load_metrics, to_markdown
from grounding.overrides import parse_override
from grounding.studies.protocol import StudySummary, Table
from grounding.synthetic.shortcuts import audit_charades_folder

log = logging.getLogger("grounding")

VARIANTS: dict[str, list[str]] = {
    "full": [],
    "no_contrastive": ["loss.contrastive.weight=0"],
    "no_clip_alignment": ["loss.clip_alignment.weight=0"],
    "no_attention_guidance": ["loss.attention_guidance.weight=0"],
    "no_focus": ["model.focus=false"],
    "no_word_relations": ["model.word_relations=false"],
    "no_relation_cue": ["model.relation_cue=false"],
    # a part that is off by default since it tied (docs/model.md), switched back on
    "with_attention_guidance": ["loss.attention_guidance.weight=0.2"],
    "coarse_only": ["model.stages=[coarse]", "loss.stage_weights.coarse=1.5"],
    "fine_only": ["model.stages=[fine]", "loss.stage_weights.fine=1.5"],
    "span_refined_only": ["loss.span_l1.spans=refined", "loss.span_iou.spans=refined"],  # before: decoded logits unsupervised
    "span_own_only": ["loss.span_l1.spans=own", "loss.span_iou.spans=own"],
    "baseline": [],  # the baseline's own model and loss part (configs/models/span_baseline.yaml)
}

TABLE_METRICS = ["R1@0.5", "R1@0.7", "mIoU", "plain/R1@0.5", "temporal/R1@0.5", "novel/R1@0.5"]
SEEDS = (0, 1, 2)


def variant_config(config: str | Path, name: str, overrides: Sequence[str]) -> DictConfig:
    """The resolved config of one variant: the experiment, its variant changes, then the user's overrides.

    The baseline swaps in the span baseline's ``model`` and ``loss`` sections; the user's overrides of those
    sections are checked again against them (a CCMAN-only key such as ``model.focus`` is refused there)."""
    cfg = load_config(config, [*VARIANTS[name], *overrides])
    if name == "baseline":
        baseline = load_config(packaged_config("models/span_baseline.yaml"))
        cfg.model = OmegaConf.merge(baseline.model, {"video_dim": cfg.model.video_dim})
        cfg.loss = baseline.loss
        again = [o for o in overrides if parse_override(o).key.startswith(("model.", "loss."))]
        cfg = apply_overrides(cfg, again, source=f"{config} with the span baseline's model and loss "
                                                 "(configs/models/span_baseline.yaml)")
    return cfg


def same_run(work: Path, cfg: DictConfig) -> bool:
    """Whether ``work`` holds a finished run (``metrics.json``) trained with exactly ``cfg`` (its saved,
    resolved ``config.yaml``): only such a run may stand in for the one asked for."""
    saved = work / "config.yaml"
    if not (work / "metrics.json").is_file() or not saved.is_file():
        return False
    return to_plain(OmegaConf.load(saved)) == to_plain(cfg)


def run_dir(work_root: Path, name: str, seed: int) -> Path:
    return work_root / name / f"seed{seed}"


def run_ablation(config: str | Path, work_root: str | Path, overrides: Sequence[str] = (),
                 variants: Sequence[str] = tuple(VARIANTS), seeds: Sequence[int] = SEEDS,
                 resume: bool = True) -> dict[str, str | None]:
    """Train each variant and seed into ``<work_root>/<variant>/seed<k>``; returns the error of each failed run
    (None = done). With ``resume``, a finished run trained with the very config asked for is kept, so an
    interrupted ablation picks up where it stopped; one trained with another config is trained again."""
    work_root = Path(work_root)
    work_root.mkdir(parents=True, exist_ok=True)
    outcome: dict[str, str | None] = {}
    for name in variants:
        for seed in seeds:
            key, work = f"{name}/seed{seed}", run_dir(work_root, name, seed)
            try:
                cfg = variant_config(config, name, [*overrides, f"train.seed={seed}"])
                if resume and same_run(work, cfg):
                    log.info("[ablation] %s: done before with this config, kept", key)
                    outcome[key] = None
                    continue
                if (work / "metrics.json").is_file():
                    log.info("[ablation] %s: the run there was trained with another config; training again", key)
                log.info("[ablation] %s: %s", key, " ".join(VARIANTS[name]) or "(as configured)")
                run_training(cfg, work, overwrite=True, progress=False)
                outcome[key] = None
            except GroundingError as err:
                outcome[key] = str(err)
                log.error("[ablation] %s failed: %s", key, err)
    return outcome


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def ablation_table(work_root: str | Path, variants: Sequence[str], seeds: Sequence[int], split: str = "test",
                   metrics: Sequence[str] = TABLE_METRICS) -> pd.DataFrame:
    """One row per variant: mean ± standard deviation over the seeds that finished, their count, and the
    parameter count."""
    rows: dict[str, dict[str, Any]] = {}
    for name in variants:
        runs = [load_metrics(run_dir(Path(work_root), name, s)) for s in seeds
                if (run_dir(Path(work_root), name, s) / "metrics.json").is_file()]
        row: dict[str, Any] = {m: _cell([r[f"{split}/{m}"] for r in runs if f"{split}/{m}" in r]) for m in metrics}
        row["seeds"] = len(runs)
        row["parameters"] = f"{runs[0]['parameters'] / 1e6:.2f}M" if runs and "parameters" in runs[0] else "-"
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "variant"
    return table


def prior_rows(data_root: str | Path, metrics: Sequence[str] = TABLE_METRICS) -> pd.DataFrame:
    """What predictors that never see the video reach on the same test split (``grounding.synthetic.shortcuts``):
    the keyword-position prior and the text-only regressor, R1@0.5 only."""
    audit = audit_charades_folder(data_root)
    rows = {}
    for name, label in (("keyword_prior", "prior (keyword position, no video)"), ("text_only", "text only (no video)")):
        row = {m: "-" for m in metrics}
        row["R1@0.5"] = f"{audit[name]['all']:.2f}"
        for tag in ("plain", "temporal", "novel"):
            if tag in audit[name]:
                row[f"{tag}/R1@0.5"] = f"{audit[name][tag]:.2f}"
        row["seeds"], row["parameters"] = "-", "-"
        rows[label] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "variant"
    return table


def ablation_summary(table: pd.DataFrame, failed: dict[str, str] | None = None) -> StudySummary:
    """The table as ``ablation.md`` and ``ablation.csv``; ``ablation.json`` holds it by variant and the runs
    that failed (``run_ablation``'s errors)."""
    rows = table.reset_index().to_dict(orient="records")
    columns = [table.index.name or "variant", *map(str, table.columns)]
    results = {"variants": {str(row[columns[0]]): {k: v for k, v in row.items() if k != columns[0]} for row in rows},
               "failed": dict(failed or {})}
    return StudySummary(results, to_markdown(table) + "\n", {"ablation.csv": Table(columns, rows)},
                        results_file="ablation.json", markdown_file="ablation.md")
