#!/usr/bin/env python
"""Ground sentences in your own videos.

A thin wrapper: the tool lives in grounding/cli/ground.py and is also the `grounding-ground` command.
"""

import sys

from grounding.cli.ground import main

if __name__ == "__main__":
    sys.exit(main())
