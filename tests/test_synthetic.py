import json
import re

import numpy as np
import pytest

from grounding.data.annotations import read_annotations
from grounding.errors import GroundingError
from grounding.synthetic import ACTIONS, OBJECTS, SyntheticSpec, World, write_synthetic
from grounding.synthetic.charades import CharadesGenerator
from tests.conftest import TINY_QVH_SPEC, TINY_SPEC


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
    gen = CharadesGenerator(SyntheticSpec(seed=seed))
    out = []
    for _ in range(videos):
        events, queries = gen.events(novel=False)
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
    gen = CharadesGenerator(spec)
    gen.events = lambda novel: ([(0, 0)], [{"target": 0, "text": "x", "tags": ["plain"]}])
    gen.world.spans = lambda duration, n: [(duration - 3.0, duration)]  # the last 3 s, up to the very end
    video = gen.video(False)
    feats, duration = video.features, video.duration
    assert feats.shape[0] == 25
    start, end = clip_to_seconds(np.arange(25), 25, duration)
    inside = (start + end) / 2 >= duration - 3.0
    assert inside.sum() == 3 and np.array_equal(np.linalg.norm(feats, axis=1) > 1e-3, inside)


def test_an_event_is_not_the_sum_of_an_action_and_an_object_part():
    spec = SyntheticSpec(feature_dim=256, seed=0)
    world = World(spec)
    events = [(0, 0), (0, 1), (1, 0), (1, 1)]
    first, second = world.look(events), world.look(events)  # two videos
    # additive model: e(0,0) + e(1,1) == e(0,1) + e(1,0); the interaction term breaks it within a video
    residual = first[(0, 0)] + first[(1, 1)] - first[(0, 1)] - first[(1, 0)]
    assert np.linalg.norm(residual) > 0.5 * np.linalg.norm(first[(0, 0)])
    # the same event looks different in another video (per-video action style), alike within one
    assert not np.allclose(first[(0, 0)], second[(0, 0)])


def test_heldout_combinations_are_never_generated_for_training_videos():
    gen = CharadesGenerator(SyntheticSpec(seed=2))
    for _ in range(200):
        events, _ = gen.events(novel=False)
        assert not set(events) & gen.world.heldout


def test_every_plain_query_has_distractors_sharing_a_word():
    gen = CharadesGenerator(SyntheticSpec(seed=1))
    for _ in range(30):
        events, queries = gen.events(novel=False)
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
    from grounding.synthetic.shortcuts import best_fixed_window, keyword, r1_at

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
    from grounding.synthetic.shortcuts import audit

    rows = [(0.0, 2.0, "x before y."), (8.0, 10.0, "x after y."), (3.0, 6.0, "x."), (4.0, 7.0, "z.")] * 10
    train, test = _records(rows), _records(rows[:8])
    side = {i: {"tags": ["temporal"] if "before" in t or "after" in t else ["plain"]} for i, (_, _, t) in enumerate(rows)}
    result = audit(train, test, side, side)
    assert result["keyword_prior"]["temporal"] == 100.0 and result["fixed_window"]["temporal"] == 0.0
    assert result["text_only"]["temporal"] == 100.0  # the bag of words sees "before"/"after" too
    assert result["count"] == {"all": 8.0, "temporal": 4.0, "plain": 4.0}


def test_video_free_predictors_stay_near_chance_on_relational_queries(tmp_path):
    from grounding.synthetic.shortcuts import audit_charades_folder

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


