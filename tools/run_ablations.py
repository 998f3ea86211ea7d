#!/usr/bin/env python
"""Train the CCMAN ablation variants (full, coarse only, fine only, no focus, no alignment, baseline) and.

A thin wrapper: the tool lives in grounding/cli/run_ablations.py and is also the `grounding-ablations` command.
"""

import sys

from grounding.cli.run_ablations import main

if __name__ == "__main__":
    sys.exit(main())
