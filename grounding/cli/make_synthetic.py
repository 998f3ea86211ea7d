"""Write the built-in synthetic benchmark (Charades-STA layout) to a folder.

    python tools/make_synthetic.py --out data/synthetic [--train-videos 1000 --test-videos 300 --seed 0 ...]

It prints the shortcut audit (``grounding.data.shortcuts``): what video-free predictors reach per query
tag. Then train on it with the real Charades-STA config: ``--config configs/charades_sta.yaml data.root=data/synthetic``.
"""

from __future__ import annotations

import argparse
import dataclasses

from grounding.data.shortcuts import audit_charades_folder, format_audit
from grounding.data.synthetic import SyntheticSpec, write_synthetic
from grounding.errors import exit_cleanly_on_user_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to write (annotations/, features/)")
    parser.add_argument("--overwrite", action="store_true", help="replace a folder that is not a synthetic benchmark")
    for field in dataclasses.fields(SyntheticSpec):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default,
                            help=f"(default {field.default})")
    return parser.parse_args(argv)


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = SyntheticSpec(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SyntheticSpec)})
    counts = write_synthetic(args.out, spec, overwrite=args.overwrite)
    print(f"synthetic benchmark in {args.out}: {counts['train']} train / {counts['test']} test queries")
    print("shortcut audit: R1@0.5 (%) on the test split of predictors that never see the video "
          "(keyword_occurrence: % of relational queries whose occurrence a keyword-only rule picks)")
    print(format_audit(audit_charades_folder(args.out)))
    print(f"train: python tools/train_grounding.py --config configs/charades_sta.yaml --work-dir work_dirs/syn "
          f"data.root={args.out} model.video_dim={spec.feature_dim}")
    return 0
