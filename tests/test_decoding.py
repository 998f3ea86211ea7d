import math

import pytest
import torch

from grounding.inference.records import prediction_records
from grounding.models.decoding import DecodeConfig, batched_nms, decode, window_scores
from grounding.models.outputs import StageOutput


def _stage(start, end, inside=None):
    start, end = torch.tensor([start]), torch.tensor([end])
    inside = torch.zeros_like(start) if inside is None else torch.tensor([inside])
    return StageOutput(start, end, inside, span=torch.zeros(1, 2), tokens=torch.zeros(1, start.shape[1], 1))


def test_joint_scores_respect_order_and_max_length():
    mask = torch.ones(1, 4, dtype=torch.bool)
    scores = window_scores(torch.zeros(1, 4), torch.zeros(1, 4), torch.zeros(1, 4), mask, max_len=0.5, inside_weight=0)
    valid = (scores[0] > 0).int().tolist()
    # end >= start and at most 2 of 4 clips long
    assert valid == [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1]]
    assert scores[0, 0, 0].item() == pytest.approx(1 / 16)


def test_decode_hand_made_scores_to_seconds():
    log3 = math.log(3)
    stage = _stage([0, log3, 0, 0], [0, 0, log3, 0])
    windows, saliency = decode(stage, torch.ones(1, 4, dtype=torch.bool), torch.tensor([8.0]), DecodeConfig(topk=2, nms_threshold=1.0))
    # best: start clip 1 (2 s), end clip 2 (6 s), score (3/6) * (3/6)
    assert windows[0, 0].tolist() == pytest.approx([2.0, 6.0, 0.25])
    assert windows[0, 1, 2].item() == pytest.approx(0.5 * (1 / 6))
    assert saliency[0].tolist() == pytest.approx([0.5] * 4)


def test_nms_drops_overlapping_lower_scores():
    windows = torch.tensor([[[0.0, 10.0], [1.0, 10.0], [20.0, 30.0], [0.0, 9.0]]])
    keep = batched_nms(windows, torch.tensor([[0.9, 0.8, 0.5, 0.4]]), threshold=0.5)
    assert keep[0].tolist() == [True, False, True, False]
    assert batched_nms(windows, torch.tensor([[0.9, 0.8, 0.5, 0.4]]), threshold=1.0)[0].all()


def test_padded_clips_are_never_decoded_and_records_are_json_ready():
    mask = torch.tensor([[True, True, False, False]])
    stage = _stage([0.0, 0.0, 50.0, 50.0], [0.0, 0.0, 50.0, 50.0])
    windows, saliency = decode(stage, mask, torch.tensor([4.0]), DecodeConfig(topk=5, nms_threshold=1.0))
    real = windows[0][~torch.isnan(windows[0, :, 0])]
    assert len(real) == 3 and (real[:, 1] <= 4.0).all()  # 2 clips of 2 s: (0,0), (0,1), (1,1)
    record = prediction_records([7], ["v"], ["q"], windows, saliency, torch.tensor([2]))[0]
    assert "pred_refined_window" not in record
    refined = prediction_records([7], ["v"], ["q"], windows, saliency, torch.tensor([2]), torch.tensor([[0.5, 3.25]]))
    assert refined[0]["pred_refined_window"] == [0.5, 3.25]
    assert record["qid"] == 7 and len(record["pred_relevant_windows"]) == 3 and len(record["pred_saliency_scores"]) == 2
    assert record["pred_relevant_windows"][0][2] >= record["pred_relevant_windows"][1][2]


def test_inside_weight_favours_windows_the_inside_head_supports():
    stage = _stage([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [-9.0, 9.0, 9.0, -9.0])
    cfg = DecodeConfig(topk=1, nms_threshold=1.0, inside_weight=1.0)
    windows, _ = decode(stage, torch.ones(1, 4, dtype=torch.bool), torch.tensor([4.0]), cfg)
    assert windows[0, 0, :2].tolist() == [1.0, 3.0]


def _greedy_nms_reference(windows, scores, threshold):
    """The textbook loop, one row at a time."""
    keep = []
    for c in range(len(windows)):
        ok = bool(torch.isfinite(scores[c]) and scores[c] > 0)
        for k in keep:
            s = max(windows[c][0], windows[k][0])
            e = min(windows[c][1], windows[k][1])
            union = max(windows[c][1], windows[k][1]) - min(windows[c][0], windows[k][0])
            if max(e - s, 0) / max(union, 1e-9) > threshold:
                ok = False
        if ok:
            keep.append(c)
    return [c in keep for c in range(len(windows))]


def test_nms_keeps_a_window_whose_suppressor_was_itself_suppressed():
    # A suppresses B; B would suppress C, but B is gone, so C stays
    windows = torch.tensor([[[0.0, 10.0], [4.0, 14.0], [8.0, 18.0]]])
    keep = batched_nms(windows, torch.tensor([[0.9, 0.8, 0.7]]), threshold=0.3)
    assert keep[0].tolist() == [True, False, True]


def test_batched_nms_equals_the_sequential_greedy_loop():
    g = torch.Generator().manual_seed(0)
    start = torch.rand(64, 40, generator=g) * 20
    windows = torch.stack([start, start + 0.5 + torch.rand(64, 40, generator=g) * 10], -1)
    scores = torch.rand(64, 40, generator=g).sort(1, descending=True).values
    scores[:5, 30:] = 0.0  # invalid tail candidates
    for threshold in (0.1, 0.3, 0.5, 0.7):
        keep = batched_nms(windows, scores, threshold)
        for b in range(windows.shape[0]):
            assert keep[b].tolist() == _greedy_nms_reference(windows[b].tolist(), scores[b], threshold)
