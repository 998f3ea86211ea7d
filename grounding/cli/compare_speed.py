"""Compare the CPU speed of two checkouts in one process, alternating their steps (robust to machine noise).

    git worktree add /tmp/before <commit>
    python tools/compare_speed.py /tmp/before . [--rounds 30] [--loop-optimizer-before]

Prints, per checkout, training queries/s (batch 32), inference queries/s (batch 128) and the latency of
one query (forward + decoding, one thread): median and best over the rounds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grounding.bench.compare import compare, load_version
from grounding.errors import exit_cleanly_on_user_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path, help="checkout measured first in each round")
    parser.add_argument("after", type=Path, help="checkout measured second in each round")
    parser.add_argument("--shape", default="charades_sta")
    parser.add_argument("--model", default="ccman", choices=["ccman", "span_baseline"])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--loop-optimizer-before", action="store_true",
                        help="the per-parameter AdamW loop for 'before' (what the trainer used before fused AdamW)")
    return parser.parse_args(argv)


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    versions = {
        f"before ({args.before})": load_version(args.before.resolve(), args.shape, args.model, not args.loop_optimizer_before),
        f"after ({args.after})": load_version(args.after.resolve(), args.shape, args.model, True),
    }
    results = compare(versions, args.rounds)
    for name, r in results.items():
        print(f"{name}: train {r['train_queries_per_s']['median']:.0f} q/s (best {r['train_queries_per_s']['best']:.0f}) | "
              f"infer b128 {r['infer_queries_per_s']['median']:.0f} q/s | one query "
              f"{r['latency_ms']['median']:.2f} ms (best {r['latency_ms']['best']:.2f})")
    print(json.dumps(results), file=sys.stderr)
    return 0
