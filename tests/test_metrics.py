"""Temporal IoU and R@n/mIoU against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from grounding.data.records import MomentRecord
from grounding.errors import GroundingError
from grounding.eval.iou import pairwise_iou
from grounding.eval.metrics import evaluate_single_window, recall_at_iou
from grounding.eval.predictions import join_predictions

NAN = [np.nan, np.nan]


def iou1(a: list[float], b: list[float], union: str = "hull") -> float:
    return float(pairwise_iou(np.array([a]), np.array([b]), union=union)[0, 0])


@pytest.mark.parametrize(
    "pred, gt, expected",
    [
        ([0, 10], [5, 15], 5 / 15),  # partial overlap
        ([2, 4], [0, 10], 0.2),  # containment
        ([3, 7], [3, 7], 1.0),  # identical
        ([0, 2], [3, 5], 0.0),  # disjoint
        ([0, 2], [2, 4], 0.0),  # touching
    ],
)
@pytest.mark.parametrize("union", ["hull", "sum"])
def test_iou_hand_cases(pred, gt, expected, union):
    assert iou1(pred, gt, union) == pytest.approx(expected)


def test_iou_zero_length_windows_give_zero_not_nan():
    assert iou1([3, 3], [0, 10]) == 0.0
    for union in ("hull", "sum"):
        assert iou1([3, 3], [3, 3], union) == 0.0  # degenerate union
        assert iou1([0, 10], [4, 4], union) == 0.0


def test_iou_out_of_range_windows_are_not_clipped():
    # a video of 10 s: a prediction reaching outside it is scored as given
    assert iou1([-5, 5], [0, 10]) == pytest.approx(5 / 15)  # clipped it would be 0.5
    assert iou1([8, 20], [0, 10]) == pytest.approx(2 / 20)
    assert iou1([5, 3], [0, 10]) == 0.0  # reversed window
    assert iou1([5, 3], [4, 4.5], "sum") == 0.0  # negative "union" does not leak through


def test_iou_shapes_and_nan_padding():
    rng = np.random.default_rng(0)
    starts = rng.uniform(0, 20, size=(3, 4, 1))
    pred = np.concatenate([starts, starts + rng.uniform(0, 10, size=(3, 4, 1))], axis=-1)  # (B, K, 2)
    pred[1, 2] = np.nan
    gt = np.array([[0.0, 5.0], [4.0, 12.0]])  # (M, 2)
    iou = pairwise_iou(pred, gt)
    assert iou.shape == (3, 4, 2)
    assert not np.isnan(iou).any() and iou[1, 2].tolist() == [0.0, 0.0]
    for b, k, m in [(0, 0, 0), (2, 3, 1), (1, 1, 1)]:
        assert iou[b, k, m] == pytest.approx(iou1(pred[b, k].tolist(), gt[m].tolist()))
    # per-query GT: (Q, K, 2) with (Q, 1, 2) pairs each query with its own window
    per_query_gt = np.array([[[0.0, 5.0]], [[4.0, 12.0]], [[1.0, 2.0]]])  # (Q, 1, 2)
    assert pairwise_iou(pred, per_query_gt).shape == (3, 4, 1)


def hand_case() -> tuple[np.ndarray, np.ndarray]:
    gt = np.array([[0.0, 10.0]] * 4)  # (Q, 2)
    pred = np.array(
        [
            [[0, 10], NAN],  # top-1 IoU 1
            [[20, 30], [0, 5]],  # top-1 0, top-2 0.5 exactly
            [[0, 4], [0, 8]],  # top-1 0.4, top-2 0.8
            [NAN, NAN],  # no prediction
        ]
    )  # (Q, K, 2)
    return pred, gt


def test_recall_at_each_n_and_threshold():
    pred, gt = hand_case()
    m = recall_at_iou(pred, gt)
    assert list(m) == ["R1@0.1", "R1@0.3", "R1@0.5", "R1@0.7", "R5@0.1", "R5@0.3", "R5@0.5", "R5@0.7", "mIoU"]
    expected = {
        "R1@0.1": 50,
        "R1@0.3": 50,
        "R1@0.5": 25,
        "R1@0.7": 25,
        "R5@0.1": 75,
        "R5@0.3": 75,
        "R5@0.5": 75,
    }
    for key, value in expected.items():
        assert m[key] == pytest.approx(value), key
    assert m["R5@0.7"] == pytest.approx(50)  # n larger than K: all predictions count


def test_iou_exactly_at_threshold_is_a_hit():
    gt = np.array([[0.0, 10.0], [0.0, 10.0]])
    pred = np.array([[[0.0, 5.0]], [[0.0, 7.0]]])  # IoU exactly 0.5 and 0.7
    m = recall_at_iou(pred, gt, ns=(1,), thresholds=(0.5, 0.7))
    assert m["R1@0.5"] == 100 and m["R1@0.7"] == 50


def test_miou_counts_missing_predictions_as_zero():
    pred, gt = hand_case()
    assert recall_at_iou(pred, gt)["mIoU"] == pytest.approx((1 + 0 + 0.4 + 0) / 4 * 100)


def test_recall_takes_best_of_several_gt_windows():
    gt = np.array([[[0.0, 10.0], [20.0, 30.0]], [[0.0, 10.0], NAN]])  # (Q, G, 2), NaN-padded
    pred = np.array([[[20.0, 30.0]], [[20.0, 30.0]]])
    m = recall_at_iou(pred, gt, ns=(1,), thresholds=(0.5,))
    assert m["R1@0.5"] == 50 and m["mIoU"] == 50


def test_recall_on_many_queries_matches_a_plain_loop():
    """The vectorised path on 20,000 queries agrees with the definition (its speed is in tools/benchmark.py)."""
    rng = np.random.default_rng(0)
    start = rng.uniform(0, 100, size=(20000, 5, 1))
    pred = np.concatenate([start, start + rng.uniform(1, 30, size=(20000, 5, 1))], axis=-1)
    gt = np.sort(rng.uniform(0, 120, size=(20000, 2)), axis=1)
    m = recall_at_iou(pred, gt)

    def iou(a, b):
        inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
        return inter / (max(a[1], b[1]) - min(a[0], b[0]))

    best5 = [max(iou(p, g) for p in ps) for ps, g in zip(pred, gt, strict=True)]
    top1 = [iou(ps[0], g) for ps, g in zip(pred, gt, strict=True)]
    assert m["R1@0.5"] == pytest.approx(100 * np.mean(np.array(top1) >= 0.5))
    assert m["R5@0.3"] == pytest.approx(100 * np.mean(np.array(best5) >= 0.3))
    assert m["mIoU"] == pytest.approx(100 * np.mean(top1))


def record(qid, windows, duration=30.0) -> MomentRecord:
    return MomentRecord(qid, f"query {qid}", f"v{qid}", duration, windows)


def test_evaluate_single_window_joins_by_qid_and_counts_missing():
    gt = [record(1, [[0, 10]]), record(2, [[5, 15]]), record(3, [[0, 4]])]
    preds = [  # out of order, qid 3 missing, qid 2 as a string
        {"qid": "2", "pred_relevant_windows": [[5, 15, 0.9]]},
        {"qid": 1, "pred_relevant_windows": [[20, 30, 0.9], [0, 10, 0.5]]},
    ]
    m = evaluate_single_window(preds, gt)
    assert m["num_queries"] == 3 and m["num_missing"] == 1
    assert m["R1@0.7"] == pytest.approx(100 / 3) and m["R5@0.7"] == pytest.approx(200 / 3)
    assert m["mIoU"] == pytest.approx(100 / 3)


def test_join_rejects_duplicate_and_unknown_qids():
    gt = [record(1, [[0, 10]]), record(2, [[0, 10]])]
    one = {"qid": 1, "pred_relevant_windows": [[0, 10, 1.0]]}
    with pytest.raises(GroundingError, match=r"preds\.jsonl.*qid\(s\) 1 appear more than once"):
        join_predictions([one, dict(one)], gt, pred_source="preds.jsonl")
    with pytest.raises(GroundingError, match=r"preds\.jsonl: 1 qid\(s\) not in .*: 99"):
        join_predictions([{**one, "qid": 99}], gt, pred_source="preds.jsonl")
