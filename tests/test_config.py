from pathlib import Path

import pytest
from omegaconf import OmegaConf

from grounding.config import load_config, parse_overrides, save_config
from grounding.errors import GroundingError

REPO = Path(__file__).resolve().parents[1]
TOP_CONFIGS = ["charades_sta", "activitynet", "tacos", "qvhighlights", "synthetic", "synthetic_baseline", "synthetic_qvh"]


def test_base_parts_merge_in_order_then_file_then_overrides(tmp_path):
    (tmp_path / "a.yaml").write_text("x: 1\ny: {p: 1, q: 1}\n")
    (tmp_path / "b.yaml").write_text("y: {q: 2}\n")
    (tmp_path / "top.yaml").write_text("_base_: [a.yaml, b.yaml]\ny: {r: 3}\n")
    cfg = load_config(tmp_path / "top.yaml", ["y.p=9", "+z=hello"])
    assert OmegaConf.to_container(cfg) == {"x": 1, "y": {"p": 9, "q": 2, "r": 3}, "z": "hello"}


def test_override_without_equals_is_a_clear_error():
    with pytest.raises(GroundingError, match="dotted.key=value"):
        parse_overrides(["train.epochs"])


def test_missing_config_and_bad_yaml_name_the_file(tmp_path):
    with pytest.raises(GroundingError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(GroundingError, match="bad.yaml"):
        load_config(bad)


def test_self_including_config_is_rejected(tmp_path):
    (tmp_path / "loop.yaml").write_text("_base_: [loop.yaml]\n")
    with pytest.raises(GroundingError, match="includes itself"):
        load_config(tmp_path / "loop.yaml")


def test_saved_config_reloads_identically(tmp_path):
    cfg = load_config(REPO / "configs" / "charades_sta.yaml", ["train.epochs=3"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize("name", TOP_CONFIGS)
def test_every_benchmark_config_resolves(name):
    cfg = load_config(REPO / "configs" / f"{name}.yaml")
    assert cfg.model.video_dim > 0 and cfg.data.annotations[cfg.data.train_split]
    assert cfg.train.device in ("auto", "cpu", "cuda")


def test_charades_keys_follow_the_design_contract():
    cfg = load_config(REPO / "configs" / "charades_sta.yaml")
    assert cfg.data.annotations.train == "annotations/charades_sta_train.txt"
    assert cfg.data.annotations.test == "annotations/charades_sta_test.txt"
    assert cfg.data.durations.test == "annotations/Charades_v1_test.csv"
    assert cfg.data.features == "features" and cfg.model.video_dim == 1024
    assert {"epochs", "batch_size", "lr", "device"} <= set(cfg.train)


def test_feature_dims_of_the_standard_sets():
    dims = {n: load_config(REPO / "configs" / f"{n}.yaml").model.video_dim for n in TOP_CONFIGS[:4]}
    assert dims == {"charades_sta": 1024, "activitynet": 500, "tacos": 4096, "qvhighlights": 2304 + 512}


def _tree(tmp_path, text="train: {epochs: 12, lr: 4.0e-4, stages: [a, b], fast: auto, flag: true}\nopen: {}\nnothing: null\n"):
    (tmp_path / "c.yaml").write_text(text)
    return tmp_path / "c.yaml"


@pytest.mark.parametrize("override,message", [
    ("train.epoch=3", "'train.epoch' is not a key of .*c.yaml .*did you mean 'train.epochs'\\? write \\+train.epoch=3"),
    ("trian.epochs=3", "'trian.epochs' is not a key .*did you mean 'train.epochs'\\?"),
    ("train.epochs=two", "train.epochs takes an integer \\(it is 12 in .*c.yaml\\), not 'two'"),
    ("train.epochs=2.5", "train.epochs takes an integer"),
    ("train.epochs=true", "train.epochs takes an integer"),
    ("train.lr=fast", "train.lr takes a number"),
    ("train.flag=1", "train.flag takes a boolean"),
    ("train.stages=a", "train.stages takes a list like \\[a,b\\] \\(it is \\[a, b\\]"),
    ("train.fast=[x]", "train.fast takes a string"),
    ("train={epochs: 1, lr2: 3}", "'train.lr2' is not a key .*did you mean 'train.lr'"),
    ("train.epochs.inner=1", "'train.epochs' is an integer, not a section"),
])
def test_overrides_are_checked_against_the_composed_config(tmp_path, override, message):
    with pytest.raises(GroundingError, match=message):
        load_config(_tree(tmp_path), [override])


def test_overrides_that_fit_the_config_are_accepted(tmp_path):
    cfg = load_config(_tree(tmp_path), [
        "train.lr=1", "train.fast=true", "train.flag=false", "train.stages=[c]", "train.epochs=null",
        "open.anything.below=1", "nothing.at.all=[1]", "+train.note=hi", "train.note=again", "+fresh=3",
    ])
    assert cfg.train.lr == 1 and cfg.train.fast is True and cfg.train.stages == ["c"] and cfg.train.epochs is None
    assert cfg.open.anything.below == 1 and cfg.nothing.at.all == [1]
    assert cfg.train.note == "again" and cfg.fresh == 3


@pytest.mark.parametrize("name", TOP_CONFIGS + ["compat/synthetic", "compat/charades_sta"])
def test_every_config_takes_the_ablation_variants(name):
    from grounding.studies.ablation import VARIANTS, variant_config

    user = ["train.warmup_epochs=0.5", "data.bad_features=drop"]
    configs = {variant: variant_config(REPO / "configs" / f"{name}.yaml", variant, user) for variant in VARIANTS}
    for variant, cfg in configs.items():
        assert cfg.train.warmup_epochs == 0.5 and cfg.data.bad_features == "drop", variant  # the user's overrides
        for change in VARIANTS[variant]:  # and the variant's own
            key = change.split("=")[0]
            assert OmegaConf.select(cfg, key) == OmegaConf.select(OmegaConf.from_dotlist([change]), key), change
        assert cfg.model.name == ("span_baseline" if variant == "baseline" else configs["full"].model.name), variant


@pytest.mark.parametrize("name", ["synthetic", "synthetic_baseline", "compat/synthetic"])
def test_the_tiny_test_config_fits_the_tiny_benchmark(name, tiny_synthetic):
    from grounding.data.build import DataBundle
    from tests.conftest import tiny_config

    cfg = tiny_config(tiny_synthetic, name)
    assert cfg.model.name == ("span_baseline" if name == "synthetic_baseline" else "ccman")  # the config's own model
    item = DataBundle(cfg).dataset("train")[0]  # refuses features of another dim than model.video_dim
    assert tuple(item["video"].shape) == (16, cfg.model.video_dim)  # resampled to the tiny data.num_clips
