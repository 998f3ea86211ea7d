import json
import re

import numpy as np
import pytest

from grounding.data.annotations import read_annotations
from grounding.data.synthetic import ACTIONS, OBJECTS, SyntheticSpec, _Generator, write_synthetic
from grounding.errors import GroundingError
from tests.conftest import TINY_SPEC


def _split(root, split):
    ann = root / "annotations"
    records = read_annotations("charades_sta", ann / f"charades_sta_{split}.txt", ann / f"Charades_v1_{split}.csv")
    tags = {json.loads(line)["qid"]: json.loads(line)["tags"] for line in (ann / f"charades_sta_{split}.tags.jsonl").read_text().splitlines()}
    return records, tags


def test_files_follow_the_charades_layout(tiny_synthetic):
    records, tags = _split(tiny_synthetic, "train")
    assert len(records) == len(tags) > 100
    for rec in records[:50]:
        feats = np.load(tiny_synthetic / "features" / f"{rec.vid}.npy")
        assert feats.dtype == np.float32 and feats.shape[1] == TINY_SPEC["feature_dim"]
        assert feats.shape[0] == int(np.ceil(rec.duration))  # 1 clip per second, spanning [0, duration) evenly
        assert 0 <= rec.windows[0][0] < rec.windows[0][1] <= rec.duration


def _combo(sentence):
    action = next(i for i, forms in enumerate(ACTIONS) if any(re.search(rf"\b{re.escape(f)}\b", sentence) for f in forms))
    obj = next(i for i, o in enumerate(OBJECTS) if re.search(rf"\b{o}\b", sentence))
    return action, obj


def test_heldout_combinations_never_appear_in_training(tiny_synthetic):
    train, train_tags = _split(tiny_synthetic, "train")
    test, tags = _split(tiny_synthetic, "test")
    seen = {_combo(r.query) for r in train if "plain" in train_tags[r.qid]}  # one action, one object each
    novel = [r for r in test if "novel" in tags[r.qid]]
    assert novel and all(_combo(r.query) not in seen for r in novel)


def _relational(seed, videos):
    """(events, query) pairs of the relational queries of ``videos`` generated training videos."""
    gen = _Generator(SyntheticSpec(seed=seed))
    out = []
    for _ in range(videos):
        events, queries = gen._events(novel=False)
        out += [(events, q) for q in queries if "temporal" in q["tags"]]
    return out


def test_relational_queries_pick_the_occurrence_next_to_the_reference_event():
    pairs = _relational(seed=4, videos=300)
    assert len(pairs) > 100
    for events, q in pairs:
        relation, reference = q["relation"]
        target = events[q["target"]]
        ref = next(i for i, e in enumerate(events) if f"{ACTIONS[e[0]][0]} {OBJECTS[e[1]]}" == reference)
        assert _answer(events, relation, target, ref) == q["target"]
        where = [i for i, e in enumerate(events) if e == target]
        assert q["occurrence"] == [where.index(q["target"]) + 1, len(where)] and len(where) >= 2
        # a decoy sharing a word with the reference sits elsewhere: taking it for Y changes the answer
        decoys = [i for i, e in enumerate(events) if e not in (events[ref], target)
                  and (e[0] == events[ref][0] or e[1] == events[ref][1])]
        assert any(_answer(events, relation, target, d) != q["target"] for d in decoys)


def _answer(events, relation, target, ref):
    """The occurrence of ``target`` nearest before (after) position ``ref``, or None."""
    side = [i for i, e in enumerate(events) if e == target and (i < ref if relation == "before" else i > ref)]
    return (side[-1] if relation == "before" else side[0]) if side else None


def test_the_keyword_alone_is_right_at_most_half_the_time():
    pairs = _relational(seed=5, videos=600)
    before = [q["occurrence"] for _, q in pairs if q["relation"][0] == "before"]
    after = [q["occurrence"] for _, q in pairs if q["relation"][0] == "after"]
    assert len(before) > 150 and len(after) > 150
    assert np.mean([i == 1 for i, _ in before]) < 0.5  # "before" is not always the first occurrence
    assert np.mean([i == n for i, n in after]) < 0.5  # nor "after" the last
    for rule_hits in (np.mean([i == 1 for i, _ in before + after]), np.mean([i == n for i, n in before + after])):
        assert rule_hits <= 0.55


def test_clip_times_span_the_video_as_the_resampler_assumes():
    from grounding.data.features import clip_to_seconds

    spec = SyntheticSpec(feature_dim=4, noise=0.0, background=0.0, boundary_fuzz=1e-3, min_duration=24.5, max_duration=24.5)
    gen = _Generator(spec)
    gen._events = lambda novel: ([(0, 0)], [{"target": 0, "text": "x", "tags": ["plain"]}])
    gen._layout = lambda duration, n: [(duration - 3.0, duration)]  # the last 3 s, up to the very end
    feats, duration, _ = gen.video(False)
    assert feats.shape[0] == 25
    start, end = clip_to_seconds(np.arange(25), 25, duration)
    inside = (start + end) / 2 >= duration - 3.0
    assert inside.sum() == 3 and np.array_equal(np.linalg.norm(feats, axis=1) > 1e-3, inside)


def test_an_event_is_not_the_sum_of_an_action_and_an_object_part():
    spec = SyntheticSpec(feature_dim=256, seed=0)
    gen = _Generator(spec)
    events = [(0, 0), (0, 1), (1, 0), (1, 1)]
    first, second = gen._look(events), gen._look(events)  # two videos
    # additive model: e(0,0) + e(1,1) == e(0,1) + e(1,0); the interaction term breaks it within a video
    residual = first[(0, 0)] + first[(1, 1)] - first[(0, 1)] - first[(1, 0)]
    assert np.linalg.norm(residual) > 0.5 * np.linalg.norm(first[(0, 0)])
    # the same event looks different in another video (per-video action style), alike within one
    assert not np.allclose(first[(0, 0)], second[(0, 0)])


