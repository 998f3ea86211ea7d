"""The per-user cache folder: ``$GROUNDING_CACHE_DIR``, else ``$XDG_CACHE_HOME/grounding``, else ``~/.cache/grounding``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    configured = os.environ.get("GROUNDING_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "grounding"
