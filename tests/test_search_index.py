"""The moment index without a trained model: round trips, add/remove, a killed build, locks, bad folders."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from grounding.errors import GroundingError
from grounding.search.build import build_index
from grounding.search.embed import Granularity, windows_for
from grounding.search.index import MomentIndex
from grounding.search.store import WriterLock
from tests.index_fakes import DIM, FEAT, FakeModel, library


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def build(out, model, videos, feats, **kw):
    return build_index(model, out, videos, lambda v: feats[v], {"root": "."}, Granularity(), progress=False, **kw)


def test_proposal_windows_cover_every_scale_and_the_end():
    windows = windows_for(32, Granularity())
    assert len(windows) == 57  # 31 + 15 + 7 + 3 + 1
    assert [0, 31] in windows.tolist() and [28, 31] in windows.tolist() and [24, 31] in windows.tolist()
    assert [30, 31] in windows.tolist() and [0, 1] in windows.tolist()
    assert len(windows_for(32, Granularity("both"))) == 57 + 32  # the shortest proposal (2 clips) is never a single clip
    assert len(windows_for(32, Granularity("proposals", [0.125, 0.25, 0.5, 1.0]))) == 26  # the earlier default
    assert len(windows_for(5, Granularity("proposals", [1.0], 0.5))) == 1


def test_round_trip_returns_the_stored_entries(tmp_path):
    model = FakeModel()
    videos, feats = library(5)
    report = build(tmp_path / "idx", model, videos, feats)
    assert (report.added, report.entries, report.kind) == (5, 5 * 42, "flat")  # 16 clips: 16 + 15 + 7 + 3 + 1 windows
    index = MomentIndex.open(tmp_path / "idx")
    assert set(index.videos()) == set(feats) and index.spaces() == {"fake0"}
    expected = model.embed_videos([feats["v003"]], [32.0], Granularity())[0]
    meta = index.meta()
    rows = np.flatnonzero([index.video_table[v][0] == "v003" for v in meta["video"]])
    np.testing.assert_allclose(index.embeddings(rows), expected[0], atol=1e-6)
    np.testing.assert_allclose(meta["spans"][rows], expected[1], atol=1e-5)
    hits = index.search(expected[0], 1)  # each stored vector finds itself first
    np.testing.assert_array_equal(hits.rows[:, 0], rows)
    np.testing.assert_allclose(hits.scores[:, 0], 1.0, atol=1e-5)


def test_incremental_add_and_remove(tmp_path):
    model = FakeModel()
    videos, feats = library(6)
    build(tmp_path / "idx", model, videos[:4], feats)
    report = build(tmp_path / "idx", model, videos, feats)  # the same call with two more videos adds only them
    assert (report.added, report.already) == (2, 4)
    from grounding.search.build import remove_videos

    left, missing = remove_videos(tmp_path / "idx", ["v001", "nope"])
    assert (left, missing) == (5, ["nope"])
    index = MomentIndex.open(tmp_path / "idx")
    assert "v001" not in index.videos() and index.num_entries == 5 * 42
    query = model.embed_videos([feats["v001"]], [32.0], Granularity())[0][0]
    hits = index.search(query, index.num_entries)
    found = {index.video_table[index.meta()["video"][r]][0] for r in hits.rows.ravel() if r >= 0}
    assert "v001" not in found and len(found) == 5  # removed entries are never returned


def test_a_killed_build_leaves_the_last_commit_and_a_rerun_finishes_it(tmp_path):
    model = FakeModel()
    videos, feats = library(10)
    calls = {"n": 0}

    def dying(vid):
        calls["n"] += 1
        if calls["n"] > 7:
            raise RuntimeError("killed")  # the process dies mid-build
        return feats[vid]

    with pytest.raises(RuntimeError, match="killed"):
        build_index(model, tmp_path / "idx", videos, dying, {"root": "."}, Granularity(), batch_videos=2,
                    commit_every=4, progress=False)
    index = MomentIndex.open(tmp_path / "idx")  # readable: the segments committed before the crash
    assert len(index.videos()) == 4 and index.search(unit(np.ones((1, DIM))), 3).rows.min() >= 0
    report = build(tmp_path / "idx", model, videos, feats)
    assert (report.already, report.added) == (4, 6)
    index = MomentIndex.open(tmp_path / "idx")
    assert set(index.videos()) == set(feats)
    table = index.video_table
    assert sorted(v[0] for v in table) == sorted(feats)  # every video exactly once, none embedded twice


def test_missing_and_corrupt_features_are_skipped_and_listed(tmp_path):
    model = FakeModel()
    videos, feats = library(4)
    feats["v001"] = np.full((16, FEAT), np.nan, dtype=np.float32)

    def load(vid):
        if vid == "v002":
            raise GroundingError(f"no features for video '{vid}'; extract them")
        return feats[vid]

    report = build_index(model, tmp_path / "idx", videos, load, {"root": "."}, Granularity(), progress=False)
    assert report.added == 2 and sorted(report.skipped) == ["v001", "v002"]
    assert "skipped" in report.summary() and "v002" in report.summary()


def test_another_model_or_dim_is_refused(tmp_path):
    videos, feats = library(3)
    build(tmp_path / "idx", FakeModel(0), videos, feats)
    with pytest.raises(GroundingError, match="built by another model"):
        build(tmp_path / "idx", FakeModel(1), videos, feats)
    with pytest.raises(GroundingError, match="4-d"):
        build(tmp_path / "idx", FakeModel(0, dim=4), videos, feats)
    with pytest.raises(GroundingError, match="dim 4 cannot search"):
        MomentIndex.open(tmp_path / "idx").search(unit(np.ones((1, 4))), 1)
    report = build(tmp_path / "idx", FakeModel(1), videos, feats, overwrite=True)
    assert report.added == 3 and MomentIndex.open(tmp_path / "idx").spaces() == {"fake1"}


def test_a_folder_that_is_not_an_index_is_refused(tmp_path):
    with pytest.raises(GroundingError, match="does not exist"):
        MomentIndex.open(tmp_path / "nothing")
    with pytest.raises(GroundingError, match="is not a moment index"):
        MomentIndex.open(tmp_path)
    (tmp_path / "index.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(GroundingError, match="not a moment index manifest"):
        MomentIndex.open(tmp_path)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("user data")
    with pytest.raises(GroundingError, match="holds files but no moment index"):
        build(other, FakeModel(), *library(2))
    assert (other / "notes.txt").read_text() == "user data"


def test_two_writers_are_refused(tmp_path):
    videos, feats = library(2)
    build(tmp_path / "idx", FakeModel(), videos, feats)
    held, release = threading.Event(), threading.Event()

    def writer():  # flock is per open file: a second open in another thread is a second writer
        with WriterLock(tmp_path / "idx"):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=writer)
    thread.start()
    held.wait(5)
    try:
        with pytest.raises(GroundingError, match="is being written by process"):
            build(tmp_path / "idx", FakeModel(), videos, feats)
    finally:
        release.set()
        thread.join()
    assert build(tmp_path / "idx", FakeModel(), videos, feats).already == 2  # free again afterwards


def test_approximate_index_above_the_limit_finds_the_stored_vectors(tmp_path):
    rng = np.random.default_rng(0)
    emb = unit(rng.normal(size=(3000, DIM)))
    with MomentIndex.writer(tmp_path / "idx", create={"embed_dim": DIM, "index": {"exact_limit": 1000, "nprobe": 64}}) as index:
        model = index.register_model("m", "m", "embedded", "m.pt")
        index.add([(f"v{i}", 10.0, 0) for i in range(300)], list(emb.reshape(300, 10, DIM)),
                  [np.zeros((10, 2))] * 300, model)
        assert index.finalize() == "ivf"
    index = MomentIndex.open(tmp_path / "idx")
    assert index.faiss_kind == "ivf"
    hits = index.search(emb[:200], 1)
    assert (hits.rows[:, 0] == np.arange(200)).mean() > 0.95  # SQ8 codes: nearly always itself


@pytest.mark.slow  # trains an adapter (about 5 s)
def test_a_forward_adapter_moves_old_entries_into_a_genuinely_different_space(tmp_path):
    """Old index: FakeModel(0); queries: FakeModel(1)'s embeddings of one window of each video (another
    space). Searched as they are, the old entries rarely return the right video; once the adapter has
    rewritten them, nearly always. A no-op adapter (or one never applied) fails the second assert."""
    from grounding.search import upgrade

    old, new = FakeModel(0), FakeModel(1)
    videos, feats = library(40)
    build(tmp_path / "idx", old, videos, feats)
    train_videos, train_feats = library(60, seed=1)  # the adapter learns on other videos of the same kind
    upgrade.make_adapter(old, new, list(train_feats.values()), [v.duration for v in train_videos], Granularity(),
                         tmp_path / "adapter.pt", epochs=150, hidden=64)
    queries = np.stack([new.embed_videos([feats[v.vid]], [v.duration], Granularity())[0][0][5] for v in videos])

    def recall_at_1() -> float:
        index = MomentIndex.open(tmp_path / "idx")
        hits = index.search(queries, 1)
        found = [index.video_table[index.meta()["video"][r]][0] for r in hits.rows[:, 0]]
        return float(np.mean([f == v.vid for f, v in zip(found, videos, strict=True)]))

    before = recall_at_1()
    upgrade.apply_adapter(tmp_path / "idx", tmp_path / "adapter.pt", progress=False)
    after = recall_at_1()
    assert before < 0.3 and after > 0.8, (before, after)
    assert MomentIndex.open(tmp_path / "idx").spaces() == {new.fingerprint}
