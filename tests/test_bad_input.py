"""Bad input a user actually hits, fed through the real command-line entry points.

Each case asserts the exit code, the one-line message (what is wrong, where, and the fix), and that
nothing the user had was changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from grounding.data.annotations import read_charades_sta
from grounding.data.records import write_jsonl
from tests.conftest import REPO, tiny_config, tiny_overrides
from tools import convert_annotations, eval_grounding, run_ablations, train_compat, train_grounding

CONFIG = str(REPO / "configs/synthetic.yaml")


def call(main, *argv: object) -> tuple[int, str, str]:
    """Run a tool's ``main`` in this process: (exit code, stdout, stderr)."""
    logging.basicConfig(handlers=[logging.NullHandler()], force=True)  # no log file of an earlier run
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as stop:
            code = stop.code
    logging.basicConfig(handlers=[logging.NullHandler()], force=True)  # closes train.log
    return code, out.getvalue(), err.getvalue()


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and lines[-1].startswith("error: "), err
    return lines[-1]


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Content hash and modification time of every file below ``folder``."""
    return {str(p.relative_to(folder)): (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def broken_root(tiny_synthetic, tmp_path_factory) -> Path:
    """A copy of the tiny benchmark with a training window past the video's end and two bad test videos."""
    root = tmp_path_factory.mktemp("broken") / "data"
    shutil.copytree(tiny_synthetic, root)
    train = root / "annotations/charades_sta_train.txt"
    lines = train.read_text().splitlines()
    vid = lines[0].split()[0]
    lines.append(f"{vid} 50.0 60.0##a person opens a door after the video ended.")  # the video is ~34 s
    train.write_text("\n".join(lines) + "\n")
    feats = root / "features"
    nan = np.load(feats / "SYNTE00001.npy")
    nan[3, 5] = np.nan
    np.save(feats / "SYNTE00001.npy", nan)
    np.save(feats / "SYNTE00002.npy", np.load(feats / "SYNTE00002.npy")[:, :32])  # wrong dim
    return root


@pytest.fixture(scope="module")
def failed_start(broken_root, tmp_path_factory):
    """A start that fails on bad evaluation features, before its first training step."""
    work = tmp_path_factory.mktemp("failed") / "work"
    features_before = snapshot(broken_root / "features")
    failed = call(train_grounding.main, "--config", CONFIG, "--work-dir", work, "--no-progress",
                  *tiny_overrides(broken_root))
    assert snapshot(broken_root / "features") == features_before  # checking features never writes them
    return work, failed, (work / "train.log").read_text(), sorted(p.name for p in work.iterdir())


@pytest.fixture(scope="module")
def failed_then_rerun(failed_start, broken_root):
    """The failed start, then a plain rerun in the same work dir that drops the bad videos and trains."""
    work = failed_start[0]
    features_before = snapshot(broken_root / "features")
    rerun = call(train_grounding.main, "--config", CONFIG, "--work-dir", work, "--no-progress",
                 *tiny_overrides(broken_root, **{"data.bad_features": "drop"}))
    assert snapshot(broken_root / "features") == features_before
    return (*failed_start, rerun)


# ---------------------------------------------------------------- overrides


@pytest.mark.parametrize("override,expected", [
    ("train.epoch=3", "'train.epoch' is not a key of"),
    ("trian.epochs=1", "'trian.epochs' is not a key of"),
])
def test_misspelt_override_names_the_closest_key(tiny_synthetic, tmp_path, override, expected):
    code, _, err = call(train_grounding.main, "--config", CONFIG, "--work-dir", tmp_path / "w",
                        *tiny_overrides(tiny_synthetic), override)
    line = one_error_line(err)
    assert code == 2 and expected in line and "did you mean 'train.epochs'?" in line
    assert f"write +{override} to add a new key" in line
    assert not (tmp_path / "w").exists()


def test_override_of_the_wrong_type_names_key_and_type(tiny_synthetic, tmp_path):
    code, _, err = call(train_grounding.main, "--config", CONFIG, "--work-dir", tmp_path / "w",
                        *tiny_overrides(tiny_synthetic), "train.epochs=two")
    assert code == 2 and one_error_line(err) == (
        f"error: override 'train.epochs=two': train.epochs takes an integer (it is 12 in {CONFIG}), not 'two'")
    code, _, err = call(train_grounding.main, "--config", CONFIG, "--work-dir", tmp_path / "w",
                        *tiny_overrides(tiny_synthetic), "model.stages=coarse")
    assert code == 2 and "model.stages takes a list like [a,b]" in one_error_line(err)
    assert not (tmp_path / "w").exists()


