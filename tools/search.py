#!/usr/bin/env python
"""Find moments in an indexed video library.

A thin wrapper: the tool lives in grounding/cli/search.py and is also the `grounding-search` command.
"""

import sys

from grounding.cli.search import main

if __name__ == "__main__":
    sys.exit(main())
