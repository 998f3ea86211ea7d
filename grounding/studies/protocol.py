"""What every study shares, so that two studies differ only in the models they compare.

- **The config section** ``compat`` (``compat_section``), checked once, the same way for both
  compatibility studies.
- **The old model** (``OldModelPlan``): loaded from ``compat.old.checkpoint``, or trained on
  ``compat.old.train_fraction`` of the training queries, drawn with ``compat.old.subset_seed``, from
  its own initialisation seed. One rule, so that the dual-encoder study and the CCMAN study give their
  old models the same queries and their numbers can be set side by side.
- **The summary** (``StudySummary``): every number as JSON, the tables as CSV and a Markdown page,
  each file written atomically (``grounding.atomic``): an interrupted study never leaves a half-written
  result beside a finished one.
- **The training loop**: every model of every study takes the engine's ``TrainStep``: the dual encoder
  in ``grounding.studies.dual_encoder_training``, CCMANs and the ablation's variants through
  ``grounding.engine.trainer``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from grounding.atomic import write_atomic
from grounding.config import to_plain
from grounding.errors import GroundingError

REQUIRED = ("run", "model", "train", "old", "methods", "adapter", "backfill", "eval")


def compat_section(cfg: DictConfig) -> dict[str, Any]:
    """The config's ``compat`` section as a plain dict, checked for the parts the studies read."""
    section = cfg.get("compat")
    if section is None or not any(k in section for k in REQUIRED):  # base/default.yaml's compat.* training keys only
        raise GroundingError("the config has no 'compat' section; start it from configs/compat/default.yaml "
                             "(add it to _base_) as configs/compat/synthetic.yaml does")
    section = to_plain(section)
    missing = [k for k in REQUIRED if k not in section]
    if missing:
        raise GroundingError(f"compat section lacks {', '.join('compat.' + k for k in missing)}; "
                             "see configs/compat/default.yaml")
    unknown = [m for m in section["run"] if m not in section["methods"]]
    if unknown:
        raise GroundingError(f"compat.run names {unknown}, which compat.methods does not define "
                             f"(defined: {', '.join(section['methods'])})")
    return section


@dataclass(frozen=True)
class OldModelPlan:
    """Where a study's old model comes from: a saved checkpoint, or a training run on a seeded share of
    the training queries."""

    checkpoint: Path | None
    train_fraction: float
    subset_seed: int
    seed: int  # the old model's initialisation: another one than the new models'

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> OldModelPlan:
        """From ``compat.old``; the seed is ``compat.old.train.seed``, else ``compat.train.seed + 1``."""
        old = section["old"]
        fraction = float(old.get("train_fraction", 1.0))
        if not 0 < fraction <= 1:
            raise GroundingError(f"compat.old.train_fraction must be in (0, 1], not {fraction}; "
                                 "set it to the share of the training queries the old model sees")
        seed = (old.get("train") or {}).get("seed")
        if seed is None:
            # the same initialisation leaves two independently trained spaces partly aligned, which would
            # flatter every method's cross-test
            seed = int((section.get("train") or {}).get("seed", 0)) + 1
        checkpoint = old.get("checkpoint")
        return cls(Path(checkpoint) if checkpoint else None, fraction, int(old.get("subset_seed", 0)), int(seed))

    def subset(self, num_queries: int) -> torch.Tensor:
        """The training queries (ascending indices) the old model learns from: ``round(fraction * N)``
        of them (at least one), a seeded random draw."""
        count = max(1, int(round(self.train_fraction * num_queries)))
        generator = torch.Generator().manual_seed(self.subset_seed)
        return torch.sort(torch.randperm(num_queries, generator=generator)[:count]).values


@dataclass
class Table:
    """Rows of one CSV file, each a mapping from column name to cell."""

    columns: Sequence[str]
    rows: Sequence[Mapping[str, Any]]

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(self.columns))
        writer.writeheader()
        writer.writerows(self.rows)
        return out.getvalue()


@dataclass
class StudySummary:
    """What a study leaves for its reader, written the same way by every study."""

    results: dict[str, Any]  # every number, for scripts
    markdown: str  # the page a person reads first
    tables: dict[str, Table] = field(default_factory=dict)  # CSV file name -> table
    results_file: str = "metrics.json"
    markdown_file: str = "summary.md"

    def write(self, folder: str | Path) -> list[Path]:
        """Write the tables, the page and the JSON into ``folder`` (each atomically); returns the paths."""
        folder = Path(folder)
        texts = {**{name: table.to_csv() for name, table in self.tables.items()},
                 self.markdown_file: self.markdown, self.results_file: json.dumps(self.results, indent=1)}
        for name, text in texts.items():
            write_atomic(folder / name, lambda fh, text=text: fh.write(text), binary=False)
        return [folder / name for name in texts]
