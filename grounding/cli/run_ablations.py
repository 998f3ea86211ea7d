"""Train the CCMAN ablation variants over several seeds and print one table (mean ± std per cell, the
video-free priors, the parameter counts).

    python tools/run_ablations.py --config configs/charades_sta.yaml --work-root work_dirs/ablation data.root=data/synthetic

Each variant changes one thing (grounding/studies/ablation.py). A rerun keeps the runs that finished.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from grounding.errors import GroundingError, exit_cleanly_on_user_errors
from grounding.eval.results_table import to_markdown
from grounding.studies.ablation import (
    SEEDS,
    VARIANTS,
    ablation_summary,
    ablation_table,
    prior_rows,
    run_ablation,
    variant_config,
)
from grounding.synthetic.prepare import prepare_data


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--work-root", required=True, help="one work dir per variant and seed is made below it")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS), help="train.seed of each repeat (default 0 1 2)")
    parser.add_argument("--no-priors", action="store_true", help="leave out the video-free prior rows")
    parser.add_argument("overrides", nargs="*", help="overrides applied to every variant, e.g. data.root=...")
    return parser.parse_args(argv)


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configs = {name: variant_config(args.config, name, args.overrides) for name in args.variants}  # bad overrides fail here
    for cfg in configs.values():  # the variants change the model or the loss, so this writes once at most
        prepare_data(cfg)
    errors = run_ablation(args.config, args.work_root, args.overrides, args.variants, args.seeds)
    failed = {key: err for key, err in errors.items() if err is not None}
    if len(failed) == len(errors):
        raise GroundingError(f"every run failed (first: {next(iter(failed.values()))}); see "
                             f"{args.work_root}/<variant>/seed<k>/train.log")
    table = ablation_table(args.work_root, args.variants, args.seeds)
    data_root = Path(str(next(iter(configs.values())).data.root))
    if not args.no_priors and (data_root / "annotations").is_dir():
        table = pd.concat([table, prior_rows(data_root)])
    ablation_summary(table, failed).write(args.work_root)  # ablation.md, ablation.csv, ablation.json
    print(to_markdown(table))
    for key, err in failed.items():
        print(f"failed: {key}: {err} (see {args.work_root}/{key}/train.log)", file=sys.stderr)
    return 1 if failed else 0
