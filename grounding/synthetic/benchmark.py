"""Writing a synthetic benchmark folder: reuse it when it already holds this spec, never clobber a
folder that is not a synthetic benchmark, and mark it complete only once every file is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from grounding.errors import GroundingError
from grounding.synthetic.charades import CharadesGenerator
from grounding.synthetic.long import LongVideoGenerator
from grounding.synthetic.qvhighlights import HighlightGenerator
from grounding.synthetic.spec import SyntheticSpec
from grounding.synthetic.world import Layout, write_splits

GENERATOR_VERSION = 5  # v5: events and present/absent sidecars (same features and annotations as v4); bump when the generator's output changes, so old folders are regenerated


GENERATORS: dict[str, type] = {"charades": CharadesGenerator, "qvhighlights": HighlightGenerator,
                               "long": LongVideoGenerator}


def generator_for(spec: SyntheticSpec) -> Layout:
    """The generator of ``spec.layout``, seeded by ``spec.seed``."""
    return GENERATORS[spec.layout](spec)


def read_spec(root: str | Path) -> SyntheticSpec:
    """The spec a complete synthetic benchmark folder was written from (its ``synthetic_spec.json``); an
    error when the folder is incomplete or was written by another generator version, whose videos this
    code would not make again."""
    marker = Path(root) / "synthetic_spec.json"
    if not marker.is_file() or not (Path(root) / "counts.json").is_file():
        raise GroundingError(f"{root} is not a complete synthetic benchmark (no synthetic_spec.json / counts.json)")
    fields = json.loads(marker.read_text())
    version = fields.pop("generator_version", None)
    if version != GENERATOR_VERSION:
        raise GroundingError(f"{root} was written by synthetic generator version {version}, this code is version "
                             f"{GENERATOR_VERSION}; write it again (tools/make_synthetic.py) to analyse it")
    return SyntheticSpec(**fields)


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


__all__ = ["GENERATORS", "GENERATOR_VERSION", "generator_for", "read_spec", "write_synthetic"]
