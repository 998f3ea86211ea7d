"""Train a grounding model: python tools/train_grounding.py --config CONFIG --work-dir DIR [key=value ...]

Also launchable with torchrun (DistributedDataParallel; NCCL on GPUs, gloo on CPU). A config with a
``data.synthetic`` section gets its benchmark written here first (rank 0 only), never by the trainer.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from grounding.config import load_config
from grounding.engine.trainer import Trainer, resolve_run_config, summary
from grounding.errors import exit_cleanly_on_user_errors
from grounding.synthetic.prepare import prepare_data


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML experiment config (see configs/)")
    parser.add_argument("--work-dir", required=True, help="where config.yaml, checkpoints/, tb/ and results go")
    parser.add_argument("--resume", action="store_true", help="continue the run in --work-dir from checkpoints/last.pt")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run in --work-dir")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs and batch jobs)")
    parser.add_argument("overrides", nargs="*",
                        help="dotted config overrides, e.g. train.epochs=5 data.root=/x (+key=value adds a new key)")
    return parser.parse_args(argv)


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # one config for the whole run, decided first: with --resume the saved one, also for the data it prepares
    cfg, resume_from = resolve_run_config(load_config(args.config, args.overrides), Path(args.work_dir), args.resume,
                                          args.overwrite)
    prepare_data(cfg)
    trainer = Trainer(cfg, args.work_dir, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
                      resume_from=resume_from)
    results = trainer.fit()
    if trainer.dist.is_main:
        print(summary(results, Path(args.work_dir)))
    return 0
