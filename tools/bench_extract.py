#!/usr/bin/env python
"""Measure feature-extraction speed (videos/s, clip features/s) with random CLIP-sized models.

A thin wrapper: the tool lives in grounding/cli/bench_extract.py and is also the `grounding-bench-extract` command.
"""

import sys

from grounding.cli.bench_extract import main

if __name__ == "__main__":
    sys.exit(main())