def test_heldout_combinations_are_never_generated_for_training_videos():
    gen = _Generator(SyntheticSpec(seed=2))
    for _ in range(200):
        events, _ = gen._events(novel=False)
        assert not set(events) & gen.heldout


def test_every_plain_query_has_distractors_sharing_a_word():
    gen = _Generator(SyntheticSpec(seed=1))
    for _ in range(30):
        events, queries = gen._events(novel=False)
        for q in queries:
            if "plain" in q["tags"]:
                a, o = events[q["target"]]
                others = [e for i, e in enumerate(events) if i != q["target"]]
                assert any(e[0] == a for e in others) or any(e[1] == o for e in others)


def test_same_seed_same_data_and_foreign_folders_are_not_overwritten(tmp_path):
    spec = SyntheticSpec(train_videos=5, test_videos=4, feature_dim=8, seed=11)
    write_synthetic(tmp_path / "a", spec, progress=False)
    write_synthetic(tmp_path / "b", spec, progress=False)
    assert (tmp_path / "a/annotations/charades_sta_train.txt").read_text() == (tmp_path / "b/annotations/charades_sta_train.txt").read_text()
    write_synthetic(tmp_path / "a", spec, progress=False)  # same spec: reused, no error
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(GroundingError, match="--overwrite"):
        write_synthetic(tmp_path / "mine", spec, progress=False)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_keyword_and_best_fixed_window_on_hand_made_cases():
    from grounding.data.shortcuts import best_fixed_window, keyword, r1_at

    assert keyword("a person opens the door before taking a cup.") == "before"
    assert keyword("after washing a dish, the person holds the cup again.") == "after"
    assert keyword("the beforehand person.") == "" and keyword("before it, after it") == ""
    targets = np.array([[0.0, 0.2], [0.0, 0.2], [0.6, 1.0]])
    window = best_fixed_window(targets, step=0.1)
    assert r1_at(np.repeat(window[None], 3, 0), targets) == pytest.approx(200 / 3)
    assert window[0] == 0.0 and window[1] <= 0.4


def _records(windows_and_sentences):
    from grounding.data.records import MomentRecord

    return [MomentRecord(i, text, f"v{i}", 10.0, [[s, e]]) for i, (s, e, text) in enumerate(windows_and_sentences)]


def test_the_audit_finds_a_planted_keyword_shortcut():
    from grounding.data.shortcuts import audit

    rows = [(0.0, 2.0, "x before y."), (8.0, 10.0, "x after y."), (3.0, 6.0, "x."), (4.0, 7.0, "z.")] * 10
    train, test = _records(rows), _records(rows[:8])
    side = {i: {"tags": ["temporal"] if "before" in t or "after" in t else ["plain"]} for i, (_, _, t) in enumerate(rows)}
    result = audit(train, test, side, side)
    assert result["keyword_prior"]["temporal"] == 100.0 and result["fixed_window"]["temporal"] == 0.0
    assert result["text_only"]["temporal"] == 100.0  # the bag of words sees "before"/"after" too
    assert result["count"] == {"all": 8.0, "temporal": 4.0, "plain": 4.0}


def test_video_free_predictors_stay_near_chance_on_relational_queries(tmp_path):
    from grounding.data.shortcuts import audit_charades_folder

    write_synthetic(tmp_path, SyntheticSpec(train_videos=800, test_videos=400, feature_dim=2, seed=7), progress=False)
    result = audit_charades_folder(tmp_path)
    assert result["count"]["temporal"] > 200
    chance = result["tag_window"]["temporal"]  # the best fixed window for relational queries
    assert chance < 25
    assert result["keyword_prior"]["temporal"] <= chance + 5
    assert result["text_only"]["temporal"] <= chance + 5
    assert result["keyword_occurrence"]["temporal"] <= 50


def test_make_synthetic_prints_the_shortcut_audit(tmp_path, capsys):
    from tools.make_synthetic import main

    assert main(["--out", str(tmp_path / "syn"), "--train-videos", "40", "--test-videos", "20", "--feature-dim", "2"]) == 0
    out = capsys.readouterr().out
    assert "shortcut audit" in out and "keyword_prior" in out and "temporal" in out
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path / "mine"), "--feature-dim", "2"])
    assert exit_info.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


def test_a_short_training_beats_every_video_free_predictor(tmp_path):
    """CCMAN must learn what no shortcut gives: ~20 s on one CPU thread (64-d features at signal 0.6 are
    about as hard per clip as the default 1024-d at 0.25: the per-clip SNR grows with sqrt(dim))."""
    from grounding.config import load_config
    from grounding.data.shortcuts import audit_charades_folder
    from grounding.engine.trainer import Trainer
    from tests.conftest import REPO, tiny_overrides

    root = tmp_path / "data"
    write_synthetic(root, SyntheticSpec(train_videos=150, test_videos=60, feature_dim=64, signal=0.6, seed=3), progress=False)
    audit = audit_charades_folder(root)
    prior = max(audit[name]["all"] for name in ("fixed_window", "keyword_prior", "text_only"))
    cfg = load_config(REPO / "configs/synthetic.yaml", tiny_overrides(root, **{
        "train.epochs": 20, "train.lr": 3e-3, "model.dim": 64, "model.word_dim": 32, "train.num_figures": 0}))
    metrics = Trainer(cfg, tmp_path / "work").fit()["test"]
    assert prior < 20
    assert metrics["R1@0.5"] >= prior + 8, (metrics["R1@0.5"], audit)
