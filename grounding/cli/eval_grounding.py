"""Evaluate temporal-grounding predictions.

Standalone mode scores a predictions JSONL against a ground-truth JSONL with nothing but numpy:

    python tools/eval_grounding.py --predictions PRED.jsonl --ground-truth GT.jsonl [--dataset NAME]

It prints a human summary, then the metrics as one JSON object on the last line of stdout.
Video corpus moment retrieval (``tools/search.py`` predictions, ``pred_moments``) is scored with
``--task vcmr``: VCMR-R{1,5,10,100}@{0.5,0.7} and VR-R{1,5,10} (grounding/eval/vcmr.py).

Checkpoint mode predicts a split with a trained model, writes the predictions file and prints metrics:

    python tools/eval_grounding.py --config CFG --checkpoint CKPT --split SPLIT --out PRED.jsonl [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grounding.errors import GroundingError, exit_cleanly_on_user_errors
from grounding.eval.evaluate import (
    MULTI_WINDOW_DATASETS,
    SINGLE_WINDOW_DATASETS,
    evaluate,
    format_summary,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    standalone = parser.add_argument_group("standalone mode")
    standalone.add_argument("--predictions", help="predictions JSONL (one line per query)")
    standalone.add_argument("--ground-truth", help="ground truth in the native JSONL format")
    standalone.add_argument(
        "--dataset",
        choices=sorted(MULTI_WINDOW_DATASETS + SINGLE_WINDOW_DATASETS),
        help="metric set to use; by default QVHighlights metrics when the ground truth has saliency "
        "scores or several windows per query, else R@n/mIoU",
    )
    standalone.add_argument("--task", choices=("grounding", "vcmr"), default="grounding",
                            help="grounding (one video per query, pred_relevant_windows) or vcmr (corpus search, "
                            "pred_moments from tools/search.py)")
    checkpoint = parser.add_argument_group("checkpoint mode")
    checkpoint.add_argument("--config", help="experiment YAML config")
    checkpoint.add_argument("--checkpoint", help="model checkpoint (.pt)")
    checkpoint.add_argument("--split", help="split to predict on, e.g. test")
    checkpoint.add_argument("--out", help="where to write the predictions JSONL")
    checkpoint.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    checkpoint.add_argument("overrides", nargs="*",
                            help="config overrides, key=value with dotted paths (+key=value adds a new key)")
    return parser.parse_args(argv)


def run_standalone(args: argparse.Namespace) -> int:
    """Score ``--predictions`` against ``--ground-truth``; the last stdout line is the metrics JSON."""
    if args.task == "vcmr":
        from grounding.eval.vcmr import evaluate_vcmr

        if args.dataset:
            raise GroundingError("--dataset picks a grounding metric set; leave it out with --task vcmr")
        metrics = evaluate_vcmr(args.predictions, args.ground_truth)
        print(format_summary(metrics))
        print(json.dumps(metrics))
        return 0
    metrics = evaluate(args.predictions, args.ground_truth, args.dataset,
                       warn=lambda message: print(f"warning: {message}", file=sys.stderr))
    print(format_summary(metrics))
    print(json.dumps(metrics))
    return 0


def run_checkpoint(args: argparse.Namespace) -> int:
    """Predict ``--split`` with ``--checkpoint``; write ``--out``; the last stdout line is the metrics JSON."""
    from grounding.config import load_config
    from grounding.engine.evaluate_checkpoint import evaluate_checkpoint
    from grounding.synthetic.prepare import prepare_data

    missing = [flag for flag, value in (("--config", args.config), ("--checkpoint", args.checkpoint),
                                        ("--split", args.split), ("--out", args.out)) if not value]
    if missing:
        raise GroundingError(f"checkpoint mode needs {', '.join(missing)} as well")
    cfg = load_config(args.config, args.overrides)
    if Path(args.checkpoint).is_file():  # else evaluate_checkpoint says so, before any data is written for nothing
        prepare_data(cfg)
    metrics = evaluate_checkpoint(cfg, args.checkpoint, args.split, args.out, args.overwrite)
    if metrics.get("ground_truth") is False:
        print(f"split '{args.split}' has no ground-truth windows (hidden labels): predictions of "
              f"{metrics['num_queries']} queries written to {args.out}; there is nothing to score")
        print(json.dumps(metrics))
        return 0
    print(format_summary(metrics))
    print(f"predictions written to {args.out}")
    print(json.dumps(metrics))
    return 0


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    checkpoint_mode = any(v for v in (args.config, args.checkpoint, args.split, args.out, args.overrides))
    if checkpoint_mode:
        if args.task == "vcmr":
            raise GroundingError("--task vcmr scores a search predictions file: run tools/search.py, then "
                                 "--predictions PRED.jsonl --ground-truth GT.jsonl --task vcmr")
        if args.predictions or args.ground_truth:
            raise GroundingError("use either checkpoint mode (--config ...) or standalone mode (--predictions ...)")
        return run_checkpoint(args)
    if not (args.predictions and args.ground_truth):
        raise GroundingError("give both --predictions PRED.jsonl and --ground-truth GT.jsonl")
    return run_standalone(args)
