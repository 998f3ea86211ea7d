"""Device, precision and CPU-thread policy (grounding/device.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from grounding.device import CpuShare, autocast_dtype, select_device, weights_dtype
from grounding.errors import GroundingError


def test_cpu_runs_in_full_precision_and_bad_names_are_clear_errors():
    cpu = select_device("cpu")
    assert autocast_dtype(cpu) is None and weights_dtype(cpu) == torch.float32
    with pytest.raises(GroundingError, match="train.device=tpu: use auto, cpu, cuda or cuda:N"):
        select_device("tpu")
    with pytest.raises(GroundingError, match="precision 'half'"):
        autocast_dtype(cpu, "half")
    if not torch.cuda.is_available():
        with pytest.raises(GroundingError, match="sees no CUDA GPU"):
            select_device("cuda", setting="--device")


def test_runs_share_the_cores_and_give_them_back(tmp_path):
    threads = torch.get_num_threads()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / str(sleeper.pid)).write_text("auto")  # another live run
        (tmp_path / "999999999").write_text("auto")  # a run that died without unregistering
        share = CpuShare(tmp_path, cores=4, interval=0.0)
        assert share.live_runs() == (2, 0) and share.threads() == 2
        assert not (tmp_path / "999999999").exists()  # cleaned up
        assert share.refresh() == 2 and torch.get_num_threads() == 2
        sleeper.kill()
        sleeper.wait()
        assert share.refresh() == 4  # the other run ended: this one takes the cores back
        share.close()
        assert not (tmp_path / str(os.getpid())).exists() and torch.get_num_threads() == threads
    finally:
        sleeper.kill()
        torch.set_num_threads(threads)


def test_a_run_alone_gets_every_core(tmp_path):
    threads = torch.get_num_threads()
    share = CpuShare(tmp_path, cores=2, interval=0.0)
    try:
        assert share.threads() == 2
    finally:
        share.close()
    assert torch.get_num_threads() == threads


def test_pinned_runs_keep_their_threads_and_the_others_share_the_rest(tmp_path):
    threads = torch.get_num_threads()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / str(sleeper.pid)).write_text("3")  # a live run pinned to 3 threads
        share = CpuShare(tmp_path, cores=8, interval=0.0)
        assert share.threads() == 5
        pinned = CpuShare(tmp_path / "other", cores=8, interval=0.0, pinned=2)
        assert pinned.threads() == 2 and (tmp_path / "other" / str(os.getpid())).read_text() == "2"
        pinned.close()
        share.close()
    finally:
        sleeper.kill()
        torch.set_num_threads(threads)
