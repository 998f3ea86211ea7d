"""The compatibility study's central claims on a small seeded run (docs/compatibility.md): a compatible method's
cross-test beats the independent model's, BiCT's new model is BCT's (its forward adapter is made after training
and never moves the training's random stream), and the adapter raises the old gallery's cross-test."""

from __future__ import annotations

import numpy as np
import pytest

from grounding.studies.compat_study import run_study
from grounding.synthetic import SyntheticSpec, write_synthetic
from tests.conftest import TINY_MODEL, tiny_config

# large enough that the models learn (old self R@1 ~14, new self ~20 on 143 test queries), about 20 s
SPEC = SyntheticSpec(train_videos=300, test_videos=60, feature_dim=64, signal=0.8, seed=3)
STUDY = {**{f"compat.model.{key}": value for key, value in TINY_MODEL.items()},
         "compat.run": "[independent,bct,bict]", "compat.train.epochs": 8, "compat.train.batch_size": 32,
         "compat.train.lr": 3e-3, "compat.old.train_fraction": 0.5, "compat.old.train.epochs": 8,
         "compat.adapter.epochs": 30, "compat.adapter.hidden": 32, "compat.backfill.steps": 2,
         "compat.eval.every_epoch": False}


@pytest.mark.slow
def test_compatibility_claims_on_a_small_seeded_study(tmp_path):
    write_synthetic(tmp_path / "data", SPEC, progress=False)
    result = run_study(tiny_config(tmp_path / "data", "compat/synthetic", **STUDY), tmp_path / "study")
    independent, bct, bict = (result.methods[name] for name in ("independent", "bct", "bict"))
    assert result.old_self["R@1"] > 5 and bct.new_self["R@1"] > 10  # the models learnt something to compare
    assert bct.cross["R@1"] >= independent.cross["R@1"] + 4  # BCT's queries find the old gallery's moments
    # bict = bct + an adapter: the same new model, query for query
    assert bct.new_self == bict.new_self and bct.cross == bict.cross
    for key in ("self_hit", "cross_hit"):
        np.testing.assert_array_equal(bct.per_query[key], bict.per_query[key])
    assert bct.adapted_cross is None and bict.adapted_cross["R@1"] > bict.cross["R@1"]  # the adapter helps
