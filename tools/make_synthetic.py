#!/usr/bin/env python
"""Write the built-in synthetic benchmark (Charades-STA or QVHighlights layout) to a folder.

A thin wrapper: the tool lives in grounding/cli/make_synthetic.py and is also the `grounding-make-synthetic` command.
"""

import sys

from grounding.cli.make_synthetic import main

if __name__ == "__main__":
    sys.exit(main())
