#!/usr/bin/env python
"""A local web page for grounding sentences in videos.

A thin wrapper: the tool lives in grounding/cli/serve.py and is also the `grounding-serve` command.
"""

import sys

from grounding.cli.serve import main

if __name__ == "__main__":
    sys.exit(main())
