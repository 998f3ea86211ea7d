"""Run the compatibility study: python tools/train_compat.py --config CONFIG --work-dir DIR [--overwrite] [key=value ...]

Trains (or loads) the old model, trains one new model per method in compat.run, the forward adapter,
and writes results.csv, hot_refresh.csv, hot_refresh.png, summary.md and tb/ into DIR
(see docs/compatibility.md). With compat.backbone=ccman the old and new models are CCMANs and the study
is scored by corpus moment search (VCMR; grounding/studies/ccman_study.py).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from grounding.config import load_config
from grounding.errors import exit_cleanly_on_user_errors
from grounding.studies.compat_study import run_study


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML config with a compat section (see configs/compat/)")
    parser.add_argument("--work-dir", required=True, help="where results, checkpoints/, tb/ and the summary go")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing study in --work-dir")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. compat.train.epochs=4")
    return parser.parse_args(argv)


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    command = "python tools/train_compat.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    work_dir = Path(args.work_dir)
    if (cfg.get("compat") or {}).get("backbone", "dual_encoder") == "ccman":
        from grounding.studies.ccman_study import run_ccman_study

        result = run_ccman_study(cfg, work_dir, overwrite=args.overwrite, command=command)
        print((work_dir / "ccman_summary.md").read_text())
        print(f"outputs: {work_dir}/ccman_results.csv, ccman_hot_refresh.csv, ccman_summary.md "
              f"({result['seconds'] / 60:.1f} min)")
        return 0
    study = run_study(cfg, work_dir, overwrite=args.overwrite, command=command)
    print((work_dir / "summary.md").read_text())
    print(f"outputs: {work_dir}/results.csv, hot_refresh.csv, hot_refresh.png, summary.md; "
          f"TensorBoard: tensorboard --logdir {work_dir}/tb ({study.seconds / 60:.1f} min)")
    return 0
