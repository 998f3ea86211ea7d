#!/usr/bin/env python
"""Train a grounding model: python tools/train_grounding.py --config CONFIG --work-dir DIR [key=value ...].

A thin wrapper: the tool lives in grounding/cli/train_grounding.py and is also the `grounding-train` command.
"""

import sys

from grounding.cli.train_grounding import main

if __name__ == "__main__":
    sys.exit(main())
