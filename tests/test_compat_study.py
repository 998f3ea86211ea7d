"""The study end to end on the tiny synthetic benchmark, the moment tables it is built on, and the
protocol both compatibility studies share (old subset, summary writer)."""

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from grounding.cli import train_compat
from grounding.config import load_config
from grounding.data.build import DataBundle
from grounding.errors import GroundingError
from grounding.studies.compat_report import CURVE_COLUMNS, RESULT_COLUMNS
from grounding.studies.dual_encoder import DualEncoder, build_dual_encoder, embed_split
from grounding.studies.moment_split import build_moment_split
from grounding.studies.protocol import OldModelPlan, StudySummary, Table
from tests.conftest import TINY_MODEL, tiny_config, tiny_overrides

REPO = Path(__file__).resolve().parents[1]

CONFIG = REPO / "configs" / "compat" / "synthetic.yaml"
METHODS = ["independent", "l2", "bct", "ract", "unibct", "bict", "bict_joint"]


# A tiny study: the tests' tiny model, 1 epoch per model, 2 backfill steps.
TINY_STUDY = {
    **{f"compat.model.{key}": value for key, value in TINY_MODEL.items()},
    "compat.train.epochs": 1, "compat.train.batch_size": 32, "compat.old.train.epochs": 1,
    "compat.adapter.epochs": 2, "compat.adapter.hidden": 16, "compat.backfill.steps": 2,
    "compat.eval.every_epoch": False,
}


def compat_overrides(root: Path, **extra: object) -> list[str]:
    """The command line of a tiny study on the tiny benchmark."""
    return tiny_overrides(root, **{**TINY_STUDY, **extra})


