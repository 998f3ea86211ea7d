#!/usr/bin/env python
"""Extract clip features from raw videos (or query text features from an annotation file).

A thin wrapper: the tool lives in grounding/cli/extract_features.py and is also the `grounding-extract` command.
"""

import sys

from grounding.cli.extract_features import main

if __name__ == "__main__":
    sys.exit(main())
