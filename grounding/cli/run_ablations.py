"""Train the CCMAN ablation variants (full, coarse only, fine only, no focus, no alignment, baseline) and
print one results table.

    python tools/run_ablations.py --config configs/charades_sta.yaml --work-root work_dirs/ablation data.root=data/synthetic
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grounding.bench.ablation import TABLE_METRICS, VARIANTS, run_ablation, variant_config
from grounding.errors import GroundingError, exit_cleanly_on_user_errors
from grounding.eval.results_table import collect_results, to_markdown, write_table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--work-root", required=True, help="one work dir per variant is made below it")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("overrides", nargs="*", help="overrides applied to every variant, e.g. data.root=...")
    return parser.parse_args(argv)


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name in args.variants:  # a bad override fails here, once, before any variant trains
        variant_config(args.config, name, args.overrides)
    errors = run_ablation(args.config, args.work_root, args.overrides, args.variants)
    done = [name for name in args.variants if errors.get(name) is None]
    if not done:
        raise GroundingError(f"every variant failed (first: {next(iter(errors.values()))}); see "
                             f"{args.work_root}/<variant>/train.log")
    table = collect_results([Path(args.work_root) / name for name in done], TABLE_METRICS)
    write_table(table, Path(args.work_root) / "ablation.md")
    write_table(table, Path(args.work_root) / "ablation.csv")
    print(to_markdown(table))
    failed = sorted(set(args.variants) - set(done))
    if failed:
        for name in failed:
            print(f"failed: {name}: {errors[name]} (see {args.work_root}/{name}/train.log)", file=sys.stderr)
    return 1 if failed else 0