def test_every_tool_that_takes_overrides_rejects_a_typo(tiny_synthetic, tmp_path):
    compat = str(REPO / "configs/compat/synthetic.yaml")
    code, _, err = call(train_compat.main, "--config", compat, "--work-dir", tmp_path / "c",
                        *tiny_overrides(tiny_synthetic), "compat.train.epoch=1")
    assert code == 2 and "did you mean 'compat.train.epochs'?" in one_error_line(err)
    code, _, err = call(run_ablations.main, "--config", CONFIG, "--work-root", tmp_path / "a",
                        *tiny_overrides(tiny_synthetic), "train.epoch=1")
    assert code == 2 and "did you mean 'train.epochs'?" in one_error_line(err)
    code, _, err = call(eval_grounding.main, "--config", CONFIG, "--checkpoint", tmp_path / "x.pt", "--split", "test",
                        "--out", tmp_path / "p.jsonl", "decode.top_k=3")
    assert code == 2 and "did you mean 'decode.topk'?" in one_error_line(err)
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------- windows


@pytest.mark.slow
def test_window_past_the_end_is_dropped_and_named_in_the_training_log(failed_then_rerun, broken_root):
    work, *_ = failed_then_rerun
    log = (work / "train.log").read_text()
    line_no = len((broken_root / "annotations/charades_sta_train.txt").read_text().splitlines())
    assert f"charades_sta_train.txt:{line_no} (query {line_no - 1}): window [50, 60] lies outside the video" in log
    assert "outside the video (removed): 1" in log and "for no window inside the video: 1" in log


def _convert(tmp_path: Path, *flags: str) -> tuple[int, str, str, Path]:
    ann, durations, out = tmp_path / "sta.txt", tmp_path / "d.json", tmp_path / "out.jsonl"
    ann.write_text("V1 0.0 3.0##a person sits.\nV2 50.0 60.0##someone runs.\nV2 2.0 40.0##someone jumps.\n")
    durations.write_text(json.dumps({"V1": {"duration": 10.0}, "V2": {"duration": 31.86}}))
    code, stdout, err = call(convert_annotations.main, "--dataset", "charades_sta", "--input", ann, "--durations",
                             durations, "--out", out, *flags)
    return code, stdout, err, out


def test_converter_removes_a_window_outside_the_video_and_names_its_line(tmp_path):
    code, stdout, _, out = _convert(tmp_path)
    assert code == 0
    assert [json.loads(x)["relevant_windows"] for x in out.read_text().splitlines()] == [[[0.0, 3.0]], [[2.0, 31.86]]]
    assert f"{tmp_path / 'sta.txt'}:2 (query 1): window [50, 60] lies outside the video (0 to 31.86 s); removed" in stdout
    assert f"{tmp_path / 'sta.txt'}:3 (query 2): window [2, 40] clipped to [2, 31.86]" in stdout
    assert "2/3 queries kept" in stdout


def test_converter_error_policy_suggests_its_own_flag(tmp_path):
    code, _, err, out = _convert(tmp_path, "--empty-windows", "error")
    assert code == 2 and one_error_line(err) == (
        f"error: {tmp_path / 'sta.txt'}:2 (query 1): window [50, 60] lies outside the video (0 to 31.86 s); "
        "fix the annotation, or pass --empty-windows drop to remove such windows")
    assert not out.exists()


# ---------------------------------------------------------------- features


def test_bad_evaluation_features_stop_the_run_before_the_first_step(failed_start):
    work, (code, _, err), failed_log, failed_files = failed_start
    line = one_error_line(err)
    assert code == 2 and line.startswith("error: 2 of 80 videos of train, test have unusable features (")
    assert "features of 'SYNTE00001' contain NaN or inf" in line and "'SYNTE00002'" in line and "dim 32" in line
    assert line.endswith("re-extract them, or set data.bad_features=drop to skip their queries")
    assert "epoch 1" not in failed_log and line in failed_log  # the fatal error is in train.log too
    assert failed_files == ["config.yaml", "train.log"]  # no checkpoint, no lost epoch


