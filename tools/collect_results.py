#!/usr/bin/env python
"""Collect the metrics.json of several work dirs into one table (Markdown on stdout, or --out .md/.csv).

A thin wrapper: the tool lives in grounding/cli/collect_results.py and is also the `grounding-collect-results` command.
"""

import sys

from grounding.cli.collect_results import main

if __name__ == "__main__":
    sys.exit(main())
