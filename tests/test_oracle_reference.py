"""The relational bound's true reference: the reference event's clips, read from the replayed benchmark."""

from __future__ import annotations

import pytest

from grounding.studies.oracle_reference import reference_distribution, reference_spans


def test_the_true_reference_spreads_over_the_reference_clips_only():
    # 10 clips of 2 s; the reference lies over 4.0-9.0 s: the centres 5 and 7 are inside, 3 and 9 are not
    ref = reference_distribution([(4.0, 9.0)], duration=20.0, num_clips=10, length=12)
    assert ref.tolist() == pytest.approx([0, 0, 0.5, 0.5, 0, 0, 0, 0, 0, 0, 0, 0])
    short = reference_distribution([(12.1, 12.4)], duration=20.0, num_clips=10, length=12)
    assert int(short.argmax()) == 6 and float(short.sum()) == pytest.approx(1.0)  # shorter than a clip: nearest
    plain = reference_distribution([], duration=20.0, num_clips=10, length=12)
    assert plain[:10].tolist() == pytest.approx([0.1] * 10) and plain[10:].abs().sum() == 0  # no cue, no padding


def test_every_relational_query_gets_its_reference_events_spans(tiny_synthetic):
    from grounding.synthetic.error_analysis import replayed_events
    from grounding.synthetic.shortcuts import read_split

    spans = reference_spans(tiny_synthetic)
    records, sides = read_split(tiny_synthetic, "charades", "test")
    relational = [r for r in records if "relation" in sides.get(r.qid, {})]
    assert relational and all((r.vid, r.query.strip()) in spans for r in relational)
    rec = relational[0]
    name = sides[rec.qid]["relation"][1]
    timeline = replayed_events(tiny_synthetic)[rec.vid]
    assert spans[(rec.vid, rec.query.strip())] == [(s, e) for n, s, e in timeline if n == name]
    assert len(spans[(rec.vid, rec.query.strip())]) == 1  # the reference happens once
    (s, e), = spans[(rec.vid, rec.query.strip())]
    assert not any(min(e, t_e) - max(s, t_s) > 0 for t_s, t_e in rec.windows)  # and never overlaps the target


def test_the_bound_refuses_a_model_without_word_relations(tiny_synthetic, capsys):
    from grounding.studies.oracle_reference import main
    from tests.conftest import REPO, tiny_overrides

    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(REPO / "configs" / "synthetic.yaml"), "--work-dir", "unused",
              *tiny_overrides(tiny_synthetic), "model.word_relations=false"])
    assert exit_.value.code == 2 and "model.word_relations=true" in capsys.readouterr().err
