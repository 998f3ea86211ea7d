#!/usr/bin/env python
"""Speed of the grounding API on this machine.

A thin wrapper: the tool lives in grounding/cli/bench_ground.py and is also the `grounding-bench-ground` command.
"""

import sys

from grounding.cli.bench_ground import main

if __name__ == "__main__":
    sys.exit(main())