@pytest.mark.slow
def test_a_short_training_beats_every_video_free_predictor(tmp_path):
    """CCMAN must learn what no shortcut gives: ~20 s on one CPU thread (64-d features at signal 0.6 are
    about as hard per clip as the default 1024-d at 0.25: the per-clip SNR grows with sqrt(dim))."""
    from grounding.engine.trainer import Trainer
    from grounding.synthetic.shortcuts import audit_charades_folder
    from tests.conftest import tiny_config

    root = tmp_path / "data"
    write_synthetic(root, SyntheticSpec(train_videos=150, test_videos=60, feature_dim=64, signal=0.6, seed=3), progress=False)
    audit = audit_charades_folder(root)
    prior = max(audit[name]["all"] for name in ("fixed_window", "keyword_prior", "text_only"))
    cfg = tiny_config(root, **{
        "train.epochs": 20, "train.lr": 3e-3, "model.dim": 64, "model.word_dim": 32, "train.num_figures": 0})
    metrics = Trainer(cfg, tmp_path / "work").fit()["test"]
    assert prior < 20
    assert metrics["R1@0.5"] >= prior + 8, (metrics["R1@0.5"], audit)


# ---------------------------------------------------------------- the QVHighlights layout

QVH_KEYS = ["qid", "query", "duration", "vid", "relevant_clip_ids", "saliency_scores", "relevant_windows"]


def _qvh_lines(root, split):
    ann = root / "annotations"
    lines = [json.loads(line) for line in (ann / f"highlight_{split}_release.jsonl").read_text().splitlines()]
    side = [json.loads(line) for line in (ann / f"highlight_{split}_release.tags.jsonl").read_text().splitlines()]
    return lines, {s["qid"]: s for s in side}


