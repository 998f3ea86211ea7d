"""The checkpoint schema: atomic writes, clear errors, and checkpoints of the earlier layout still load."""

import pytest
import torch

from grounding.errors import GroundingError
from grounding.inference.checkpoint import SCHEMA_VERSION, Checkpoint, read_checkpoint, save_checkpoint
from tests.conftest import TINY_MODEL


def _tiny_ccman(**options):
    from grounding.models.ccman import CCMAN, CCMANConfig

    torch.manual_seed(0)
    return CCMAN(CCMANConfig(video_dim=8, **TINY_MODEL, **options), vocab_size=10).eval()


def test_a_crash_mid_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(Checkpoint({}, {}, training={"epoch": 1}), path)

    def crash(obj, fh):
        fh.write(b"partial bytes")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(Checkpoint({}, {}, training={"epoch": 2}), path)
    monkeypatch.undo()
    assert read_checkpoint(path).training == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_a_truncated_or_foreign_or_newer_checkpoint_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(GroundingError, match="cannot be read"):
        read_checkpoint(bad)
    torch.save({"weights": {}}, tmp_path / "foreign.pt")
    with pytest.raises(GroundingError, match="lacks"):
        read_checkpoint(tmp_path / "foreign.pt")
    torch.save({"version": SCHEMA_VERSION + 1, "model": {}, "config": {}}, tmp_path / "newer.pt")
    with pytest.raises(GroundingError, match="newer grounding"):
        read_checkpoint(tmp_path / "newer.pt")


def test_version_1_layout_is_upgraded_field_by_field(tmp_path):
    """The dict every checkpoint before the schema held: resume state and compat facts at the top level."""
    state = {"model": {"w": torch.ones(1)}, "optimizer": {"o": 1}, "scheduler": None, "scaler": {}, "epoch": 3,
             "step": 30, "best": 0.5, "rng": {"r": 2}, "config": {"model": {"name": "span_baseline"}},
             "text": {"words": ["<pad>"]}, "feature_provenance": {"stores": []}, "compatible_with": ["abc"]}
    torch.save(state, tmp_path / "v1.pt")
    ckpt = read_checkpoint(tmp_path / "v1.pt")
    assert ckpt.kind == "grounding" and ckpt.compatible_with == ["abc"] and ckpt.text == {"words": ["<pad>"]}
    assert ckpt.training == {"optimizer": {"o": 1}, "scheduler": None, "scaler": {}, "epoch": 3, "step": 30,
                             "best": 0.5, "rng": {"r": 2}}
    assert ckpt.config["model"] == {"name": "span_baseline", "saliency_head": False,  # no saliency_head.* weights
                                    "existence": False}  # nor existence.* statistics
    torch.save({"kind": "search_adapter", "adapter": {"a": torch.zeros(2)}, "old_dim": 4, "hidden": 8},
               tmp_path / "adapter.pt")
    adapter = read_checkpoint(tmp_path / "adapter.pt")
    assert adapter.kind == "search_adapter" and list(adapter.model) == ["a"]
    assert adapter.extras == {"old_dim": 4, "hidden": 8}


def test_a_checkpoint_from_before_the_saliency_head_is_built_without_one(tmp_path):
    """The model is *built* without the head (model.saliency_head=false), never edited after construction."""
    from grounding.inference.loading import build_model_from_checkpoint, text_input_of

    old = {k: v for k, v in _tiny_ccman().state_dict().items() if not k.startswith("saliency_head.")}
    cfg = {"model": {"name": "ccman", "video_dim": 8, **TINY_MODEL}, "text": {"input": "vocab"}}
    torch.save({"model": old, "config": cfg, "text": {"words": [f"w{i}" for i in range(10)]}}, tmp_path / "old.pt")
    ckpt = read_checkpoint(tmp_path / "old.pt")
    model = build_model_from_checkpoint(ckpt, text_input_of(ckpt), tmp_path / "old.pt")
    assert model.saliency_head is None and model.cfg.saliency_head is False
    with pytest.raises(GroundingError, match="does not fit"):  # a head-less state never loads into a model with one
        from grounding.inference.loading import load_weights

        load_weights(_tiny_ccman(), ckpt, tmp_path / "old.pt")


def test_a_checkpoint_of_another_model_is_one_clear_error(tmp_path):
    from grounding.inference.loading import load_weights

    state = Checkpoint({k: v for k, v in _tiny_ccman().state_dict().items() if not k.startswith("fine.")}, {})
    with pytest.raises(GroundingError, match="does not fit the model of this config"):
        load_weights(_tiny_ccman(), state, tmp_path / "other.pt")


FIXTURE = __import__("pathlib").Path(__file__).parent / "fixtures" / "checkpoint_v1"


def test_a_checkpoint_written_before_the_schema_gives_the_answers_it_gave_then():
    """``fixtures/checkpoint_v1`` was written and answered by commit 2e1f9f3 (``make_checkpoint_v1.py``):
    today's loader must rebuild the same model, so the Grounder's answers are identical."""
    import json

    import numpy as np

    from grounding import Grounder
    from tests.fixtures.make_checkpoint_v1 import features

    expected = json.loads((FIXTURE / "expected.json").read_text())
    ckpt = read_checkpoint(FIXTURE / "last.pt")
    assert ckpt.version == SCHEMA_VERSION and ckpt.training["epoch"] == 1 and ckpt.feature_provenance
    grounder = Grounder.from_pretrained(FIXTURE / "last.pt", device="cpu")
    short = grounder.video_from_features(features(0, 12), 30.0, vid="short")
    long = grounder.video_from_features(features(1, 400), 400.0, vid="long",
                                        provenance={"clip_len": 1.0, "max_duration": 40.0})
    for name, video in (("short", short), ("long", long)):
        got = grounder.predict(expected["queries"], video, top_k=3)
        for answer, then in zip(got, expected["answers"][name], strict=True):
            assert answer["pred_relevant_windows"] == then["pred_relevant_windows"]
            np.testing.assert_allclose(answer["pred_saliency_scores"], then["pred_saliency_scores"], atol=1e-4)
            assert {k: answer[k] for k in ("query", "vid", "duration")} == {k: then[k] for k in ("query", "vid", "duration")}
