#!/usr/bin/env python
"""Convert a benchmark's published annotation file into the native JSONL record format.

A thin wrapper: the tool lives in grounding/cli/convert_annotations.py and is also the `grounding-convert` command.
"""

import sys

from grounding.cli.convert_annotations import main

if __name__ == "__main__":
    sys.exit(main())
