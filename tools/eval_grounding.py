#!/usr/bin/env python
"""Evaluate temporal-grounding predictions.

A thin wrapper: the tool lives in grounding/cli/eval_grounding.py and is also the `grounding-eval` command.
"""

import sys

from grounding.cli.eval_grounding import main

if __name__ == "__main__":
    sys.exit(main())
