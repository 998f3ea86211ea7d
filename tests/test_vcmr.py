"""VCMR metrics on hand-computed cases, and the evaluator's --task vcmr."""

from __future__ import annotations

import json

import pytest

from grounding.cli.eval_grounding import main as eval_main
from grounding.data.records import MomentRecord, write_jsonl
from grounding.errors import GroundingError
from grounding.eval.vcmr import vcmr_metrics

GT = [
    MomentRecord("q1", "a", "v1", 30.0, [[10.0, 20.0]]),
    MomentRecord("q2", "b", "v2", 30.0, [[0.0, 10.0]]),
    MomentRecord("q3", "c", "v3", 30.0, [[5.0, 15.0]]),
    MomentRecord("q4", "d", "v4", 30.0, [[0.0, 4.0], [20.0, 30.0]]),
]


def test_hand_computed_vcmr_and_video_recall():
    preds = [
        # right video, IoU 10/12 = 0.83 at rank 1
        {"qid": "q1", "pred_moments": [["v1", 10.0, 22.0, 0.9]]},
        # rank 1: the window of the query but the wrong video; rank 2: right video, IoU 6/10 = 0.6
        {"qid": "q2", "pred_moments": [["v9", 0.0, 10.0, 0.9], ["v2", 0.0, 6.0, 0.8]]},
        # right video only at distinct-video rank 6 (moment rank 7), IoU 1
        {"qid": "q3", "pred_moments": [[f"x{i}", 0.0, 1.0, 1.0] for i in range(5)]
         + [["x0", 3.0, 4.0, 0.5], ["v3", 5.0, 15.0, 0.4]]},
        # q4 has two windows: the second is matched with IoU 7/10 = 0.7 exactly
        {"qid": "q4", "pred_moments": [["v4", 23.0, 30.0, 0.9]]},
    ]
    m = vcmr_metrics(preds, GT)
    assert m["VCMR-R1@0.5"] == 50.0  # q1, q4
    assert m["VCMR-R1@0.7"] == 50.0  # q1 (0.83), q4 (0.7 >= 0.7)
    assert m["VCMR-R5@0.5"] == 100.0 * 3 / 4  # + q2 at rank 2, q3 (rank 7) not yet
    assert m["VCMR-R5@0.7"] == 50.0
    assert m["VCMR-R10@0.5"] == 100.0  # q3 at moment rank 7
    assert m["VCMR-R10@0.7"] == 75.0  # q3's IoU is 1
    assert m["VCMR-R100@0.7"] == 75.0
    assert m["VR-R1"] == 50.0  # q1, q4
    assert m["VR-R5"] == 75.0  # q2 (its video is the 2nd distinct one); q3's is the 6th
    assert m["VR-R10"] == 100.0
    assert (m["num_queries"], m["num_missing"]) == (4, 0)


def test_a_missing_query_is_a_miss_and_counted():
    m = vcmr_metrics([{"qid": "q1", "pred_moments": [["v1", 10.0, 20.0, 1.0]]}], GT)
    assert m["VCMR-R1@0.7"] == 25.0 and m["VR-R1"] == 25.0 and m["num_missing"] == 3


def test_duplicate_and_unknown_queries_are_refused():
    with pytest.raises(GroundingError, match="predicted twice"):
        vcmr_metrics([{"qid": "q1", "pred_moments": []}] * 2, GT)
    with pytest.raises(GroundingError, match="not in the ground truth"):
        vcmr_metrics([{"qid": "zz", "pred_moments": []}], GT)


def test_eval_tool_task_vcmr(tmp_path, capsys):
    gt, pred = tmp_path / "gt.jsonl", tmp_path / "pred.jsonl"
    write_jsonl(GT, gt)
    write_jsonl([{"qid": "q1", "query": "a", "pred_moments": [["v1", 10.0, 20.0, 1.0]]}], pred)
    assert eval_main(["--predictions", str(pred), "--ground-truth", str(gt), "--task", "vcmr"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["VCMR-R1@0.7"] == 25.0
    write_jsonl([{"qid": "q1", "pred_relevant_windows": [[1, 2, 1]]}], pred)
    with pytest.raises(SystemExit) as exit_info:
        eval_main(["--predictions", str(pred), "--ground-truth", str(gt), "--task", "vcmr"])
    assert exit_info.value.code == 2
    assert "pred_moments" in capsys.readouterr().err
