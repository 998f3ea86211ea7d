"""BiCT's new model is BCT's: its forward adapter is made after training and never moves the training's random
stream, so every difference between the two methods is the adapter's (docs/compatibility.md, "bct and bict")."""

from __future__ import annotations

import numpy as np
import pytest

from grounding.studies.compat_study import run_study
from tests.conftest import TINY_MODEL, tiny_config


@pytest.mark.slow
def test_bict_trains_the_same_new_model_as_bct_and_only_adds_an_adapter(tiny_synthetic, tmp_path):
    cfg = tiny_config(tiny_synthetic, "compat/synthetic", **{
        **{f"compat.model.{key}": value for key, value in TINY_MODEL.items()},
        "compat.run": "[bct,bict]", "compat.train.epochs": 1, "compat.train.batch_size": 32,
        "compat.old.train.epochs": 1, "compat.adapter.epochs": 2, "compat.adapter.hidden": 16,
        "compat.backfill.steps": 2, "compat.eval.every_epoch": False})
    result = run_study(cfg, tmp_path / "study")
    bct, bict = result.methods["bct"], result.methods["bict"]
    assert bct.new_self == bict.new_self and bct.cross == bict.cross
    for key in ("self_hit", "cross_hit"):
        np.testing.assert_array_equal(bct.per_query[key], bict.per_query[key])
    assert bct.adapted_cross is None and bict.adapted_cross is not None
