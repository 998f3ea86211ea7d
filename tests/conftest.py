"""Shared fixtures: the ``../shared`` folder (skipped cleanly where absent) and a tiny synthetic benchmark."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Tiny test tensors run fastest on one thread, and it avoids oversubscribing small CI machines.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ANNOTATIONS = SHARED / "annotations"


@pytest.fixture(scope="session", autouse=True)
def feature_check_cache(tmp_path_factory) -> Path:
    """Cached feature checks (grounding.data.validate) go to a temporary folder, not the user's cache."""
    path = tmp_path_factory.mktemp("cache")
    os.environ["GROUNDING_CACHE_DIR"] = str(path)  # inherited by the tools run as subprocesses
    return path


@pytest.fixture
def shared() -> Path:
    if not ANNOTATIONS.is_dir():
        pytest.skip("../shared (real annotation files) is not present in this checkout")
    return SHARED


TINY_SPEC = dict(train_videos=60, test_videos=20, feature_dim=64, seed=3)


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> Path:
    """A small synthetic benchmark in the Charades-STA layout, written once per test session."""
    from grounding.synthetic import SyntheticSpec, write_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic(root, SyntheticSpec(**TINY_SPEC), overwrite=True, progress=False)
    return root


TINY_QVH_SPEC = dict(layout="qvhighlights", train_videos=40, test_videos=20, feature_dim=32, seed=3)


@pytest.fixture(scope="session")
def tiny_qvh_synthetic(tmp_path_factory) -> Path:
    """A small synthetic benchmark in the QVHighlights layout (saliency scores, several windows per query)."""
    from grounding.synthetic import SyntheticSpec, write_synthetic

    root = tmp_path_factory.mktemp("synthetic_qvh")
    write_synthetic(root, SyntheticSpec(**TINY_QVH_SPEC), overwrite=True, progress=False)
    return root


def tiny_overrides(root: Path, **extra: object) -> list[str]:
    """Overrides that shrink configs/synthetic.yaml to the tiny benchmark and a small, fast model."""
    items = {
        "data.root": str(root), "data.synthetic": None, "model.video_dim": 64, "model.dim": 32, "model.heads": 2,
        "model.word_dim": 16, "model.embed_dim": 16, "data.num_clips": 16, "train.device": "cpu",
        "train.batch_size": 16, "train.epochs": 1, "train.num_figures": 1,
        "train.num_threads": 1,  # tiny models run fastest on one thread, and a pinned count is reproducible
    }
    items.update(extra)
    return [f"{k}={'null' if v is None else v}" for k, v in items.items()]


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """The README's newcomer flow, once per session (a few seconds): a tiny random CLIP saved locally,
    short videos, their features extracted with it, and a CCMAN trained on them (grounding.api.demo)."""
    from grounding.api.demo import build_demo

    root = tmp_path_factory.mktemp("demo")
    paths = build_demo(root / "demo", epochs=1)
    return root / "demo", paths


@pytest.fixture(scope="session")
def grounder(demo):
    """A ``Grounder`` on the demo checkpoint."""
    from grounding import Grounder

    return Grounder.from_pretrained(demo[1]["run"], device="cpu")
