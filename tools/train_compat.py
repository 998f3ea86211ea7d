#!/usr/bin/env python
"""Run the compatibility study: python tools/train_compat.py --config CONFIG --work-dir DIR [--overwrite] [key=value ...].

A thin wrapper: the tool lives in grounding/cli/train_compat.py and is also the `grounding-train-compat` command.
"""

import sys

from grounding.cli.train_compat import main

if __name__ == "__main__":
    sys.exit(main())