def test_qvhighlights_layout_round_trips_through_the_reader(tiny_qvh_synthetic):
    qids = []
    for split in ("train", "val"):
        lines, side = _qvh_lines(tiny_qvh_synthetic, split)
        records = read_annotations("qvhighlights", tiny_qvh_synthetic / "annotations" / f"highlight_{split}_release.jsonl")
        assert len(records) == len(lines) == len(side) > 20 and set(side) == {line["qid"] for line in lines}
        for line, rec in zip(lines, records, strict=True):
            assert list(line) == QVH_KEYS
            assert isinstance(line["duration"], int) and line["duration"] % 2 == 0 and 30 <= line["duration"] <= 150
            assert (rec.qid, rec.query, rec.vid, rec.duration) == (line["qid"], line["query"], line["vid"], line["duration"])
            assert rec.windows == [[float(s), float(e)] for s, e in line["relevant_windows"]]
            assert rec.extra == {"relevant_clip_ids": line["relevant_clip_ids"], "saliency_scores": line["saliency_scores"]}
            for s, e in line["relevant_windows"]:  # integer seconds on the 2 s grid, inside the video
                assert s % 2 == 0 and e % 2 == 0 and 0 <= s < e <= line["duration"]
            # clip k = [2k, 2k + 2): the ids are exactly the clips of the windows, each scored by 3 annotators
            assert line["relevant_clip_ids"] == [k for s, e in line["relevant_windows"] for k in range(s // 2, e // 2)]
            assert [len(s) for s in line["saliency_scores"]] == [3] * len(line["relevant_clip_ids"])
            assert all(isinstance(x, int) and 0 <= x <= 4 for s in line["saliency_scores"] for x in s)
        qids += [line["qid"] for line in lines]
    assert len(qids) == len(set(qids))  # unique across splits, as in the real files


def test_qvhighlights_layout_has_the_real_files_format(tiny_qvh_synthetic, shared):
    real = json.loads((shared / "annotations/qvhighlights/highlight_val_release.jsonl").read_text().splitlines()[0])
    ours = _qvh_lines(tiny_qvh_synthetic, "val")[0][0]
    assert list(ours) == list(real)
    for key in real:
        assert type(ours[key]) is type(real[key]), key
    assert len(ours["saliency_scores"][0]) == len(real["saliency_scores"][0]) == 3


def test_several_window_queries_are_present_and_name_every_occurrence(tiny_qvh_synthetic):
    lines, side = _qvh_lines(tiny_qvh_synthetic, "train")
    several = [line for line in lines if len(line["relevant_windows"]) > 1]
    assert 0.15 < len(several) / len(lines) < 0.6
    for line in lines:
        entry = side[line["qid"]]
        assert ("repeated" in entry["tags"]) == (entry["occurrences"] > 1)
        assert len(line["relevant_windows"]) <= entry["occurrences"]  # windows that touch are merged
        if len(line["relevant_windows"]) > 1:
            assert "repeated" in entry["tags"]
    # the sentence describes every occurrence: the query's targets are all and only its event's occurrences
    from grounding.synthetic.qvhighlights import HighlightGenerator

    gen = HighlightGenerator(SyntheticSpec(**TINY_QVH_SPEC))
    for _ in range(50):
        sequence, queries = gen.events(novel=False)
        for q in queries:
            event = sequence[q["targets"][0]]
            assert q["targets"] == [i for i, e in enumerate(sequence) if e == event] and _combo(q["text"]) == event


def test_saliency_is_graded_higher_in_the_core_of_an_event():
    from grounding.synthetic.qvhighlights import HighlightGenerator

    gen = HighlightGenerator(SyntheticSpec(**{**TINY_QVH_SPEC, "annotator_noise": 0.0}))
    core, edge, levels = [], [], set()
    for _ in range(40):
        for q in gen.video(novel=False).queries:
            scores = np.array(q.scores)
            assert np.array_equal(scores, scores[:, :1].repeat(3, 1))  # noise-free annotators agree
            assert scores.max() == 4  # the core of the event
            levels |= set(scores[:, 0].tolist())
            for s, e in q.windows:
                if e - s >= 10:  # 5 clips or more: first/last clip against the middle one
                    w = scores[[q.clip_ids.index(k) for k in range(s // 2, e // 2)], 0]
                    edge += [w[0], w[-1]]
                    core.append(w[len(w) // 2])
    assert {1, 2, 3, 4} <= levels and len(core) > 20
    assert np.mean(core) > np.mean(edge) + 1.0


def test_annotators_disagree_by_annotator_noise():
    from grounding.synthetic.qvhighlights import HighlightGenerator

    gen = HighlightGenerator(SyntheticSpec(**{**TINY_QVH_SPEC, "annotator_noise": 0.6}))
    scores = np.concatenate([np.array(q.scores) for _ in range(20) for q in gen.video(novel=False).queries])
    disagree = (scores.max(1) != scores.min(1)).mean()
    assert 0.3 < disagree < 0.95 and set(np.unique(scores)) <= {0, 1, 2, 3, 4}


def test_qvhighlights_features_have_one_row_per_2s_clip_and_show_the_saliency(tmp_path):
    from grounding.config import load_config
    from grounding.data.build import build_feature_bank
    from grounding.data.features import clip_to_seconds
    from grounding.synthetic.qvhighlights import HighlightGenerator
    from tests.conftest import REPO

    spec = SyntheticSpec(**{**TINY_QVH_SPEC, "train_videos": 12, "test_videos": 2, "min_duration": 141, "max_duration": 150})
    write_synthetic(tmp_path, spec, progress=False)
    cfg = load_config(REPO / "configs/synthetic_qvh.yaml", [f"data.root={tmp_path}", "data.synthetic=null", "model.video_dim=32"])
    bank = build_feature_bank(cfg.data, cfg.model.video_dim)
    lines, _ = _qvh_lines(tmp_path, "train")
    for line in lines:
        raw = np.load(tmp_path / "features" / f"{line['vid']}.npy")
        assert raw.dtype == np.float32 and raw.shape == (int(np.ceil(line["duration"] / 2)), 32)
        assert np.array_equal(bank.get(line["vid"]), raw)  # native 2 s clips, never resampled (up to 150 s)
        start, end = clip_to_seconds(np.arange(raw.shape[0]), raw.shape[0], line["duration"])
        assert np.allclose(start, 2 * np.arange(raw.shape[0])) and np.allclose(end - start, 2.0)
    assert max(line["duration"] for line in lines) > 142
    # without noise or background a clip's feature is its event's look times its strength, which the
    # noise-free annotators' score follows: the strongest clip of a one-event window scores 4
    gen = HighlightGenerator(SyntheticSpec(**{**TINY_QVH_SPEC, "noise": 0.0, "background": 0.0, "annotator_noise": 0.0}))
    checked = 0
    for _ in range(20):
        video = gen.video(novel=False)
        feats = video.features
        assert feats.shape[0] == video.duration // 2
        for q in video.queries:
            if len(q.windows) == 1:
                norms = np.linalg.norm(feats[q.clip_ids], axis=1)
                assert q.scores[int(np.argmax(norms))][0] == 4
                checked += 1
    assert checked > 30


def _perfect_and_random(records, seed=0):
    rng = np.random.default_rng(seed)
    perfect, random = [], []
    for rec in records:
        dense = np.zeros(int(rec.duration) // 2)
        dense[rec.extra["relevant_clip_ids"]] = np.mean(rec.extra["saliency_scores"], axis=1)
        windows = [[s, e, 1.0] for s, e in rec.windows]
        perfect.append({"qid": rec.qid, "pred_relevant_windows": windows, "pred_saliency_scores": dense.tolist()})
        random.append({"qid": rec.qid, "pred_relevant_windows": windows, "pred_saliency_scores": rng.random(len(dense)).tolist()})
    return perfect, random


@pytest.mark.parametrize("annotator_noise", [0.0, 0.6])
def test_the_official_evaluator_scores_the_ground_truth_perfect_and_random_saliency_low(tmp_path, annotator_noise):
    from grounding.eval.qvhighlights import evaluate_qvhighlights

    write_synthetic(tmp_path, SyntheticSpec(**{**TINY_QVH_SPEC, "annotator_noise": annotator_noise}), progress=False)
    gt = read_annotations("qvhighlights", tmp_path / "annotations/highlight_val_release.jsonl")
    perfect, random = (evaluate_qvhighlights(p, gt)["brief"] for p in _perfect_and_random(gt))
    for key in ("MR-full-mAP", "MR-full-mAP@0.5", "MR-full-mAP@0.75", "MR-full-R1@0.5", "MR-full-R1@0.7"):
        assert perfect[key] == 100.0, key
    levels = ("Fair", "Good", "VeryGood")
    for level in levels:
        assert perfect[f"HL-min-{level}-Hit1"] == 100.0
        assert random[f"HL-min-{level}-mAP"] < 40.0
    if annotator_noise == 0:  # annotators agree: the ground truth's own scores rank every clip right
        assert all(perfect[f"HL-min-{level}-mAP"] == 100.0 for level in levels)
    else:  # three noisy annotators cannot all be matched by one ranking, but it comes close
        assert perfect["HL-min-Fair-mAP"] > 95 and perfect["HL-min-VeryGood-mAP"] > 70
        assert all(perfect[f"HL-min-{level}-mAP"] > random[f"HL-min-{level}-mAP"] + 45 for level in levels)


def test_the_qvhighlights_config_writes_its_benchmark_on_first_use(tmp_path):
    from grounding.config import load_config
    from grounding.data.build import DataBundle
    from grounding.synthetic.prepare import ensure_synthetic_data
    from tests.conftest import REPO

    cfg = load_config(REPO / "configs/synthetic_qvh.yaml", [
        f"data.root={tmp_path}", "data.synthetic.train_videos=8", "data.synthetic.test_videos=4",
        "+data.synthetic.feature_dim=16", "model.video_dim=16"])
    assert cfg.train.best_metric == "MR-full-mAP" and list(cfg.data.eval_splits) == ["val"] and cfg.data.val_split == "val"
    ensure_synthetic_data(cfg)
    assert json.loads((tmp_path / "synthetic_spec.json").read_text())["layout"] == "qvhighlights"
    bundle = DataBundle(cfg)
    records = bundle.records("val")
    assert records and all("saliency_scores" in r.extra for r in records)
    assert bundle.tags_path("val") == tmp_path / "annotations/highlight_val_release.tags.jsonl"
    assert bundle.bank.get(records[0].vid).shape == (int(records[0].duration) // 2, 16)


def test_spec_layouts_have_their_own_defaults_and_markers():
    charades, qvh = SyntheticSpec(), SyntheticSpec(layout="qvhighlights")
    assert (charades.min_duration, charades.max_duration, charades.clips_per_second) == (24.0, 40.0, 1.0)
    assert (qvh.min_duration, qvh.max_duration, qvh.clips_per_second) == (30.0, 150.0, 0.5)
    # a Charades-layout folder written before layouts existed (generator v4) is still recognised
    assert set(charades.marker()) == {"train_videos", "test_videos", "feature_dim", "clips_per_second", "min_duration",
                                      "max_duration", "noise", "signal", "background", "boundary_fuzz", "label_jitter",
                                      "style", "interaction", "temporal_fraction", "heldout_fraction", "seed"}
    assert qvh.marker()["layout"] == "qvhighlights" and "temporal_fraction" not in qvh.marker()
    long = SyntheticSpec(layout="long")
    assert (long.min_duration, long.max_duration, long.clips_per_second) == (128.0, 256.0, 1.0)
    assert {"layout", "relational_blocks", "min_moment", "max_moment"} <= set(long.marker())
    assert not {"temporal_fraction", "repeat_fraction"} & set(long.marker())
    assert not {"relational_blocks", "min_moment"} & (set(charades.marker()) | set(qvh.marker()))
    for bad, message in ((dict(layout="youcook"), "unknown"), (dict(layout="qvhighlights", clips_per_second=1.0), "2 s clip"),
                         (dict(layout="qvhighlights", min_duration=31, max_duration=31), "even duration"),
                         (dict(layout="long", min_moment=0.2, max_moment=0.1), "min_moment")):
        with pytest.raises(GroundingError, match=message):
            SyntheticSpec(**bad)


def test_r1_counts_a_hit_on_any_of_several_windows():
    from grounding.synthetic.shortcuts import r1_at

    pred = np.array([[0.0, 0.2], [0.4, 0.5]])
    gt = np.array([[[0.6, 1.0], [0.0, 0.2]], [[0.0, 0.1], [np.nan, np.nan]]])
    assert r1_at(pred, gt) == 50.0
    assert r1_at(pred, gt[:, 0]) == 0.0  # first windows only


def test_make_synthetic_writes_the_qvhighlights_layout_and_its_audit(tmp_path, capsys):
    from tools.make_synthetic import main

    out = tmp_path / "qvh"
    assert main(["--out", str(out), "--layout", "qvhighlights", "--train-videos", "30", "--test-videos", "20",
                 "--feature-dim", "4"]) == 0
    text = capsys.readouterr().out
    assert (out / "annotations/highlight_val_release.jsonl").is_file()
    assert "qvhighlights layout" in text and "repeated" in text and "position_prior" in text
    assert "configs/synthetic_qvh.yaml" in text.splitlines()[-1]
    row = next(line.split() for line in text.splitlines() if line.startswith("random "))
    assert all(float(x) < 40 for x in row[1::2])  # HL-mAP of random saliency: far from 100
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path / "bad"), "--layout", "qvhighlights", "--clips-per-second", "1"])
    assert exit_info.value.code == 2 and "2 s clip" in capsys.readouterr().err


# ---------------------------------------------------------------- the long-video layout

TINY_LONG_SPEC = dict(layout="long", train_videos=24, test_videos=8, feature_dim=8, seed=3)


def _long_videos(spec, count):
    from grounding.synthetic.long import LongVideoGenerator

    gen = LongVideoGenerator(SyntheticSpec(**spec))
    return [gen.video(novel=False) for _ in range(count)]


def test_long_layout_files_round_trip_through_the_activitynet_reader(tmp_path):
    write_synthetic(tmp_path, SyntheticSpec(**TINY_LONG_SPEC), progress=False)
    for split in ("train", "test"):
        path = tmp_path / "annotations" / f"{split}.json"
        raw = json.loads(path.read_text())
        records = read_annotations("activitynet", path)
        side = [json.loads(line) for line in (tmp_path / "annotations" / f"{split}.tags.jsonl").read_text().splitlines()]
        assert len(records) == len(side) == sum(len(v["sentences"]) for v in raw.values()) > 5 * len(raw)
        assert [e["qid"] for e in side] == [r.qid for r in records] == list(range(len(records)))
        for rec, entry in zip(records, side, strict=True):
            assert 128 <= rec.duration <= 256 and 0 <= rec.windows[0][0] < rec.windows[0][1] <= rec.duration
            if "temporal" not in entry["tags"]:  # the sidecar names the sentence's (only) event
                assert _combo(rec.query) == _combo(entry["event"])
        for vid, item in raw.items():
            feats = np.load(tmp_path / "features" / f"{vid}.npy")
            assert feats.dtype == np.float32 and feats.shape == (int(np.ceil(item["duration"])), 8)  # 128-256 clips
    tags = {t for e in side for t in e["tags"]}
    assert {"plain", "temporal", "novel"} <= tags


def test_long_videos_have_many_short_look_alike_events():
    videos = _long_videos(TINY_LONG_SPEC, 40)
    fractions = np.array([(e - s) / v.duration for v in videos for _, s, e in v.timeline])
    assert fractions.min() >= 0.02 - 1e-9 and fractions.max() <= 0.10 + 1e-9  # every event: 2-10 % of the video
    assert np.median(fractions) < 0.06  # log-uniform: short events are common
    for video in videos:
        assert len(video.timeline) >= 10
        spans = [(s, e) for _, s, e in video.timeline]
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))  # in time order, no overlap
        words = [(name.rsplit(" ", 1)[0], name.rsplit(" ", 1)[1]) for name, _, _ in video.timeline]
        sharing = [any(o != w and (o[0] == w[0] or o[1] == w[1]) for o in words) for w in words]
        assert np.mean(sharing) >= 0.8  # most events share a verb or an object with another one
        for q in video.queries:  # the annotated window is the event's span up to label noise
            match = [(s, e) for name, s, e in video.timeline if name == q.side["event"]]
            assert min(abs(q.start - s) + abs(q.end - e) for s, e in match) < 4.0


def test_long_relational_queries_pick_the_occurrence_next_to_the_reference():
    from grounding.synthetic.long import LongVideoGenerator

    gen = LongVideoGenerator(SyntheticSpec(**{**TINY_LONG_SPEC, "seed": 5}))
    before, after = [], []
    for _ in range(150):
        events, queries = gen.events(novel=False)
        for q in (q for q in queries if "temporal" in q["tags"]):
            relation, reference = q["relation"]
            refs = [i for i, e in enumerate(events) if f"{ACTIONS[e[0]][0]} {OBJECTS[e[1]]}" == reference]
            assert len(refs) == 1  # the reference happens once in the whole video
            assert _answer(events, relation, events[q["target"]], refs[0]) == q["target"]
            (before if relation == "before" else after).append(q["occurrence"])
        plain = [events[q["target"]] for q in queries if "plain" in q["tags"]]
        assert all(events.count(e) == 1 for e in plain)
    assert len(before) > 100 and len(after) > 100
    assert np.mean([i == 1 for i, _ in before]) < 0.5 and np.mean([i == n for i, n in after]) < 0.5


def test_long_layout_video_free_predictors_stay_near_chance(tmp_path):
    from grounding.synthetic.shortcuts import audit_synthetic_folder

    write_synthetic(tmp_path, SyntheticSpec(layout="long", train_videos=120, test_videos=60, feature_dim=2, seed=7),
                    progress=False)
    result = audit_synthetic_folder(tmp_path)
    assert result["count"]["temporal"] > 100 and result["count"]["novel"] >= 10
    for tag in ("all", "plain", "temporal"):
        chance = result["tag_window"][tag]
        assert chance < 10, (tag, chance)  # short moments: no fixed window is right often
        assert result["keyword_prior"][tag] <= chance + 5 and result["text_only"][tag] <= chance + 5
    assert result["keyword_occurrence"]["temporal"] <= 55  # at most half in expectation; ~250 queries here


def test_make_synthetic_writes_the_long_layout_and_names_its_config(tmp_path, capsys):
    from tools.make_synthetic import main

    assert main(["--out", str(tmp_path / "long"), "--layout", "long", "--train-videos", "12", "--test-videos", "4",
                 "--feature-dim", "2", "--relational-blocks", "1"]) == 0
    text = capsys.readouterr().out
    assert (tmp_path / "long/annotations/test.json").is_file() and "long layout" in text and "temporal" in text
    assert "configs/synthetic_long.yaml" in text.splitlines()[-1] and "data.synthetic=null" in text.splitlines()[-1]
    assert json.loads((tmp_path / "long/synthetic_spec.json").read_text())["relational_blocks"] == 1


def test_replay_makes_the_written_videos_again(tmp_path):
    from grounding.synthetic.benchmark import generator_for, read_spec
    from grounding.synthetic.world import replay_splits

    write_synthetic(tmp_path, SyntheticSpec(**TINY_LONG_SPEC), progress=False)
    spec = read_spec(tmp_path)
    assert spec == SyntheticSpec(**TINY_LONG_SPEC)
    replayed = list(replay_splits(spec, generator_for(spec)))
    assert len(replayed) == 32
    for split, vid, video in replayed[::7]:
        assert np.array_equal(np.load(tmp_path / "features" / f"{vid}.npy"), video.features)
        item = json.loads((tmp_path / "annotations" / f"{split}.json").read_text())[vid]
        assert item["sentences"] == [q.text for q in video.queries]
    marker = tmp_path / "synthetic_spec.json"
    marker.write_text(marker.read_text().replace('"generator_version": 5', '"generator_version": 4'))
    with pytest.raises(GroundingError, match="version 4"):
        read_spec(tmp_path)


def test_the_long_config_mirrors_activitynet_and_writes_its_benchmark(tmp_path):
    from grounding.config import load_config
    from grounding.data.build import DataBundle
    from grounding.synthetic.prepare import ensure_synthetic_data
    from tests.conftest import REPO

    anet = load_config(REPO / "configs/activitynet.yaml", [])
    cfg = load_config(REPO / "configs/synthetic_long.yaml", [
        f"data.root={tmp_path}", "data.synthetic.train_videos=6", "data.synthetic.test_videos=4",
        "+data.synthetic.feature_dim=16", "model.video_dim=16"])
    assert (cfg.data.num_clips, cfg.train.batch_size, cfg.data.dataset) == (anet.data.num_clips, anet.train.batch_size,
                                                                            "activitynet")
    assert list(cfg.data.eval_splits) == ["test"] and cfg.data.val_split is None
    ensure_synthetic_data(cfg)
    bundle = DataBundle(cfg)
    records = bundle.records("test")
    assert records and bundle.tags_path("test") == tmp_path / "annotations/test.tags.jsonl"
    assert bundle.bank.get(records[0].vid).shape == (128, 16)  # resampled to 128 clips


# ---------------------------------------------------------------- the package and its callers

# What a tiny benchmark of each layout writes (annotation files, marker and counts hashed; features summed).
# docs/model.md and data/README.md quote numbers measured on generator version 4; version 5 added the
# events and present/absent sidecars and left every v4 file byte for byte as it was. A change of the output
# must come with a new GENERATOR_VERSION (so old folders are rewritten) and new pins here.
PINNED = {
    "charades": ("126f603c8efc3a001e3f7320a898da3541b102f649f77423f9f35868c6c59c7e", 1365.1961222745595),
    "qvhighlights": ("19bfec0622fc30d36945b3a2c08ebe742659a046c39ff48a6bf7bd591856c2ec", 2071.903778187232),
    "long": ("fcac8cdae6e48f38d89e8940b8f5a5c2dfb51789b7000f67cb5e81eb24455548", 10605.076566620439),
}


@pytest.mark.parametrize("layout", sorted(PINNED))
def test_the_same_spec_still_writes_the_same_benchmark(tmp_path, layout):
    import hashlib

    from grounding.synthetic import GENERATOR_VERSION

    write_synthetic(tmp_path, SyntheticSpec(layout=layout, train_videos=6, test_videos=4, feature_dim=4, seed=1),
                    progress=False)
    digest = hashlib.sha256()
    for path in sorted(p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".npy"):
        digest.update(path.relative_to(tmp_path).as_posix().encode())
        digest.update(path.read_bytes())
    total = sum(float(np.abs(np.load(p)).astype(np.float64).sum()) for p in sorted(tmp_path.rglob("*.npy")))
    assert GENERATOR_VERSION == 5
    assert (digest.hexdigest(), total) == (PINNED[layout][0], pytest.approx(PINNED[layout][1], rel=1e-6))


def test_prepare_writes_the_configs_benchmark_on_rank_zero_only(tmp_path):
    from grounding.config import load_config
    from grounding.synthetic.prepare import prepare_data
    from tests.conftest import REPO

    def cfg(root):
        return load_config(REPO / "configs/synthetic.yaml", [
            f"data.root={root}", "data.synthetic.train_videos=3", "data.synthetic.test_videos=2",
            "+data.synthetic.feature_dim=4"])

    prepare_data(cfg(tmp_path / "other_rank"), environ={"RANK": "1", "WORLD_SIZE": "2"})
    assert not (tmp_path / "other_rank").exists()
    prepare_data(cfg(tmp_path / "rank0"), environ={"RANK": "0", "WORLD_SIZE": "2"})
    prepare_data(cfg(tmp_path / "plain"), environ={})
    for root in ("rank0", "plain"):
        assert json.loads((tmp_path / root / "counts.json").read_text())["train"] > 0
    prepare_data(load_config(REPO / "configs/charades_sta.yaml", [f"data.root={tmp_path / 'real'}"]), environ={})
    assert not (tmp_path / "real").exists()  # no data.synthetic section: nothing to write


def _imports(folder):
    """Every ``grounding.*`` module imported anywhere in the files of ``grounding/<folder>``."""
    import ast

    from tests.conftest import REPO

    found = set()
    for path in (REPO / "grounding" / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("grounding.")}


def test_data_reads_benchmarks_and_never_writes_or_audits_them():
    data = _imports("data")
    assert not {m for m in data if m.startswith(("grounding.eval", "grounding.synthetic"))}, data
    engine = _imports("engine")
    assert not {m for m in engine if m.startswith("grounding.synthetic")}, engine  # the trainer writes no datasets
    synthetic = _imports("synthetic")
    assert not {m for m in synthetic if m.startswith(("grounding.engine", "grounding.models", "grounding.api"))}


@pytest.mark.slow
def test_the_train_tool_writes_the_benchmark_that_the_trainer_only_reads(tmp_path):
    from grounding.cli import train_grounding
    from grounding.config import load_config
    from grounding.engine.trainer import Trainer
    from tests.conftest import REPO, tiny_overrides

    root = tmp_path / "data"
    overrides = [o for o in tiny_overrides(root, **{"train.num_figures": 0}) if not o.startswith("data.synthetic")]
    overrides += ["data.synthetic.train_videos=12", "data.synthetic.test_videos=4", "+data.synthetic.feature_dim=64"]
    with pytest.raises(GroundingError):
        Trainer(load_config(REPO / "configs/synthetic.yaml", overrides), tmp_path / "direct")
    assert not (root / "synthetic_spec.json").exists()
    assert train_grounding.main(["--config", str(REPO / "configs/synthetic.yaml"), "--work-dir", str(tmp_path / "w"),
                                 "--no-progress", *overrides]) == 0
    assert json.loads((root / "synthetic_spec.json").read_text())["train_videos"] == 12
    assert (tmp_path / "w" / "metrics.json").is_file()
