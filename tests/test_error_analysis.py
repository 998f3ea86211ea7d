"""The error analysis of relational queries: each top-1 window is put in the class of the event it lands on."""

from __future__ import annotations

import json

import pytest

from grounding.data.records import MomentRecord
from grounding.synthetic import SyntheticSpec, write_synthetic
from grounding.synthetic.error_analysis import analyse_folder, diagnose, format_summary, summarise

# "open door" three times; the reference "wash cup" after the first; its decoy "wash dish" after the second;
# "close door" shares the action... no: shares the object with the target; "hold book" is unrelated
EVENTS = [("open door", 0.0, 4.0), ("wash cup", 5.0, 8.0), ("open door", 9.0, 13.0), ("wash dish", 14.0, 17.0),
          ("open door", 18.0, 22.0), ("close door", 23.0, 26.0), ("hold book", 27.0, 30.0)]
AFTER = {"tags": ["temporal"], "event": "open door", "relation": ["after", "wash cup"], "occurrence": [2, 3]}


def _diagnose(window, side=AFTER, gt=(9.0, 13.0), rule=None):
    record = MomentRecord(0, "a person opens the door after washing the cup.", "v", 32.0, [list(gt)])
    return diagnose(record, [[*window, 1.0]], side, EVENTS, rule)


@pytest.mark.parametrize(("window", "category", "detail"), [
    ((9.2, 12.8), "hit", None),
    ((11.5, 14.5), "boundary", None),  # on the right occurrence, IoU < 0.5
    ((0.0, 4.0), "wrong_occurrence", "flipped"),  # the X before the reference: "after" read as "before"
    ((18.0, 22.0), "wrong_occurrence", "decoy"),  # the X after the decoy "wash dish"
    ((5.0, 8.0), "reference", None),
    ((23.0, 26.0), "shares_word", None),
    ((27.0, 30.0), "other_event", None),
    ((0.0, 32.0), "no_event", None),  # over everything: no single event
])
def test_each_class_on_a_hand_made_video(window, category, detail):
    d = _diagnose(window)
    assert (d.category, d.detail) == (category, detail)
    assert d.picked == {"hit": 2, "boundary": 2, "wrong_occurrence": 1 if detail == "flipped" else 3}.get(category)


def test_the_keyword_rule_and_the_summary():
    rule = {("after", 3): 3}  # "after" with three occurrences: the last one
    diagnoses = [_diagnose((18.0, 22.0), rule=rule), _diagnose((9.0, 13.0), rule=rule), _diagnose((5.0, 8.0), rule=rule)]
    assert [d.follows_keyword_rule for d in diagnoses] == [True, False, None]
    summary = summarise(diagnoses)["temporal"]
    assert summary["count"] == 3 and summary["hit"] == pytest.approx(100 / 3)
    assert summary["occurrence_right"] == 50.0 and summary["occurrence_chance"] == pytest.approx(100 / 3)
    assert summary["keyword_rule_right"] == 0.0 and summary["follows_keyword_rule"] == 50.0
    assert summary["picks_keyword_side"] == 50.0 and summary["right_on_keyword_side"] == 0.0  # "after": the last
    assert "right occurrence 50.0%" in format_summary(summarise(diagnoses))


def test_plain_queries_have_no_occurrence_classes():
    side = {"tags": ["plain"], "event": "hold book"}
    assert _diagnose((27.5, 30.0), side, gt=(27.0, 30.0)).category == "hit"
    assert _diagnose((23.0, 26.0), side, gt=(27.0, 30.0)).category == "other_event"


