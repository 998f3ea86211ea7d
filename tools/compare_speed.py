#!/usr/bin/env python
"""Compare the CPU speed of two checkouts in one process, alternating their steps (robust to machine noise).

A thin wrapper: the tool lives in grounding/cli/compare_speed.py and is also the `grounding-compare-speed` command.
"""

import sys

from grounding.cli.compare_speed import main

if __name__ == "__main__":
    sys.exit(main())
