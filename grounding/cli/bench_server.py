"""The web app under load and faults (see grounding/api/bench_server.py); the last stdout line is JSON.

    python tools/bench_server.py [--clients 8] [--requests 10] [--long-seconds 600]
"""

from __future__ import annotations

import argparse
import json

from grounding.api.bench_server import run
from grounding.errors import exit_cleanly_on_user_errors


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients grounding cached videos (default 8)")
    parser.add_argument("--requests", type=int, default=10, help="requests per client (default 10)")
    parser.add_argument("--long-seconds", type=int, default=600,
                        help="length of the video uploaded and encoded meanwhile (default 600 s)")
    args = parser.parse_args(argv)
    results = run(args.clients, args.requests, args.long_seconds)
    for key, value in results.items():
        print(f"{key:>32}: {value}")
    print(json.dumps(results))
    return 0
