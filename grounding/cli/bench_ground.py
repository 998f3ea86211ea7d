"""Speed of the grounding API on this machine (see grounding/api/bench.py); the last stdout line is JSON.

    python tools/bench_ground.py [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import json

from grounding.api.bench import run
from grounding.errors import exit_cleanly_on_user_errors


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, a 15 s video for the end-to-end figure")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    results = run(args.quick, args.threads)
    for key, value in results.items():
        print(f"{key:>40}: {value}")
    print(json.dumps(results))
    return 0
