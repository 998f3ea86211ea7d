"""Per-query token features for a synthetic benchmark, in the ``precomputed`` text input's format
(``<folder>/<qid>.npz`` with ``features`` (L, D)), as CLIP text features are for QVHighlights.

Why: the DETR-family models were designed on CLIP features, where a word and the clips that show it are
already close; with word ids learnt from scratch they take hundreds of epochs on a small benchmark.
These "oracle" features give a word of an action or an object the very vector the benchmark's video
features are built from (``World.action_vecs`` / ``object_vecs``, the first draws of the benchmark's
seed), and every other word a fixed random vector of its own, so the text side is CLIP-like and the
model still has to learn where and when. They are also the shared text input of the parity runs
(docs/baselines.md): the original code and ours read the same files.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import numpy as np

from grounding.synthetic.shortcuts import read_split, synthetic_layout
from grounding.synthetic.spec import SyntheticSpec
from grounding.synthetic.world import ACTIONS, OBJECTS, World

SPLITS = {"charades": ("train", "test"), "qvhighlights": ("train", "val")}


def word_vectors(spec: SyntheticSpec) -> dict[str, np.ndarray]:
    """Every action form and object word of the benchmark -> the vector its video features use."""
    world = World(spec)
    table = {obj: world.object_vecs[o] for o, obj in enumerate(OBJECTS)}
    for a, forms in enumerate(ACTIONS):
        for word in " ".join(forms).split():
            table.setdefault(word, world.action_vecs[a])  # "put down": both words carry the action
    return table


def token_features(query: str, table: dict[str, np.ndarray], dim: int, seed: int) -> np.ndarray:
    """(L, D) one vector per word of ``query``: its benchmark vector, or a random one fixed per word."""
    words = re.findall(r"[a-z]+", query.lower()) or ["<empty>"]
    rows = [table[w] if w in table else
            np.random.default_rng([seed, zlib.crc32(w.encode())]).normal(0, 1, dim).astype(np.float32) for w in words]
    return np.stack(rows).astype(np.float32)


def write_text_features(root: str | Path, out: str | Path | None = None) -> Path:
    """Write the oracle token features of every query of the synthetic benchmark at ``root`` into ``out``
    (default ``<root>/text_features``); returns the folder (``text.input=precomputed text.root=...``)."""
    root = Path(root)
    marker = json.loads((root / "synthetic_spec.json").read_text())
    spec = SyntheticSpec(**{k: v for k, v in marker.items() if k != "generator_version"})
    folder = Path(out) if out is not None else root / "text_features"
    folder.mkdir(parents=True, exist_ok=True)
    table = word_vectors(spec)
    layout = synthetic_layout(root)
    for split in SPLITS[layout]:
        records, _ = read_split(root, layout, split)
        for record in records:
            feats = token_features(record.query, table, spec.feature_dim, spec.seed)
            np.savez(folder / f"{record.qid}.npz", features=feats)
    return folder
