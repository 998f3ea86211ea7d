#!/usr/bin/env python
"""The compatibility claims over seeds and regimes: python tools/compat_regimes.py --config CONFIG --work-dir DIR [key=value ...].

A thin wrapper: the tool lives in grounding/cli/compat_regimes.py.
"""

import sys

from grounding.cli.compat_regimes import main

if __name__ == "__main__":
    sys.exit(main())
