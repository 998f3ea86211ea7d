"""The parity harness (grounding/bench/parity_detr.py): the shared data both codes read, the authors' command
line, and the CPU shim their code runs under. The runs themselves need the authors' code (docs/baselines.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grounding.bench.parity_detr import SHIM, ParitySettings, original_command, write_parity_data
from grounding.errors import GroundingError


def test_both_sides_read_the_same_unit_norm_features(tmp_path):
    data = write_parity_data(tmp_path, "two_event", {"train_videos": 4, "test_videos": 6, "clips": 40, "max_len": 17})
    lines = [json.loads(x) for x in (data / "synthetic/annotations/highlight_val_release.jsonl").read_text().splitlines()]
    vid, qid = lines[0]["vid"], lines[0]["qid"]
    ours = np.load(data / "ours/video" / f"{vid}.npy")
    assert np.array_equal(ours, np.load(data / "theirs/video" / f"{vid}.npz")["features"])
    assert ours.shape == (40, 16) and np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)
    tokens = np.load(data / "ours/text" / f"{qid}.npz")["features"]
    assert np.array_equal(tokens, np.load(data / "theirs/text" / f"qid{qid}.npz")["last_hidden_state"])
    assert tokens.shape == (3, 16) and np.allclose(np.linalg.norm(tokens, axis=1), 1, atol=1e-5)
    # the same raw event: the window's clips carry the query's action vector
    raw = np.load(data / "synthetic/features" / f"{vid}.npy")
    (start, end), = lines[0]["relevant_windows"]
    assert raw[start // 2:end // 2].mean(0) @ np.load(data / "synthetic/text" / f"{qid}.npz")["features"][1] > 1.0
    cmd = original_command("qd_detr", Path("/code"), data, 2, ParitySettings(epochs=10), tmp_path / "run")
    flags = dict(zip(cmd[2::2], cmd[3::2], strict=False))
    assert cmd[1] == "/code/qd_detr/train.py" and flags["--v_feat_dim"] == "16" and flags["--t_feat_dim"] == "16"
    assert (flags["--seed"], flags["--n_epoch"], flags["--bsz"], flags["--device"]) == ("2", "10", "16", "-1")


def test_a_val_split_the_authors_evaluator_cannot_score_is_refused(tmp_path):
    with pytest.raises(GroundingError, match="length range"):  # 16 clips: no window longer than 30 s
        write_parity_data(tmp_path, "two_event", {"train_videos": 2, "test_videos": 4})


@pytest.mark.slow  # a child process importing torch: ~4 s on a busy machine
def test_the_shim_makes_cuda_calls_no_ops():
    env = dict(os.environ, PYTHONPATH=str(SHIM), PARITY_THREADS="1")
    out = subprocess.run([sys.executable, "-c", "import torch; x = torch.zeros(2).cuda(); "
                          "print(x.device, torch.nn.Linear(2, 2).cuda().weight.device, torch.get_num_threads())"],
                         env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out == ["cpu", "cpu", "1"]
