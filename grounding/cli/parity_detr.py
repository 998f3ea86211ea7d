"""Train Moment-DETR / QD-DETR with the authors' code and with this project on identical inputs; print both.

    python tools/parity_detr.py --out work_dirs/parity \
        --moment-detr-code /work/ref/moment_detr --qd-detr-code /work/ref/QD-DETR \
        --original-deps /work/ref/orig_deps [--seeds 0 1 2 --epochs 20]

The authors' repositories are folders you fetched yourself (jayleicn/moment_detr, wjun0830/QD-DETR);
nothing is downloaded, and a model whose folder is not given (or absent) runs on our side only. Their code
runs unchanged on the CPU through ``grounding/bench/parity_shim/sitecustomize.py`` (see its docstring); it
needs scipy and scikit-learn, tabulate, which this project does not: ``pip install --target DIR scipy scikit-learn tabulate``
and pass ``--original-deps DIR``.
Rows go to ``<out>/parity.jsonl`` as runs finish; the table (mean +- std over seeds) is printed last.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from grounding.bench.parity_detr import ParitySettings, format_table, run_parity
from grounding.errors import exit_cleanly_on_user_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = ParitySettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the shared data, the runs and parity.jsonl")
    parser.add_argument("--models", nargs="+", default=["moment_detr", "qd_detr"], choices=["moment_detr", "qd_detr", "ccman"],
                        help="ccman runs on our side only (the same data and budget, for the comparison table)")
    parser.add_argument("--moment-detr-code", type=Path, default=None, help="a checkout of jayleicn/moment_detr")
    parser.add_argument("--qd-detr-code", type=Path, default=None, help="a checkout of wjun0830/QD-DETR")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", choices=["two_event", "synthetic_qvh"], default=d.data,
                        help="the shared data: a two-event set both learn in minutes, or the synthetic QVHighlights layout")
    for name in ("epochs", "batch_size", "lr", "hidden_dim", "ffn_dim", "heads", "input_dropout", "dropout", "threads"):
        value = getattr(d, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value, help=f"(default {value})")
    parser.add_argument("--original-deps", nargs="*", default=[],
                        help="folders put on the originals' PYTHONPATH (pip install --target DIR scipy scikit-learn tabulate)")
    parser.add_argument("--our-overrides", nargs="*", default=[],
                        help="extra key=value overrides for our side only (e.g. loss.saliency_margin.ties=keep)")
    parser.add_argument("--synthetic", type=json.loads, default=d.synthetic,
                        help="keywords of the data writer, as JSON: write_two_event_set's or SyntheticSpec's "
                             f"(default {json.dumps(d.synthetic)})")
    return parser.parse_args(argv)


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = ParitySettings(**{k: getattr(args, k) for k in ParitySettings.__dataclass_fields__})
    rows = run_parity(args.models, {"moment_detr": args.moment_detr_code, "qd_detr": args.qd_detr_code},
                      args.seeds, settings, args.out)
    print(format_table(rows))
    return 0