@pytest.mark.slow
def test_bad_features_drop_policy_trains_without_those_videos(failed_then_rerun, tiny_synthetic):
    work, *_, (code, stdout, err) = failed_then_rerun
    assert code == 0, err
    tests = (tiny_synthetic / "annotations/charades_sta_test.txt").read_text().splitlines()
    bad = sum(x.split()[0] in ("SYNTE00001", "SYNTE00002") for x in tests)
    assert f"test: dropped {bad} queries of 2 videos with unusable features (data.bad_features=drop)" in err
    assert json.loads((work / "metrics.json").read_text())["test"]["num_queries"] == len(tests) - bad
    assert "epoch 1: " in err and "epoch 1/1" not in err  # --no-progress: the log line, no progress bar
    assert "error" not in (work / "train.log").read_text()  # the failed start's log was replaced


def test_a_rerun_reads_no_features_again(tiny_synthetic, tmp_path):
    from grounding.data.build import DataBundle
    from grounding.data.validate import check_features

    first = DataBundle(tiny_config(tiny_synthetic))
    first.validate(["train", "test"])
    vids = [r.vid for r in first.records("test")]
    assert check_features(first.bank, vids).read == 0  # every verdict came from the cache
    copy = tmp_path / "data"
    shutil.copytree(tiny_synthetic, copy)
    bank = DataBundle(tiny_config(copy)).bank
    assert check_features(bank, vids).read == len(set(vids))  # another store: checked afresh
    path = copy / "features" / f"{vids[0]}.npy"
    np.save(path, np.load(path) * np.inf)
    again = check_features(bank, vids)
    assert again.read == 1 and list(again.bad) == [vids[0]]  # a changed file is read again


# ---------------------------------------------------------------- work dir


def test_resume_without_a_checkpoint_says_to_rerun_plainly(tmp_path, tiny_synthetic):
    code, _, err = call(train_grounding.main, "--config", CONFIG, "--work-dir", tmp_path / "w", "--resume",
                        *tiny_overrides(tiny_synthetic))
    assert code == 2 and one_error_line(err) == (
        f"error: --resume: {tmp_path / 'w'}/checkpoints/last.pt does not exist; rerun without --resume to start a "
        "new run (nothing to continue: no epoch was completed)")


@pytest.mark.slow
def test_resume_and_overwrite_together_are_refused(failed_then_rerun, tiny_synthetic):
    work = failed_then_rerun[0]
    before = snapshot(work)
    code, _, err = call(train_grounding.main, "--config", CONFIG, "--work-dir", work, "--resume", "--overwrite",
                        *tiny_overrides(tiny_synthetic))
    assert code == 2 and "--resume and --overwrite contradict each other" in one_error_line(err)
    assert snapshot(work) == before


def test_a_config_yaml_no_run_wrote_is_not_replaced(tmp_path, tiny_synthetic):
    work = tmp_path / "w"
    work.mkdir()
    (work / "config.yaml").write_text("mine: 1\n")
    code, _, err = call(train_grounding.main, "--config", CONFIG, "--work-dir", work, *tiny_overrides(tiny_synthetic))
    assert code == 2 and "has a config.yaml that no run wrote" in one_error_line(err)
    assert (work / "config.yaml").read_text() == "mine: 1\n"


# ---------------------------------------------------------------- evaluation


def _ground_truth(path: Path) -> Path:
    path.write_text('{"qid": 0, "query": "a", "vid": "v", "duration": 10.0, "relevant_windows": [[1.0, 3.0]]}\n'
                    '{"qid": 1, "query": "b", "vid": "v", "duration": 10.0, "relevant_windows": [[4.0, 6.0]]}\n')
    return path


def test_empty_predictions_file_is_scored_with_a_warning(tmp_path):
    gt, preds = _ground_truth(tmp_path / "gt.jsonl"), tmp_path / "p.jsonl"
    preds.write_text("")
    code, stdout, err = call(eval_grounding.main, "--predictions", preds, "--ground-truth", gt)
    assert code == 0 and err == f"warning: {preds} holds no predictions: all 2 queries count as misses\n"
    assert json.loads(stdout.splitlines()[-1])["num_missing"] == 2


