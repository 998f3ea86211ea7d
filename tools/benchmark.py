#!/usr/bin/env python
"""Measure training/inference/data-loading/metric/extraction speed at each benchmark's real shapes.

A thin wrapper: the tool lives in grounding/cli/benchmark.py and is also the `grounding-benchmark` command.
"""

import sys

from grounding.cli.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
