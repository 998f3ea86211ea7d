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


def _tiny_ccman():
    from grounding.models.ccman import CCMAN, CCMANConfig
    from tests.conftest import TINY_MODEL

    torch.manual_seed(0)
    return CCMAN(CCMANConfig(video_dim=8, **TINY_MODEL), vocab_size=10).eval()


def test_a_checkpoint_from_before_the_saliency_head_loads_and_falls_back_to_inside_scores(tmp_path):
    from grounding.engine.checkpoint import load_weights
    from tests.test_models import _as_batch

    old = {k: v for k, v in _tiny_ccman().state_dict().items() if not k.startswith("saliency_head.")}
    model = _tiny_ccman()
    load_weights(model, {"model": old}, tmp_path / "old.pt")
    batch = _as_batch(torch.randn(1, 6, 8), torch.ones(1, 6, dtype=torch.bool), torch.tensor([[2, 3]]),
                      torch.ones(1, 2, dtype=torch.bool))
    assert model(batch).saliency is None  # decoding then reads the inside-moment logits, as before


def test_a_checkpoint_of_another_model_is_one_clear_error(tmp_path):
    from grounding.engine.checkpoint import load_weights

    state = {"model": {k: v for k, v in _tiny_ccman().state_dict().items() if not k.startswith("fine.")}}
    with pytest.raises(GroundingError, match="does not fit the model of this config"):
        load_weights(_tiny_ccman(), state, tmp_path / "other.pt")