@pytest.fixture(scope="module")
def study_dir(tiny_synthetic, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("compat") / "run"
    assert train_compat.main(["--config", str(CONFIG), "--work-dir", str(work), *compat_overrides(tiny_synthetic)]) == 0
    return work


def test_moment_split_shares_moments_and_batches_whole_videos(tiny_synthetic):
    cfg = tiny_config(tiny_synthetic, "compat/synthetic")
    data = DataBundle(cfg)
    records = data.records("train")
    split = build_moment_split(records + records[:3], data.bank, data.text)  # 3 queries repeated: same moments
    assert split.num_queries == len(records) + 3 and split.num_moments <= len(records)
    assert split.query_moment[-3:].tolist() == split.query_moment[:3].tolist()
    inside = split.moment_mask.sum(1)
    assert (inside > 0).all()
    batches = split.video_batches(16, torch.Generator().manual_seed(0))
    seen = torch.cat(batches)
    assert sorted(seen.tolist()) == list(range(split.num_queries))
    query_video = split.moment_video[split.query_moment]
    videos = [set(query_video[b].tolist()) for b in batches]
    assert all(not (a & b) for i, a in enumerate(videos) for b in videos[i + 1:])  # a video lies in one batch
    batch, moment = split.batch(batches[0])
    assert batch.video.shape[0] == len(videos[0]) and batch.inside.shape == (len(batches[0]), 16)
    assert torch.equal(batch.inside > 0, split.moment_mask[moment])
    assert torch.equal(torch.unique(query_video[batches[0]])[batch.vid_index], query_video[batches[0]])
    subset = split.select([0, 1, 2])
    assert subset.num_queries == 3 and subset.query_moment.max() < subset.num_moments


def test_embedding_a_split_matches_embedding_each_moment_alone(tiny_synthetic):
    cfg = tiny_config(tiny_synthetic, "compat/synthetic", **TINY_STUDY)
    data = DataBundle(cfg)
    split = build_moment_split(data.records("test"), data.bank, data.text)
    model = build_dual_encoder(dict(cfg.compat.model), split, len(data.text)).eval()
    emb = embed_split(model, split, batch_size=4)  # several chunks of videos and moments
    assert emb.moments.shape == (split.num_moments, 16) and emb.sentences.shape == (split.num_queries, 16)
    for m in (0, split.num_moments - 1):
        v = split.moment_video[m]
        with torch.no_grad():
            alone = model.embed_moments(split.videos[v:v + 1], split.video_mask[v:v + 1], split.moment_mask[m:m + 1])
        torch.testing.assert_close(emb.moments[m:m + 1], alone, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_study_writes_every_output(study_dir):
    for name in ("config.yaml", "train.log", "results.csv", "hot_refresh.csv", "hot_refresh.png", "hot_refresh.pdf",
                 "summary.md", "metrics.json", "checkpoints/old.pt", "checkpoints/new_bict.pt"):
        assert (study_dir / name).is_file(), name
    assert list((study_dir / "tb").glob("events.out.tfevents.*"))
    with (study_dir / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == RESULT_COLUMNS
    assert [r["method"] for r in rows] == METHODS
    assert len({r["old_self"] for r in rows}) == 1
    assert [bool(r["adapted_cross"]) for r in rows] == [False] * 5 + [True, True]
    low, high = (float(x) for x in rows[0]["cross_ci"].split(".."))
    assert low <= float(rows[0]["cross"]) <= high
    assert all(0 <= float(r[c]) <= 100 for r in rows for c in ("old_self", "new_self", "cross", "nfr"))
    with (study_dir / "hot_refresh.csv").open() as fh:
        curves = list(csv.DictReader(fh))
    assert tuple(curves[0]) == CURVE_COLUMNS
    assert len(curves) == (len(METHODS) + 2) * 2 * 3  # (7 methods + 2 with +adapter) x 2 orders x 3 fractions
    independent = [r for r in curves if r["method"] == "independent" and r["order"] == "random"]
    by_method = {r["method"]: r for r in rows}
    assert float(independent[0]["R1"]) == pytest.approx(float(by_method["independent"]["cross"]), abs=0.01)
    assert float(independent[-1]["R1"]) == pytest.approx(float(by_method["independent"]["new_self"]), abs=0.01)
    summary = (study_dir / "summary.md").read_text()
    assert "## Claims" in summary and "| method | old_self | new_self | cross | cross_ci | adapted_cross | nfr | nfr_ci |" in summary
    assert "bict (as its paper defines it) beats bict_joint (our variant)" in summary
    assert "correct items per query on average" in summary


@pytest.mark.slow
def test_study_refuses_to_overwrite_and_reuses_a_saved_old_model(study_dir, tiny_synthetic, tmp_path, capsys):
    args = ["--config", str(CONFIG), "--work-dir", str(study_dir), *compat_overrides(tiny_synthetic)]
    with pytest.raises(SystemExit) as exit_info:
        train_compat.main(args)
    assert exit_info.value.code == 2 and "--overwrite" in capsys.readouterr().err
    reuse = tmp_path / "reuse"
    train_compat.main(["--config", str(CONFIG), "--work-dir", str(reuse), *compat_overrides(
        tiny_synthetic, **{"compat.old.checkpoint": study_dir / "checkpoints" / "old.pt", "compat.run": "[independent]"})])
    with (study_dir / "results.csv").open() as a, (reuse / "results.csv").open() as b:
        assert next(csv.DictReader(b))["old_self"] == next(csv.DictReader(a))["old_self"]


@pytest.mark.parametrize("config", sorted((REPO / "configs" / "compat").glob("*.yaml")), ids=lambda p: p.name)
def test_every_compat_config_loads(config):
    from grounding.studies.protocol import compat_section

    section = compat_section(load_config(config))
    assert set(section["run"]) <= set(section["methods"])


def test_config_errors_are_user_errors(tiny_synthetic, tmp_path, capsys):
    base = ["--work-dir", str(tmp_path / "x"), *compat_overrides(tiny_synthetic)]
    with pytest.raises(SystemExit):
        train_compat.main(["--config", str(CONFIG), *base, "compat.run=[independent,magic]"])
    assert "compat.run names ['magic']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_compat.main(["--config", str(REPO / "configs" / "synthetic.yaml"), "--work-dir", str(tmp_path / "z"),
                           *tiny_overrides(tiny_synthetic)])
    assert "no 'compat' section" in capsys.readouterr().err
    with pytest.raises(GroundingError, match="embed_dim"):
        from grounding.studies.compat_study import run_study

        run_study(load_config(CONFIG, compat_overrides(tiny_synthetic, **{
            "compat.old.model.embed_dim": 8, "compat.run": "[independent]"})), tmp_path / "y")


def test_dual_encoder_embeds_several_moments_of_a_video_in_one_pass():
    """The SharedSpaceModel contract: a (B, P, T) moment mask gives (B, P, E), each row what the (B, T)
    call gives for that moment alone; clips past the video's end never count."""
    torch.manual_seed(0)
    model = DualEncoder(video_dim=8, dim=16, embed_dim=8, heads=2, vocab_size=20, word_dim=8).eval()
    video = torch.randn(2, 6, 8)
    video_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    moments = torch.zeros(2, 3, 6, dtype=torch.bool)
    moments[:, 0, :2] = moments[:, 1, 1:5] = moments[:, 2, 3:] = True  # the second video's last one runs into padding
    with torch.no_grad():
        together = model.embed_moments(video, video_mask, moments)
        alone = [model.embed_moments(video, video_mask, moments[:, p]) for p in range(3)]
        clipped = model.embed_moments(video, video_mask, moments[:, 2] & video_mask)
    assert together.shape == (2, 3, model.embed_dim) and model.embed_dim == 8
    for p in range(3):
        torch.testing.assert_close(together[:, p], alone[p])
    torch.testing.assert_close(together[:, 2], clipped)
    words, word_mask = torch.randint(1, 20, (2, 5)), torch.ones(2, 5, dtype=torch.bool)
    assert model.embed_sentences(words, word_mask).shape == (2, 8)
    assert 0 < model.temperature < 1


def test_one_old_subset_rule():
    section = {"old": {"train_fraction": 0.35, "subset_seed": 0, "train": {"seed": 4}}, "train": {"seed": 0}}
    plan = OldModelPlan.from_section(section)
    keep = plan.subset(100)
    assert len(keep) == 35 and keep.tolist() == sorted(set(keep.tolist())) and 0 <= int(keep.min())
    assert torch.equal(keep, OldModelPlan.from_section(section).subset(100))  # seeded
    assert not torch.equal(keep, replace(plan, subset_seed=1).subset(100))
    assert len(replace(plan, train_fraction=0.001).subset(10)) == 1  # never an empty subset
    assert plan.seed == 4 and plan.checkpoint is None
    assert OldModelPlan.from_section({"old": {}, "train": {"seed": 3}}).seed == 4  # not the new models' initialisation
    with pytest.raises(GroundingError, match=r"compat.old.train_fraction must be in \(0, 1\], not 1.5"):
        OldModelPlan.from_section({"old": {"train_fraction": 1.5}})


def test_the_ccman_study_trains_its_old_model_on_the_protocol_subset(tiny_synthetic, tmp_path, monkeypatch):
    from grounding.data.build import load_split_records
    from grounding.studies.ccman_study import CCMANStudy

    cfg = load_config(CONFIG, tiny_overrides(tiny_synthetic, **{"compat.old.subset_seed": 5}))
    train = [r for r in load_split_records(cfg.data, "train") if r.windows]
    study = CCMANStudy(cfg, tmp_path / "study")
    trained = {}

    def record_instead_of_training(name, values):
        trained[name] = values
        return tmp_path / name / "checkpoints" / "last.pt"

    monkeypatch.setattr(study, "_train", record_instead_of_training)
    study._old(train, train[:3])
    written = [json.loads(line)["qid"] for line in (tmp_path / "study/old_data/train.jsonl").read_text().splitlines()]
    plan = OldModelPlan.from_section(study.compat)
    assert written == [train[i].qid for i in plan.subset(len(train)).tolist()]
    assert trained["old"]["train.seed"] == plan.seed


def test_summary_files_are_written_whole_or_not_at_all(tmp_path):
    summary = StudySummary({"R@1": 12.5}, "# page\n", {"results.csv": Table(["method", "R@1"], [{"method": "l2", "R@1": "12.50"}])},
                           results_file="x_metrics.json", markdown_file="x_summary.md")
    paths = summary.write(tmp_path)
    assert sorted(p.name for p in paths) == sorted(p.name for p in tmp_path.iterdir())  # no temporary file left
    assert json.loads((tmp_path / "x_metrics.json").read_text()) == {"R@1": 12.5}
    assert (tmp_path / "x_summary.md").read_text() == "# page\n"
    with (tmp_path / "results.csv").open() as fh:
        assert list(csv.DictReader(fh)) == [{"method": "l2", "R@1": "12.50"}]
    broken = replace(summary, results={"R@1": object()}, markdown="# another page\n")  # not JSON: nothing is written
    with pytest.raises(TypeError):
        broken.write(tmp_path)
    assert (tmp_path / "x_summary.md").read_text() == "# page\n"


def test_the_ccman_studys_overrides_go_through_the_checker(tiny_synthetic, tmp_path, monkeypatch):
    """compat.ccman.overrides change every CCMAN of the study: a typo there is refused like one on the command
    line, not added as a key nothing reads."""
    from omegaconf import OmegaConf

    from grounding.studies import ccman_study

    cfg = load_config(CONFIG, tiny_overrides(tiny_synthetic))
    OmegaConf.update(cfg, "compat.ccman.overrides", ["model.dimm=64"], force_add=True)
    study = ccman_study.CCMANStudy(cfg, tmp_path / "study")
    trained = []
    monkeypatch.setattr(ccman_study, "run_training", lambda cfg, work, **_: trained.append(cfg))
    with pytest.raises(GroundingError, match="did you mean 'model.dim'"):
        study._train("new_l2", {})
    study.settings["overrides"] = ["model.dim=48"]
    study._train("new_l2", {"train.seed": 3})
    assert (trained[-1].model.dim, trained[-1].train.seed) == (48, 3)


def test_old_feature_view_is_a_seeded_projection_of_the_same_videos():
    import math

    from grounding.studies.feature_views import old_feature_view, projection_view
    from grounding.studies.moment_split import MomentSplit

    videos = torch.randn(2, 3, 8)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    split = MomentSplit(videos, mask, torch.zeros(1, 2, dtype=torch.long), torch.ones(1, 2, dtype=torch.bool),
                        torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long), torch.tensor([[0, 1]]),
                        torch.ones(2), ["q"], ["a", "b"])
    assert old_feature_view(split, None) is split
    view = old_feature_view(split, {"kind": "projection", "dim": 4, "seed": 7})
    weight = torch.randn(8, 4, generator=torch.Generator().manual_seed(7)) / math.sqrt(8)
    torch.testing.assert_close(view.videos, torch.tanh(videos @ weight) * mask[..., None])
    assert view.video_dim == 4 and view.videos[0, 2].abs().sum() == 0  # padding stays zero
    torch.testing.assert_close(projection_view(videos, 4, 7), projection_view(videos, 4, 7))
    with pytest.raises(GroundingError, match="compat.old.features.kind must be 'projection'"):
        old_feature_view(split, {"kind": "pca"})
