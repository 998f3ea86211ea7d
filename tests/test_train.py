"""End-to-end training on the tiny synthetic benchmark: outputs, safety, resume, evaluation, torchrun."""

import json
import subprocess
import sys

import pytest
import torch

from grounding.config import load_config
from grounding.engine.trainer import Trainer
from grounding.errors import GroundingError
from tests.conftest import REPO, tiny_config, tiny_overrides

TRAIN = str(REPO / "tools/train_grounding.py")
EVAL = str(REPO / "tools/eval_grounding.py")


def _run(*args, timeout=300):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=timeout)


@pytest.fixture(scope="module")
def trained(tiny_synthetic, tmp_path_factory):
    work = tmp_path_factory.mktemp("run") / "work"
    done = _run(TRAIN, "--config", "configs/synthetic.yaml", "--work-dir", str(work),
                *tiny_overrides(tiny_synthetic, **{"train.epochs": 2}))
    assert done.returncode == 0, done.stderr[-3000:]
    return work, done


@pytest.mark.slow
def test_the_error_analysis_draws_figures_of_relational_queries_from_a_run(trained, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tools.analyze_errors import main

    work, _ = trained
    assert main(["--work-dir", str(work), "--figures", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 figures of 'temporal' queries" in out and json.loads(out.strip().splitlines()[-1])["temporal"]["count"] > 0
    events = EventAccumulator(str(work / "tb" / "errors"), size_guidance={"images": 0})
    events.Reload()
    assert len(events.Tags()["images"]) == 2 and all(t.startswith("errors/") for t in events.Tags()["images"])

@pytest.mark.slow
def test_a_run_writes_every_promised_output(trained, tiny_synthetic):
    work, done = trained
    for name in ("config.yaml", "checkpoints/last.pt", "checkpoints/best.pt", "predictions_test.jsonl",
                 "metrics.json", "train.log"):
        assert (work / name).is_file(), name
    assert list((work / "tb").glob("events.out.tfevents.*"))
    n_test = len((tiny_synthetic / "annotations/charades_sta_test.txt").read_text().splitlines())
    preds = [json.loads(line) for line in (work / "predictions_test.jsonl").read_text().splitlines()]
    assert len(preds) == n_test and {"qid", "vid", "query", "pred_relevant_windows", "pred_saliency_scores"} <= set(preds[0])
    metrics = json.loads((work / "metrics.json").read_text())
    assert metrics["checkpoint"] == "last" and metrics["test"]["num_queries"] == n_test
    assert {"R1@0.5", "R1@0.7", "R5@0.5", "mIoU", "temporal/R1@0.5", "novel/R1@0.5"} <= set(metrics["test"])
    assert "TensorBoard: tensorboard --logdir" in done.stdout and "R1@0.5" in done.stdout
    assert "no validation split" in (work / "train.log").read_text()
    saved = load_config(work / "config.yaml")
    assert saved.train.epochs == 2 and saved.model.dim == 32


@pytest.mark.slow
def test_tensorboard_has_losses_metrics_and_figures(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained[0] / "tb"), size_guidance={"images": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"loss/total", "loss/fine/boundary_ce", "loss/contrastive", "train/lr", "train/queries_per_s",
            "test/R1@0.5", "test/mIoU"} <= scalars
    assert any(tag.startswith("test/query_0") for tag in events.Tags()["images"])
    # figures are drawn after the last epoch only (train.figure_every=0), not at every evaluation
    tag = next(tag for tag in events.Tags()["images"] if tag.startswith("test/query_0"))
    assert [image.step for image in events.Images(tag)] == [2]


@pytest.mark.slow
def test_existing_work_dir_is_never_silently_overwritten(trained, tiny_synthetic):
    work, _ = trained
    before = (work / "metrics.json").read_text()
    done = _run(TRAIN, "--config", "configs/synthetic.yaml", "--work-dir", str(work), *tiny_overrides(tiny_synthetic))
    assert done.returncode == 2 and "--resume" in done.stderr and "--overwrite" in done.stderr
    assert "Traceback" not in done.stderr and (work / "metrics.json").read_text() == before


@pytest.mark.slow
def test_eval_tool_reproduces_the_final_metrics_from_the_checkpoint(trained, tmp_path):
    work, _ = trained
    out = tmp_path / "pred.jsonl"
    done = _run(EVAL, "--config", str(work / "config.yaml"), "--checkpoint", str(work / "checkpoints/last.pt"),
                "--split", "test", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads(done.stdout.strip().splitlines()[-1])
    final = json.loads((work / "metrics.json").read_text())["test"]
    assert metrics["R1@0.5"] == pytest.approx(final["R1@0.5"]) and metrics["mIoU"] == pytest.approx(final["mIoU"])
    standalone = _run(EVAL, "--predictions", str(out), "--ground-truth", str(work / "predictions_test.jsonl"))
    assert standalone.returncode == 2  # a predictions file is no ground truth: one clear error


def _cfg(root, **extra):
    return tiny_config(root, **extra)


@pytest.mark.slow
def test_resume_continues_exactly_where_it_stopped(tiny_synthetic, tmp_path, monkeypatch):
    straight = Trainer(_cfg(tiny_synthetic, **{"train.epochs": 2}), tmp_path / "straight")
    straight.fit()
    expected = {k: v.clone() for k, v in straight.model.state_dict().items()}

    original = Trainer._train_epoch

    def crash_in_second_epoch(self):
        if self.epoch == 1:
            raise KeyboardInterrupt("simulated crash")
        original(self)

    monkeypatch.setattr(Trainer, "_train_epoch", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        Trainer(_cfg(tiny_synthetic, **{"train.epochs": 2}), tmp_path / "crashed").fit()
    monkeypatch.setattr(Trainer, "_train_epoch", original)
    resumed = Trainer(_cfg(tiny_synthetic, **{"train.epochs": 2}), tmp_path / "crashed", resume=True)
    assert resumed.epoch == 1
    resumed.fit()
    for name, value in resumed.model.state_dict().items():
        torch.testing.assert_close(value, expected[name], msg=name)


def test_non_finite_loss_stops_with_step_and_qids(tiny_synthetic, tmp_path, monkeypatch):
    from grounding.losses.base import Criterion

    real = Criterion.forward
    monkeypatch.setattr(Criterion, "forward", lambda self, o, b: (real(self, o, b)[0] * float("nan"), {}))
    with pytest.raises(GroundingError, match=r"non-finite loss .* step 0; batch qids \["):
        Trainer(_cfg(tiny_synthetic), tmp_path / "nan").fit()


def test_resume_without_a_checkpoint_is_a_clear_error(tiny_synthetic, tmp_path):
    with pytest.raises(GroundingError, match="last.pt does not exist"):
        Trainer(_cfg(tiny_synthetic), tmp_path / "empty", resume=True)


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(tiny_synthetic, tmp_path):
    work = tmp_path / "ddp"
    done = _run("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", TRAIN,
                "--config", "configs/synthetic.yaml", "--work-dir", str(work), *tiny_overrides(tiny_synthetic))
    assert done.returncode == 0, done.stderr[:3000] + '\n...\n' + done.stderr[-3000:]  # a rank's own error comes first
    n_test = len((tiny_synthetic / "annotations/charades_sta_test.txt").read_text().splitlines())
    metrics = json.loads((work / "metrics.json").read_text())
    assert metrics["test"]["num_queries"] == n_test and metrics["test"]["num_missing"] == 0
    qids = [json.loads(line)["qid"] for line in (work / "predictions_test.jsonl").read_text().splitlines()]
    assert len(qids) == len(set(qids)) == n_test
    assert (work / "checkpoints/last.pt").is_file() and done.stdout.count("run finished") == 1


def test_loss_guard_checks_in_groups_and_names_the_first_bad_step():
    from grounding.engine.guards import NonFiniteLossGuard

    guard = NonFiniteLossGuard(interval=3)
    guard.add(1, 10, ["a"], torch.tensor(1.0), {})
    guard.add(1, 11, ["b", "c"], torch.tensor(float("inf")), {"x": torch.tensor(2.0)})  # not read yet
    with pytest.raises(GroundingError, match=r"non-finite loss \(inf\) at epoch 1, step 11 \(found 3 steps later.*qids \['b', 'c'\]"):
        guard.add(1, 12, ["d"], torch.tensor(float("nan")), {})
    fine = NonFiniteLossGuard(interval=2)
    for step in range(5):
        fine.add(1, step, ["q"], torch.tensor(0.5), {})
    fine.check()
    assert fine.pending == []
