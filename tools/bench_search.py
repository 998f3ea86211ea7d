#!/usr/bin/env python
"""Scale of moment search on this machine: build throughput, query latency, memory per video.

A thin wrapper: the tool lives in grounding/cli/bench_search.py and is also the `grounding-bench-search` command.
"""

import sys

from grounding.cli.bench_search import main

if __name__ == "__main__":
    sys.exit(main())
