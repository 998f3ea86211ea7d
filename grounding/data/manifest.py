"""The feature manifest: ``manifest.jsonl`` beside a feature folder, one JSON line per finished item.

The extractor (``grounding.extract``) appends a line after each item's features are on disk; the data
layer reads it back to learn how the features were made (``grounding.data.provenance``), and a resumed
extraction reads it to skip what is done. The format lives here, with its reader, so the data layer
never needs the extractor. A video's line holds ``vid``, ``video``, ``clips``, ``duration``, ``fps``,
``num_frames``, ``backbone``, ``model``, ``feature_dim``, ``seconds_per_clip``, ``frames_per_clip``,
``clip_count``, ``format`` and ``file``; a query's line ``qid``, ``vid``, ``query``, ``tokens``,
``feature_dim``, ``backbone``, ``model`` and ``file``. A later line for the same id replaces an earlier one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MANIFEST = "manifest.jsonl"


def append_manifest(folder: str | Path, record: dict[str, Any]) -> None:
    """Append one line with a single ``write`` call, so that shards sharing a folder never interleave."""
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(Path(folder) / MANIFEST, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_manifest(folder: str | Path, key: str = "vid") -> dict[str, dict[str, Any]]:
    """The manifest's records by ``key`` (the last line wins); empty if there is no manifest yet.

    A line cut short by a crash is skipped (its item is then redone)."""
    path = Path(folder) / MANIFEST
    records: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return records
    with path.open() as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and key in record:
                records[str(record[key])] = record
    return records
