#!/usr/bin/env python
"""Train Moment-DETR / QD-DETR with the authors' code and with this project on identical inputs; print both.

A thin wrapper: the tool lives in grounding/cli/parity_detr.py.
"""

import sys

from grounding.cli.parity_detr import main

if __name__ == "__main__":
    sys.exit(main())