def test_reversed_predicted_window_is_refused_with_its_line(tmp_path):
    gt, preds = _ground_truth(tmp_path / "gt.jsonl"), tmp_path / "p.jsonl"
    preds.write_text('{"qid": 0, "pred_relevant_windows": [[1.0, 3.0, 0.9]]}\n'
                     '{"qid": 1, "pred_relevant_windows": [[6.0, 4.0, 0.8]]}\n')
    code, stdout, err = call(eval_grounding.main, "--predictions", preds, "--ground-truth", gt)
    assert code == 2 and stdout == "" and one_error_line(err) == (
        f"error: {preds}:2: predicted window [6.0, 4.0, 0.8] has start > end (it could never match); "
        "write each window as [start, end, score] with start <= end")


@pytest.mark.slow
def test_checkpoint_mode_with_a_misspelt_split_names_the_splits(failed_then_rerun, tmp_path):
    work = failed_then_rerun[0]
    out = tmp_path / "p.jsonl"
    code, _, err = call(eval_grounding.main, "--config", work / "config.yaml", "--checkpoint",
                        work / "checkpoints/last.pt", "--split", "tset", "--out", out)
    assert code == 2 and one_error_line(err) == (
        "error: no annotation file for split 'tset' (this config has train, test); did you mean 'test'? "
        "or set data.annotations.tset")
    assert not out.exists()


@pytest.mark.slow
def test_checkpoint_mode_without_ground_truth_writes_predictions_and_scores_nothing(failed_then_rerun, tiny_synthetic,
                                                                                   tmp_path):
    work = failed_then_rerun[0]
    ann = tiny_synthetic / "annotations"
    records = read_charades_sta(ann / "charades_sta_test.txt", ann / "Charades_v1_test.csv")[:7]
    for rec in records:
        rec.windows = []  # hidden labels, as in the QVHighlights test split
    write_jsonl(records, tmp_path / "hidden.jsonl")
    out = tmp_path / "p.jsonl"
    code, stdout, err = call(eval_grounding.main, "--config", work / "config.yaml", "--checkpoint",
                             work / "checkpoints/last.pt", "--split", "test", "--out", out, "data.dataset=native",
                             f"data.root={tiny_synthetic}", f"data.annotations.test={tmp_path / 'hidden.jsonl'}")
    assert code == 0, err
    assert len(out.read_text().splitlines()) == 7
    assert f"split 'test' has no ground-truth windows (hidden labels): predictions of 7 queries written to {out}; " \
           "there is nothing to score" in stdout
    assert json.loads(stdout.splitlines()[-1]) == {"num_queries": 7, "ground_truth": False}
    assert "R1@" not in stdout


def test_subset_counts_print_as_integers():
    from grounding.eval.evaluate import format_summary

    text = format_summary({"num_queries": 9, "num_missing": 0, "R1@0.5": 12.5, "novel/num_queries": 4.0})
    assert text.splitlines()[1:] == ["  R1@0.5                 12.50", "  novel/num_queries      4"]


def test_a_crash_is_recorded_in_train_log(tiny_synthetic, tmp_path, monkeypatch):
    from grounding.engine.trainer import Trainer

    def boom(self):
        raise RuntimeError("boom")

    monkeypatch.setattr(Trainer, "_train_epoch", boom)
    with pytest.raises(RuntimeError, match="boom"):
        call(train_grounding.main, "--config", CONFIG, "--work-dir", tmp_path / "w", "--no-progress",
             *tiny_overrides(tiny_synthetic))
    log = (tmp_path / "w/train.log").read_text()
    assert "crashed: RuntimeError: boom" in log and "Traceback" in log


@pytest.mark.slow
def test_as_a_command_a_typo_is_one_line_on_stderr_and_exit_2(tiny_synthetic, tmp_path):
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(REPO / "tools/train_grounding.py"), "--config", CONFIG, "--work-dir",
                           str(tmp_path / "w"), *tiny_overrides(tiny_synthetic), "train.epoch=3"],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: override 'train.epoch=3': 'train.epoch' is not a key of {CONFIG} (or its _base_ parts); "
        "did you mean 'train.epochs'? write +train.epoch=3 to add a new key"]
    assert not (tmp_path / "w").exists()
