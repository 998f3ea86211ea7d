#!/usr/bin/env python
"""See ``grounding/api/cli.py`` (also installed as the console script ``grounding-ground``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grounding.api.cli import ground_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(ground_main())
