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
        assert feats.shape[0] == int(np.ceil(rec.duration))  # 1 clip per second
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


def test_temporal_queries_pick_the_occurrence_before_or_after(tiny_synthetic):
    train, tags = _split(tiny_synthetic, "train")
    temporal = [r for r in train if "temporal" in tags[r.qid]]
    assert temporal
    by_vid: dict[str, list] = {}
    for r in temporal:
        by_vid.setdefault(r.vid, []).append(r)
    for pair in by_vid.values():
        before = next(r for r in pair if " before " in r.query)
        after = next(r for r in pair if r is not before)
        assert before.windows[0][1] < after.windows[0][0]


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