@pytest.mark.parametrize("layout", ["charades", "long"])
def test_a_folder_replayed_against_its_own_annotations(tmp_path, layout):
    """Ground-truth predictions are all hits, and moving each relational prediction to another occurrence of its
    event makes every one a wrong occurrence: the replayed events line up with the written files."""
    from grounding.synthetic.error_analysis import replayed_events
    from grounding.synthetic.shortcuts import read_split

    spec = SyntheticSpec(layout=layout, train_videos=30, test_videos=30, feature_dim=4, seed=2)
    write_synthetic(tmp_path, spec, progress=False)
    records, side = read_split(tmp_path, layout, "test")
    events = replayed_events(tmp_path)
    right, moved = [], []
    for rec in records:
        right.append({"qid": rec.qid, "pred_relevant_windows": [[*rec.windows[0], 1.0]]})
        window = rec.windows[0]
        if "temporal" in side[rec.qid]["tags"]:
            mine = [(s, e) for n, s, e in events[rec.vid] if n == side[rec.qid]["event"]]
            window = next(w for w in mine if min(w[1], rec.windows[0][1]) - max(w[0], rec.windows[0][0]) <= 0)
        moved.append({"qid": rec.qid, "pred_relevant_windows": [[*window, 1.0]]})
    for name, rows in (("right", right), ("moved", moved)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert summarise(analyse_folder(tmp_path, tmp_path / "right.jsonl"))["all"]["hit"] == 100.0
    summary = summarise(analyse_folder(tmp_path, tmp_path / "moved.jsonl"))
    assert summary["temporal"]["count"] > 5 and summary["temporal"]["wrong_occurrence"] == 100.0
    assert summary["plain"]["hit"] == 100.0 and summary["temporal"]["occurrence_right"] == 0.0


def test_the_tool_prints_the_table_and_ends_with_json(tiny_synthetic, tmp_path, capsys):
    from grounding.synthetic.shortcuts import read_split
    from tools.analyze_errors import main

    records, _ = read_split(tiny_synthetic, "charades", "test")
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"qid": r.qid, "pred_relevant_windows": [[0.0, 5.0, 1.0]]}) + "\n"
                             for r in records))
    assert main(["--predictions", str(preds), "--data", str(tiny_synthetic), "--json", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[1].split()[:4] == ["tag", "count", "hit", "boundary"] and "temporal" in "\n".join(out)
    assert json.loads(out[-1])["all"]["count"] == len(records)
    assert len(json.loads((tmp_path / "e.json").read_text())["queries"]) == len(records)
    with pytest.raises(SystemExit) as exit_info:
        main(["--predictions", str(preds)])
    assert exit_info.value.code == 2 and "--work-dir" in capsys.readouterr().err


def test_figures_show_each_stages_focus_and_the_events_by_role():
    import torch

    from grounding.engine.visualize import EVENT_COLORS, query_figure, stage_curves
    from grounding.studies.error_figures import event_roles, pick_for_figures
    from tests.test_models import _batch, _model

    batch = _batch()
    with torch.no_grad():
        curves = stage_curves(_model()(batch), 0, 10)
        assert "fine focus" not in stage_curves(_model(focus=False)(batch), 0, 10)
    assert {"coarse inside", "coarse attention", "fine inside", "fine attention", "fine focus"} <= set(curves)
    assert "coarse focus" not in curves
    roles = event_roles(EVENTS, AFTER, (9.0, 13.0))
    assert [r[3] for r in roles] == ["occurrence", "reference", "target", "shares_word", "occurrence", "shares_word",
                                     "other"]
    fig = query_figure("q", 32.0, [[9.0, 13.0]], [[0.0, 4.0, 1.0]], curves, events=roles)
    top = fig.axes[0]
    assert [t.get_text() for t in top.get_yticklabels()] == ["predicted (top 3)", "ground truth", "events"]
    colours = {tuple(p.get_facecolor()) for p in top.patches}
    import matplotlib.colors as mcolors

    assert {mcolors.to_rgba(EVENT_COLORS[r]) for r in ("target", "occurrence", "reference", "other")} <= colours
    chosen = pick_for_figures([_diagnose(w) for w in ((9.2, 12.8), (0.0, 4.0), (5.0, 8.0), (1.0, 3.0))], "temporal", 3)
    assert [d.category for d in chosen] == ["reference", "wrong_occurrence", "hit"]  # each class once, misses first
