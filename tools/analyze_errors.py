#!/usr/bin/env python
"""Error analysis of a run on a synthetic benchmark: where each top-1 window lands, per query tag.

A thin wrapper: the tool lives in grounding/cli/analyze_errors.py and is also the `grounding-analyze-errors` command.
"""

import sys

from grounding.cli.analyze_errors import main

if __name__ == "__main__":
    sys.exit(main())
