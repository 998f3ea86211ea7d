#!/usr/bin/env python
"""Move an index to a new model without re-indexing it at once.

A thin wrapper: the tool lives in grounding/cli/upgrade_index.py and is also the `grounding-upgrade-index` command.
"""

import sys

from grounding.cli.upgrade_index import main

if __name__ == "__main__":
    sys.exit(main())
