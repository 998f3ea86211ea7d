"""The ablation runner: one change per variant, seeds, mean ± std, priors and parameter counts."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from grounding.config import save_config
from grounding.errors import GroundingError
from grounding.eval.results_table import to_markdown
from grounding.studies import ablation
from grounding.studies.ablation import (
    VARIANTS,
    ablation_summary,
    ablation_table,
    prior_rows,
    run_ablation,
    variant_config,
)
from tests.conftest import REPO, tiny_overrides

CONFIG = REPO / "configs" / "synthetic.yaml"


def test_each_variant_changes_one_thing_and_single_stages_keep_the_loss_balance(tiny_synthetic):
    full = variant_config(CONFIG, "full", tiny_overrides(tiny_synthetic))
    for name in VARIANTS:
        cfg = variant_config(CONFIG, name, tiny_overrides(tiny_synthetic))
        if name.startswith("no_"):
            term = name[3:]
            if term in cfg.loss:  # a loss term switched off, every other weight kept
                assert cfg.loss[term].weight == 0
                assert all(cfg.loss[t].weight == full.loss[t].weight for t in cfg.loss if t not in (term, "stage_weights"))
            else:  # a model part switched off, the rest of the model and the loss kept
                assert cfg.model[term] is False and cfg.loss == full.loss
                assert {k: v for k, v in cfg.model.items() if k != term} == {k: v for k, v in full.model.items() if k != term}
    coarse = variant_config(CONFIG, "coarse_only", tiny_overrides(tiny_synthetic))
    assert list(coarse.model.stages) == ["coarse"]
    assert coarse.loss.stage_weights.coarse == full.loss.stage_weights.coarse + full.loss.stage_weights.fine
    assert coarse.loss.attention_guidance.weight == full.loss.attention_guidance.weight  # untouched
    baseline = variant_config(CONFIG, "baseline", tiny_overrides(tiny_synthetic))
    assert baseline.model.name == "span_baseline" and baseline.model.dim == 32  # the user's overrides still apply

    with pytest.raises(GroundingError, match="span baseline's model"):  # CCMAN-only: not silently added to the baseline
        variant_config(CONFIG, "baseline", [*tiny_overrides(tiny_synthetic), "model.focus=false"])


def test_a_rerun_reuses_a_run_only_when_its_saved_config_is_the_one_asked_for(tiny_synthetic, tmp_path, monkeypatch):
    trained = []

    def fake_training(cfg, work, **_):  # what the trainer leaves: the resolved config, then the metrics
        trained.append((str(work), cfg.train.lr))
        save_config(cfg, work / "config.yaml")
        (work / "metrics.json").write_text(json.dumps({"test/R1@0.5": 1.0}))

    monkeypatch.setattr(ablation, "run_training", fake_training)
    overrides = tiny_overrides(tiny_synthetic)
    assert run_ablation(CONFIG, tmp_path, overrides, ["full", "no_focus"], seeds=[0]) == {"full/seed0": None,
                                                                                          "no_focus/seed0": None}
    assert len(trained) == 2
    run_ablation(CONFIG, tmp_path, overrides, ["full", "no_focus"], seeds=[0])
    assert len(trained) == 2  # same config: both kept
    run_ablation(CONFIG, tmp_path, [*overrides, "train.lr=0.01"], ["full"], seeds=[0])
    assert trained[2:] == [(str(tmp_path / "full" / "seed0"), 0.01)]  # another config: trained again
    (tmp_path / "no_focus" / "seed0" / "config.yaml").unlink()
    run_ablation(CONFIG, tmp_path, overrides, ["no_focus"], seeds=[0])
    assert len(trained) == 4  # no saved config: nothing proves what it was trained with


@pytest.mark.slow
def test_seeds_give_mean_and_spread_and_the_table_has_priors_and_sizes(tiny_synthetic, tmp_path):
    overrides = tiny_overrides(tiny_synthetic, **{"train.num_figures": 0})
    errors = run_ablation(CONFIG, tmp_path, overrides, ["full", "baseline"], seeds=[0, 1])
    assert errors == {"full/seed0": None, "full/seed1": None, "baseline/seed0": None, "baseline/seed1": None}
    table = ablation_table(tmp_path, ["full", "baseline"], [0, 1])
    assert table.loc["full", "seeds"] == 2 and " ± " in table.loc["full", "R1@0.5"]
    full_size = float(table.loc["full", "parameters"].rstrip("M"))
    assert 0 < float(table.loc["baseline", "parameters"].rstrip("M")) < full_size
    priors = prior_rows(tiny_synthetic)
    assert len(priors) == 2 and all(row["R1@0.5"] != "-" for _, row in priors.iterrows())
    table = pd.concat([table, priors])
    ablation_summary(table, {"fine_only/seed0": "out of memory"}).write(tmp_path)  # what tools/run_ablations.py writes
    assert (tmp_path / "ablation.md").read_text() == to_markdown(table) + "\n"
    written = pd.read_csv(tmp_path / "ablation.csv", index_col="variant", dtype=str)
    assert written.index.tolist() == table.index.tolist() and written.loc["full", "R1@0.5"] == table.loc["full", "R1@0.5"]
    results = json.loads((tmp_path / "ablation.json").read_text())
    assert results["variants"]["full"]["seeds"] == 2 and results["failed"] == {"fine_only/seed0": "out of memory"}
    # a rerun keeps the finished runs
    before = (tmp_path / "full/seed0/metrics.json").stat().st_mtime_ns
    run_ablation(CONFIG, tmp_path, overrides, ["full"], seeds=[0])
    assert (tmp_path / "full/seed0/metrics.json").stat().st_mtime_ns == before
