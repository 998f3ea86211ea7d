import pytest
import torch

from grounding.engine.checkpoint import load_checkpoint, save_atomic
from grounding.errors import GroundingError


def test_a_crash_mid_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_atomic({"epoch": 1}, path)

    def crash(obj, fh):
        fh.write(b"partial bytes")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_atomic({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_a_truncated_checkpoint_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(GroundingError, match="cannot be read"):
        load_checkpoint(bad)
