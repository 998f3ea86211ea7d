"""Convert a benchmark's published annotation file into the native JSONL record format."""

from __future__ import annotations

import argparse
from pathlib import Path

from grounding.data.annotations import ANNOTATION_READERS, read_annotations
from grounding.data.records import clean_records, write_jsonl
from grounding.errors import GroundingError, exit_cleanly_on_user_errors


def flag_fix(option: str, value: str) -> str:
    """Errors name this tool's own flag (``--empty-windows drop``), not the training config key."""
    return f"pass --{option.replace('_', '-')} {value}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True, choices=[n for n in ANNOTATION_READERS.names() if n != "native"])
    parser.add_argument("--input", required=True, help="the published annotation file")
    parser.add_argument("--durations", help="Charades-STA only: Charades_v1_<split>.csv or a {vid: {duration}} JSON")
    parser.add_argument("--out", required=True, help="output JSONL")
    parser.add_argument("--empty-windows", default="keep", choices=["keep", "drop", "error"])
    parser.add_argument("--missing-duration", default="drop", choices=["drop", "error"])
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return parser.parse_args(argv)


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise GroundingError(f"{out} exists; pass --overwrite to replace it")
    records = read_annotations(args.dataset, args.input, args.durations)
    records, report = clean_records(records, args.empty_windows, args.missing_duration, source=args.input,
                                    fix=flag_fix)
    n = write_jsonl(records, out)
    print(report.summary())
    for line in report.details():
        print(f"  {line}")
    print(f"wrote {n} queries over {len({r.vid for r in records})} videos to {out}")
    return 0
