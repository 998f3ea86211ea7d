#!/usr/bin/env python
"""Index a video library for moment search.

A thin wrapper: the tool lives in grounding/cli/build_index.py and is also the `grounding-build-index` command.
"""

import sys

from grounding.cli.build_index import main

if __name__ == "__main__":
    sys.exit(main())
