"""Shared fixtures: the ``../shared`` folder (skipped cleanly where absent), a tiny synthetic benchmark and the
one tiny config on it (``tiny_config``), and the guard that keeps trainings out of the fast lane.

Two lanes: ``make test`` runs everything; ``make test-fast`` (``pytest -m "not slow"``) leaves out the tests
marked ``slow``: those that train a model, run a study, or start a tool as a subprocess."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

# Tiny test tensors run fastest on one thread, and it avoids oversubscribing small CI machines.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ANNOTATIONS = SHARED / "annotations"


# Fixtures that train a model: every test that uses one must be marked slow, so that `make test-fast`
# (pytest -m "not slow") never pays for a training.
TRAINING_FIXTURES = {"trained", "old", "study_dir", "failed_then_rerun"}


def pytest_collection_modifyitems(config, items):
    unmarked = [item.nodeid for item in items if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("slow") is None]
    if unmarked:
        raise pytest.UsageError("these tests train a model through a fixture but are not marked "
                                f"@pytest.mark.slow: {', '.join(unmarked)}")


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


# The size of every tiny model in the tests (CCMAN, the span baseline, the compatibility study's dual encoder).
TINY_MODEL = dict(dim=32, heads=2, word_dim=16, embed_dim=16)


def tiny_overrides(root: Path, **extra: object) -> list[str]:
    """Overrides that shrink a synthetic config to the tiny benchmark at ``root`` and a small, fast model
    (what a test passes to a tool's command line; ``tiny_config`` is the same as a loaded config)."""
    items = {
        "data.root": str(root), "data.synthetic": None, "model.video_dim": TINY_SPEC["feature_dim"],
        **{f"model.{key}": value for key, value in TINY_MODEL.items()}, "data.num_clips": 16, "train.device": "cpu",
        "train.batch_size": 16, "train.epochs": 1, "train.num_figures": 1,
        "train.num_threads": 1,  # tiny models run fastest on one thread, and a pinned count is reproducible
    }
    items.update(extra)
    return [f"{k}={'null' if v is None else v}" for k, v in items.items()]


def tiny_config(root: Path, config: str = "synthetic", **extra: object) -> DictConfig:
    """The tests' one tiny config: ``configs/<config>.yaml`` on the benchmark at ``root`` with ``tiny_overrides``.

    ``synthetic`` is CCMAN, ``synthetic_baseline`` the span baseline, ``compat/synthetic`` the compatibility
    study; ``extra`` overrides go last (``{"model.dim": 64}``).
    """
    from grounding.config import load_config

    return load_config(REPO / "configs" / f"{config}.yaml", tiny_overrides(root, **extra))


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
