#!/usr/bin/env python
"""Build the newcomer demo: a tiny random CLIP, a few videos, their features and a trained CCMAN.

A thin wrapper: the tool lives in grounding/cli/ground_demo.py and is also the `grounding-ground-demo` command.
"""

import sys

from grounding.cli.ground_demo import main

if __name__ == "__main__":
    sys.exit(main())
