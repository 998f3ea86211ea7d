"""The QVHighlights evaluation: the official sample, hand-made moment and highlight cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from grounding.data.records import MomentRecord, read_native_jsonl
from grounding.eval.predictions import read_predictions
from grounding.eval.qvhighlights import average_precision, evaluate_qvhighlights

SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLE = SHARED / "eval-samples" / "qvhighlights"
VAL_GT = SHARED / "annotations" / "qvhighlights" / "highlight_val_release.jsonl"


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}/") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


@pytest.fixture(scope="module")
def sample_metrics() -> tuple[dict, dict]:
    if not (SAMPLE.is_dir() and VAL_GT.is_file()):
        pytest.skip(f"shared QVHighlights sample not found under {SHARED}")
    preds, gt = read_predictions(SAMPLE / "sample_val_preds.jsonl"), read_native_jsonl(VAL_GT)
    metrics = evaluate_qvhighlights(preds, gt)
    return metrics, json.loads((SAMPLE / "sample_val_preds_metrics_raw.json").read_text())


def test_official_sample_is_reproduced(sample_metrics):
    ours, official = sample_metrics
    assert list(ours)[: len(official)] == list(official)  # same blocks, same order
    assert list(ours["brief"]) == list(official["brief"])
    ours_flat, official_flat = flat(ours), flat(official)
    assert len(official_flat) == 14 + 6 + 4 * 21
    for key, value in official_flat.items():
        assert ours_flat[key] == pytest.approx(value, abs=0.01), key
    assert ours["num_queries"] == 1550 and ours["num_missing"] == 0


def gt_record(qid, windows, duration=150.0, clip_ids=(), saliency=()) -> MomentRecord:
    extra = {"relevant_clip_ids": list(clip_ids), "saliency_scores": [list(s) for s in saliency]}
    return MomentRecord(qid, f"query {qid}", f"v{qid}", duration, windows, extra)


def test_map_penalises_a_second_hit_on_the_same_window():
    gt = [gt_record(1, [[0, 10], [20, 30]])]
    # file order differs from score order: mAP sorts by score, R1 takes the first line as given
    windows = [[20, 30, 0.7], [0, 10, 0.8], [0, 10, 0.9]]
    m = evaluate_qvhighlights([{"qid": 1, "pred_relevant_windows": windows}], gt)
    # by score: TP, FP (window taken), TP -> precision 1, 1/2, 2/3 -> AP = (1 + 2/3) / 2
    assert m["full"]["MR-mAP"]["0.5"] == pytest.approx(83.33)
    assert m["full"]["MR-mAP"]["average"] == pytest.approx(83.33)
    assert m["brief"]["MR-full-R1@0.7"] == 100.0  # [20, 30] picks the GT window it matches


def test_map_keeps_the_first_10_windows_before_sorting():
    gt = [gt_record(1, [[0, 10]])]
    junk = [[100, 110, 0.5]] * 10
    late = {"qid": 1, "pred_relevant_windows": junk + [[0, 10, 0.99]]}  # 11th in the file, best score
    assert evaluate_qvhighlights([late], gt)["brief"]["MR-full-mAP"] == 0.0
    early = {"qid": 1, "pred_relevant_windows": junk[:9] + [[0, 10, 0.01]]}  # 10th, worst score
    assert evaluate_qvhighlights([early], gt)["brief"]["MR-full-mAP"] == pytest.approx(10.0)


def test_length_buckets_keep_only_their_windows():
    gt = [gt_record(1, [[0, 6], [20, 60]])]  # one short (6 s) and one long (40 s) window
    m = evaluate_qvhighlights([{"qid": 1, "pred_relevant_windows": [[0, 6, 1.0]]}], gt)
    assert m["brief"]["MR-short-mAP"] == 100.0 and m["short"]["MR-R1"]["0.5"] == 100.0
    assert m["brief"]["MR-long-mAP"] == 0.0 and m["long"]["MR-R1"]["0.5"] == 0.0
    assert m["brief"]["MR-middle-mAP"] is None  # no query has a middle window: skipped, not NaN
    assert m["brief"]["MR-full-mAP"] == 50.0  # one of two windows found, at full precision


def test_missing_prediction_counts_as_a_miss():
    gt = [gt_record(1, [[0, 10]]), gt_record(2, [[0, 10]])]
    m = evaluate_qvhighlights([{"qid": 2, "pred_relevant_windows": [[0, 10, 1.0]]}], gt)
    assert m["num_missing"] == 1
    assert m["brief"]["MR-full-R1@0.5"] == 50.0 and m["brief"]["MR-full-mAP"] == 50.0


def test_highlight_ap_groups_tied_scores():
    # 5 clips; full-video saliency per annotator: clip1 (4,2,1), clip2 (2,2,2), clip3 (0,3,4)
    gt = [gt_record(1, [[2, 8]], 10.0, [1, 2, 3], [(4, 2, 1), (2, 2, 2), (0, 3, 4)])]
    pred = {
        "qid": 1,
        "pred_relevant_windows": [[2, 8, 1.0]],
        "pred_saliency_scores": [0.1, 0.9, 0.5, 0.5, 0.2],
    }
    m = evaluate_qvhighlights([pred], gt)
    # Fair (>=2): annotator 0 positives {1, 2}: levels {1}, {2, 3} -> (1 + 2/3) / 2; annotator 1 {1, 2, 3} -> 1;
    # annotator 2 {2, 3}: only level {2, 3} adds -> 2/3. Broken ties would give 1 for annotator 0.
    assert m["brief"]["HL-min-Fair-mAP"] == pytest.approx(100 * (5 / 6 + 1 + 2 / 3) / 3, abs=0.005)
    # VeryGood (>=4): annotator 0 {1} -> 1, annotator 1 none -> 0, annotator 2 {3} -> 1/3
    assert m["brief"]["HL-min-VeryGood-mAP"] == pytest.approx(100 * (1 + 0 + 1 / 3) / 3, abs=0.005)
    assert m["brief"]["HL-min-Fair-Hit1"] == 100.0 and m["brief"]["HL-min-VeryGood-Hit1"] == 100.0


def test_highlight_score_lists_are_cut_or_zero_padded_to_the_video():
    gt = [
        gt_record(1, [[0, 2]], 6.0, [0], [(3, 3, 3)]),  # 3 clips
        gt_record(2, [[4, 6]], 6.0, [2], [(2, 2, 2)]),
    ]
    preds = [
        # 4 scores for 3 clips: AP uses the first 3, but the top clip (3) is outside the video -> no hit
        {"qid": 1, "pred_relevant_windows": [[0, 2, 1.0]], "pred_saliency_scores": [0.5, -1.0, -2.0, 9.0]},
        # 2 scores for 3 clips: clip 2 is padded with score 0 and ranks first (AP 1, not 1/3);
        # the top clip is taken over the given scores (clip 0) -> no hit
        {"qid": 2, "pred_relevant_windows": [[4, 6, 1.0]], "pred_saliency_scores": [-1.0, -2.0]},
    ]
    brief = evaluate_qvhighlights(preds, gt)["brief"]
    assert brief["HL-min-Fair-mAP"] == 100.0 and brief["HL-min-Fair-Hit1"] == 0.0
    assert brief["HL-min-Good-mAP"] == 50.0  # query 2 has no clip >= 3: AP 0


def loop_ap(preds: list[tuple], gts: list[tuple], thr: float) -> float:
    """The official per-query loop, written plainly: greedy matching, then VOC all-point AP."""
    used, tp = set(), []
    for p in sorted(preds, key=lambda p: -p[2]):
        ious = [
            max(0.0, min(p[1], g[1]) - max(p[0], g[0])) / (max(p[1], g[1]) - min(p[0], g[0])) for g in gts
        ]
        ranked = sorted(range(len(gts)), key=lambda j: ious[j])[::-1]
        hit = next((j for j in ranked if ious[j] >= thr and j not in used), None)
        used.add(hit)
        tp.append(hit is not None)
    ap, best = 0.0, 0.0
    for k in reversed(range(len(tp))):  # envelope from the right
        best = max(best, sum(tp[: k + 1]) / (k + 1))
        ap += best * tp[k] / len(gts)
    return ap


def test_vectorised_map_equals_a_plain_loop_on_tied_data():
    rng = np.random.default_rng(1)
    thresholds = np.array([0.3, 0.5, 0.7])
    num_q, k, g = 200, 6, 4
    pred, score, gt = (
        np.full((num_q, k, 2), np.nan),
        np.full((num_q, k), np.nan),
        np.full((num_q, g, 2), np.nan),
    )
    expected = np.zeros((num_q, len(thresholds)))
    for q in range(num_q):  # integer windows and scores: many tied IoUs and scores
        nk, ng = rng.integers(1, k + 1), rng.integers(1, g + 1)
        s, gs = rng.integers(0, 10, nk), rng.integers(0, 10, ng)
        p = np.stack([s, s + rng.integers(1, 6, nk), rng.integers(0, 3, nk)], axis=1).astype(float)
        w = np.stack([gs, gs + rng.integers(1, 6, ng)], axis=1).astype(float)
        pred[q, :nk], score[q, :nk], gt[q, :ng] = p[:, :2], p[:, 2], w
        expected[q] = [loop_ap([tuple(x) for x in p], [tuple(x) for x in w], t) for t in thresholds]
    ours = average_precision(pred, score, gt, ~np.isnan(gt[..., 0]), thresholds)
    np.testing.assert_allclose(ours, expected, atol=1e-12)
