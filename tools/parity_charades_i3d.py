#!/usr/bin/env python
"""Parity of recipe charades_i3d with VSLNet's reference extraction (frames, backbone inputs, features).

A thin wrapper: the tool lives in grounding/cli/parity_charades_i3d.py and is also the
`grounding-parity-charades-i3d` command.
"""

import sys

from grounding.cli.parity_charades_i3d import main

if __name__ == "__main__":
    sys.exit(main())
