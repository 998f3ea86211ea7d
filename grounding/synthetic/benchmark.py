"""Writing a synthetic benchmark folder: reuse it when it already holds this spec, never clobber a
folder that is not a synthetic benchmark, and mark it complete only once every file is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from grounding.errors import GroundingError
from grounding.synthetic.charades import CharadesGenerator
from grounding.synthetic.qvhighlights import HighlightGenerator
from grounding.synthetic.spec import SyntheticSpec
from grounding.synthetic.world import Layout, write_splits

GENERATOR_VERSION = 5  # v5: events and present/absent sidecars (same features and annotations as v4); bump when the generator's output changes, so old folders are regenerated


def generator_for(spec: SyntheticSpec) -> Layout:
    """The generator of ``spec.layout``, seeded by ``spec.seed``."""
    return HighlightGenerator(spec) if spec.layout == "qvhighlights" else CharadesGenerator(spec)


def write_synthetic(root: str | Path, spec: SyntheticSpec | None = None, overwrite: bool = False,
                    progress: bool = True) -> dict[str, int]:
    """Write the benchmark under ``root`` in ``spec.layout``; returns query counts per split.

    A folder already holding this exact benchmark is reused; one holding another synthetic benchmark
    (different spec or generator version) is rewritten; any other non-empty folder is left alone
    unless ``overwrite``.
    """
    spec = spec or SyntheticSpec()
    root = Path(root)
    marker = root / "synthetic_spec.json"
    wanted = {**spec.marker(), "generator_version": GENERATOR_VERSION}
    if root.exists() and any(root.iterdir()) and not overwrite:
        if not marker.is_file():
            raise GroundingError(f"{root} exists and is not a synthetic benchmark; pass --overwrite or another folder")
        if json.loads(marker.read_text()) == wanted and (root / "counts.json").is_file():
            return json.loads((root / "counts.json").read_text())
    if root.exists() and marker.is_file():
        for sub in ("annotations", "features"):
            shutil.rmtree(root / sub, ignore_errors=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "features").mkdir(parents=True, exist_ok=True)
    (root / "counts.json").unlink(missing_ok=True)  # written last: its presence means "complete"
    marker.write_text(json.dumps(wanted, indent=1))
    counts = write_splits(root, spec, generator_for(spec), progress)
    (root / "counts.json").write_text(json.dumps(counts))
    return counts


__all__ = ["GENERATOR_VERSION", "generator_for", "write_synthetic"]
