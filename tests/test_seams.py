"""The engine's seams: one training step for every trainer, one metrics dispatcher for every evaluation
mode, and tools that create the folders they write into."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from grounding.engine.step import TrainStep
from tests.conftest import REPO, SHARED, TINY_MODEL, tiny_config


@pytest.fixture
def step_calls(monkeypatch) -> list[str]:
    """Every call of ``TrainStep.__call__``, named by the module that made it."""
    calls: list[str] = []
    real = TrainStep.__call__

    def spy(self, loss_fn, *args, **kwargs):
        calls.append(sys._getframe(1).f_globals["__name__"])
        return real(self, loss_fn, *args, **kwargs)

    monkeypatch.setattr(TrainStep, "__call__", spy)
    return calls


@pytest.mark.slow
def test_trainer_compat_study_and_benchmark_take_the_same_step(tiny_synthetic, tmp_path, step_calls):
    from grounding.bench import harness
    from grounding.data.build import DataBundle
    from grounding.engine.trainer import run_training
    from grounding.studies.dual_encoder import build_dual_encoder
    from grounding.studies.dual_encoder_training import TrainSettings, train_dual_encoder
    from grounding.studies.moment_split import build_moment_split

    cfg = tiny_config(tiny_synthetic, **{"train.num_figures": 0})
    run_training(cfg, tmp_path / "run", progress=False)
    data = DataBundle(cfg)
    split = build_moment_split(data.records("train")[:20], data.bank, data.text)
    model = build_dual_encoder(TINY_MODEL, split, len(data.text))
    train_dual_encoder(model, split, TrainSettings(epochs=1, batch_size=8), torch.device("cpu"))
    shape = harness.Shape("tiny", "charades_sta.yaml", video_dim=8, clips=6, words=4)
    harness.bench_training(shape, "span_baseline", torch.device("cpu"), batch=2, steps=1, repeats=1)
    assert {"grounding.engine.trainer", "grounding.studies.dual_encoder_training", "grounding.bench.harness"} <= set(step_calls)


@pytest.mark.slow
def test_both_evaluation_modes_give_identical_qvhighlights_metrics(tmp_path):
    """Standalone (a predictions file, the CLI) and in-process (what training and checkpoint mode call)."""
    sample = SHARED / "eval-samples" / "qvhighlights" / "sample_val_preds.jsonl"
    gt = SHARED / "annotations" / "qvhighlights" / "highlight_val_release.jsonl"
    if not (sample.is_file() and gt.is_file()):
        pytest.skip("the QVHighlights sample in ../shared is not present")
    from grounding.data.records import read_native_jsonl
    from grounding.eval.evaluate import compute_metrics
    from grounding.eval.predictions import read_predictions

    done = subprocess.run([sys.executable, str(REPO / "tools/eval_grounding.py"), "--predictions", str(sample),
                           "--ground-truth", str(gt), "--dataset", "qvhighlights"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    standalone = json.loads(done.stdout.strip().splitlines()[-1])
    in_process = compute_metrics(read_predictions(sample), read_native_jsonl(gt), "qvhighlights")
    assert standalone == json.loads(json.dumps(in_process))
    assert standalone["brief"]["MR-full-mAP"] > 0 and "HL-min-VeryGood-mAP" in standalone["brief"]


def test_single_window_metrics_carry_per_tag_subsets_in_both_modes(tiny_synthetic, tmp_path):
    from grounding.data.build import DataBundle
    from grounding.data.records import write_jsonl
    from grounding.eval.evaluate import compute_metrics, evaluate

    dataset = DataBundle(tiny_config(tiny_synthetic)).dataset("test")
    preds = [{"qid": r.qid, "pred_relevant_windows": [[r.windows[0][0], r.windows[0][1] + i % 3, 1.0]]}
             for i, r in enumerate(dataset.records)]
    write_jsonl(preds, tmp_path / "p.jsonl")
    write_jsonl(dataset.records, tmp_path / "gt.jsonl")
    in_process = compute_metrics(preds, dataset.records, "charades_sta")
    assert evaluate(tmp_path / "p.jsonl", tmp_path / "gt.jsonl") == in_process
    assert in_process["R1@0.1"] == 100.0 and 0 < in_process["R1@0.7"] < 100.0


def test_benchmark_creates_the_folder_of_its_report(tmp_path):
    from grounding.cli import benchmark

    out = tmp_path / "not" / "yet" / "bench.json"
    assert benchmark.main(["--device", "cpu", "--quick", "--sections", "metrics", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["metrics"]["queries"] > 0
    makefile = (REPO / "Makefile").read_text()
    assert "tools/benchmark.py" in makefile and "--out work_dirs/bench_cpu.json" in makefile  # a folder a clone lacks
