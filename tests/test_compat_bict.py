"""The compatibility study's claims on a small seeded run (docs/compatibility.md): a compatible method's cross-test
beats the independent model's, BiCT's new model is BCT's (its forward adapter is made after training and never moves
the training's random stream), the adapter raises the old gallery's cross-test, and the regime analysis re-scores the
saved embeddings exactly as the study scored them; plus the seed-pooled claim check on hand-computed outcomes."""

from __future__ import annotations

import numpy as np
import pytest

from grounding.errors import GroundingError
from grounding.studies.compat_regimes import RegimeSpec, claim, evaluate_run, regime_specs
from grounding.studies.compat_study import run_study
from grounding.synthetic import SyntheticSpec, write_synthetic
from tests.conftest import TINY_MODEL, tiny_config

# large enough that the models learn (old self R@1 ~14, new self ~20 on 143 test queries), about 20 s
SPEC = SyntheticSpec(train_videos=300, test_videos=60, feature_dim=64, signal=0.8, seed=3)
STUDY = {**{f"compat.model.{key}": value for key, value in TINY_MODEL.items()},
         "compat.run": "[independent,bct,bict]", "compat.train.epochs": 8, "compat.train.batch_size": 32,
         "compat.train.lr": 3e-3, "compat.old.train_fraction": 0.5, "compat.old.train.epochs": 8,
         "compat.old.model.dim": TINY_MODEL["dim"], "compat.adapter.epochs": 30, "compat.adapter.hidden": 32,
         "compat.backfill.steps": 2, "compat.eval.every_epoch": False}


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
    # the saved embeddings re-score to the study's own numbers (what the regime map builds on)
    with np.load(tmp_path / "study" / "embeddings.npz") as data:
        emb = {key: data[key] for key in data.files}
    outcome = evaluate_run(emb, RegimeSpec("default", "default"), ["bct", "bict"], result.fractions, 0,
                           {"classifier": "train"})
    np.testing.assert_array_equal(outcome.per_query["bct:cross"], bct.per_query["cross_hit"])
    np.testing.assert_array_equal(outcome.per_query["bict:adapted"], bict.per_query["adapted_hit"])
    assert outcome.old_self == pytest.approx(result.old_self["R@1"])
    np.testing.assert_allclose(outcome.curves["bct/random"], [row["NFR"] for row in bct.curves["random"]])
    # the adapter claim holds on this seed's queries as the regime map tests it
    assert claim("bict_adapter", "", [outcome.per_query["bict:adapted"]], [outcome.per_query["bict:cross"]],
                 "higher").mean > 0


def test_claim_pools_seeds_per_query_and_needs_every_seed_to_agree():
    a = [np.array([1, 1, 1, 1, 0, 0, 0, 0] * 25, float), np.array([1, 1, 1, 0, 0, 0, 0, 0] * 25, float)]
    b = [np.zeros(200), np.zeros(200)]
    result = claim("x", "a > b", a, b, "higher")
    assert result.per_seed == [50.0, 37.5] and result.mean == pytest.approx(43.75)
    pooled = (a[0] + a[1]) / 2
    assert result.effect == pytest.approx(pooled.mean() / pooled.std(ddof=1))
    assert result.low > 0 and result.verdict == "held"
    assert claim("x", "", a, b, "lower").verdict == "did not hold"
    # one seed disagrees: the interval may exclude 0, the claim is only 'mixed'
    disagree = claim("x", "", [a[0], np.zeros(200)], [np.zeros(200), np.full(200, 0.1)], "higher")
    assert disagree.per_seed == [50.0, -10.0] and disagree.verdict == "mixed"
    assert claim("x", "", [np.zeros(200)], [np.zeros(200)], "higher").verdict == "tie"


def test_regime_specs_need_a_default_and_known_relevance():
    specs = regime_specs({"train": {"default": [], "gap": ["compat.old.model.dim=32"]},
                          "eval": {"small": {"gallery_share": 0.25}, "one": {"relevance": "single"}}})
    assert [(s.name, s.train, s.relevance, s.gallery_share) for s in specs] == [
        ("default", "default", "description", 1.0), ("gap", "gap", "description", 1.0),
        ("small", "default", "description", 0.25), ("one", "default", "single", 1.0)]
    with pytest.raises(GroundingError, match="must define 'default'"):
        regime_specs({"train": {"gap": []}})
    with pytest.raises(GroundingError, match="relevance must be description or single"):
        regime_specs({"train": {"default": []}, "eval": {"x": {"relevance": "all"}}})
