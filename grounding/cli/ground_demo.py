"""Build the newcomer demo (grounding/api/demo.py): a tiny random CLIP saved locally, a few videos, their
features, and a CCMAN trained on them, in under a minute on a CPU. The last stdout line is JSON.

    python tools/ground_demo.py --out work_dirs/ground_demo [--overwrite]
"""

from __future__ import annotations

import argparse
import json

from grounding.api.demo import build_demo
from grounding.errors import exit_cleanly_on_user_errors


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="work_dirs/ground_demo", help="the folder to build in")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--overwrite", action="store_true", help="rebuild a folder that is not empty")
    args = parser.parse_args(argv)
    paths = build_demo(args.out, args.epochs, args.overwrite)
    print(f"random CLIP: {paths['clip']}\ntrained checkpoint: {paths['run']}")
    print(json.dumps(paths))
    return 0
