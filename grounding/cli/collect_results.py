"""Collect the metrics.json of several work dirs into one table (Markdown on stdout, or --out .md/.csv)."""

from __future__ import annotations

import argparse

from grounding.errors import exit_cleanly_on_user_errors
from grounding.eval.results_table import collect_results, to_markdown, write_table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--work-dirs", nargs="+", required=True, help="training work dirs holding metrics.json"
    )
    parser.add_argument("--out", help="write the table here instead of stdout (.md or .csv)")
    parser.add_argument(
        "--metrics", nargs="+", help="columns to keep, in order (nested names with '/', e.g. full/MR-mAP/0.5)"
    )
    return parser.parse_args(argv)


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    table = collect_results(args.work_dirs, args.metrics)
    if args.out:
        write_table(table, args.out)
        print(f"wrote {len(table)} runs x {len(table.columns)} metrics to {args.out}")
    else:
        print(to_markdown(table))
    return 0
