#!/usr/bin/env python
"""Compare a feature recipe with its reference pipeline on one video.

A thin wrapper: the tool lives in grounding/cli/compare_recipe.py.
"""

import sys

from grounding.cli.compare_recipe import main

if __name__ == "__main__":
    sys.exit(main())
