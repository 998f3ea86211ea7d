#!/usr/bin/env python
"""The web app under load and faults on this machine.

A thin wrapper: the tool lives in grounding/cli/bench_server.py and is also the `grounding-bench-server` command.
"""

import sys

from grounding.cli.bench_server import main

if __name__ == "__main__":
    sys.exit(main())
