""""Not in this video": the existence part, its records, its evaluation set and its metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from grounding.eval.existence import auroc, existence_metrics, expected_calibration_error
from grounding.models.existence import ExistenceHead, proposal_masks
from grounding.models.outputs import SpaceOutput


def test_proposals_are_the_earlier_search_index_windows_and_never_empty():
    from grounding.models.existence import SCALES
    from grounding.search.embed import Granularity, windows_for

    mask = torch.zeros(3, 32, dtype=torch.bool)
    for row, n in enumerate((32, 20, 3)):
        mask[row, :n] = True
    props = proposal_masks(mask)  # (3, P, 32)
    for row, n in enumerate((32, 20)):
        got = {(int(m.nonzero().min()), int(m.nonzero().max())) for m in props[row]}
        assert got == {tuple(w) for w in windows_for(n, Granularity("proposals", list(SCALES))).tolist()}
    assert props.any(-1).all() and not props[:, :, 3:][2].any()  # every window holds a clip, none past the video


def space_of(clip_proj, sentence):
    return SpaceOutput(clip_proj, torch.nn.functional.normalize(sentence, dim=-1), torch.tensor(0.07))


def test_existence_tracks_class_statistics_in_training_only_and_sends_no_gradient():
    torch.manual_seed(0)
    head = ExistenceHead(momentum=1.0)  # the statistics of the last batch, to check them exactly
    assert list(head.parameters()) == []  # nothing for the optimizer: the part cannot change localisation
    videos = torch.nn.functional.normalize(torch.randn(4, 8, 6), dim=-1)
    vid_index = torch.tensor([0, 1, 2, 3, 3])
    sentence = videos[vid_index].mean(1) + 0.01 * torch.randn(5, 6)  # each sentence close to its own video
    clip_proj = videos[vid_index].requires_grad_()
    out = head(space_of(clip_proj, sentence), torch.ones(5, 8, dtype=torch.bool), vid_index)
    assert out.similarity.shape == (5, 4) and out.positive.sum() == 5
    assert not out.logits.requires_grad
    pos, neg = out.similarity[out.positive], out.similarity[~out.positive]
    assert torch.allclose(head.stats, torch.stack([pos.mean(), (pos**2).mean(), neg.mean(), (neg**2).mean()]))
    a, b = head.calibration()
    assert a > 0 and torch.allclose(-b / a, (pos.mean() + neg.mean()) / 2)  # p = 1/2 half-way between the means
    assert (out.probability() > 0.5).all()
    head.eval()
    own = head(space_of(clip_proj, sentence), torch.ones(5, 8, dtype=torch.bool), vid_index)
    assert own.similarity.shape == (5, 1)  # inference scores only each query's own video: the same numbers
    assert torch.allclose(own.similarity[:, 0], out.similarity[out.positive]) and torch.allclose(own.logits, out.logits)
    before = head.stats.clone()
    head(space_of(clip_proj, sentence.flip(0)), torch.ones(5, 8, dtype=torch.bool), vid_index)
    assert torch.equal(head.stats, before)


def test_a_model_configured_without_existence_localises_the_same(tiny_synthetic):
    from grounding.models import build_model
    from tests.conftest import tiny_config

    cfg = tiny_config(tiny_synthetic)
    torch.manual_seed(0)
    with_part = build_model(cfg.model, vocab_size=50).eval()
    cfg.model.existence = False
    without = build_model(cfg.model, vocab_size=50).eval()
    missing, unexpected = without.load_state_dict(with_part.state_dict(), strict=False)
    assert not missing and unexpected == ["existence.stats"]
    from grounding.data.batch import make_batch

    b, t = 3, 16
    video = torch.randn(2, t, cfg.model.video_dim)
    zeros = torch.zeros(b, dtype=torch.long)
    batch = make_batch(video, torch.ones(2, t, dtype=torch.bool), torch.tensor([0, 1, 1]),
                       torch.randint(1, 50, (b, 5)), torch.ones(b, 5, dtype=torch.bool), zeros, zeros + 3,
                       torch.zeros(b, 2), torch.full((b,), 20.0))
    a, c = with_part(batch), without(batch)
    assert c.existence is None and a.existence is not None and a.existence.logits.shape == (b,)
    assert torch.equal(a.decoded.start_logits, c.decoded.start_logits)


def test_old_checkpoints_load_as_models_without_it_and_answer_null(tmp_path, tiny_synthetic):
    from grounding.config import to_plain
    from grounding.inference.checkpoint import Checkpoint, read_checkpoint, save_checkpoint
    from grounding.inference.records import prediction_record
    from grounding.models import build_model
    from tests.conftest import tiny_config

    cfg = tiny_config(tiny_synthetic)
    state = {k: v for k, v in build_model(cfg.model, vocab_size=20).state_dict().items() if not k.startswith("existence.")}
    plain = to_plain(cfg)
    plain["model"].pop("existence")  # as written before the part existed
    save_checkpoint(Checkpoint(state, plain, text={"words": ["<pad>"] * 20}), tmp_path / "old.pt")
    ckpt = read_checkpoint(tmp_path / "old.pt")
    assert ckpt.config["model"]["existence"] is False
    model = build_model(ckpt.config["model"], vocab_size=20)
    model.load_state_dict(ckpt.model)  # strict: the same model, configured without the part
    line = prediction_record("v", "q", np.array([[0.0, 1.0, 0.5]]), [0.1])
    assert "pred_in_video" in line and line["pred_in_video"] is None


def test_verdict_below_the_threshold():
    from grounding.inference.records import NOT_IN_VIDEO, in_video_verdict, prediction_record

    assert in_video_verdict(0.2) == NOT_IN_VIDEO and in_video_verdict(0.7) is None and in_video_verdict(None) is None
    assert prediction_record("v", "q", np.zeros((0, 3)), [], in_video=0.123456)["pred_in_video"] == 0.1235


def test_auroc_and_ece_by_hand():
    assert auroc(np.array([0.9, 0.8]), np.array([0.1, 0.2])) == 1.0
    assert auroc(np.array([0.5]), np.array([0.5])) == 0.5  # a tie counts half
    assert auroc(np.array([0.9, 0.3]), np.array([0.5, 0.1])) == 0.75  # 3 of 4 pairs ordered
    prob, label = np.array([0.15, 0.15, 0.95, 0.95]), np.array([0.0, 1.0, 1.0, 1.0])
    # bin 1: mean p 0.15, share present 0.5 -> 0.35; bin 9: 0.95 vs 1 -> 0.05; weights 2/4 each
    assert expected_calibration_error(prob, label) == pytest.approx(0.2)


def test_eval_tool_reports_existence_when_the_ground_truth_has_absent_queries(tmp_path):
    from grounding.cli.eval_grounding import main

    gt = [{"qid": 0, "query": "a", "vid": "v0", "duration": 10, "relevant_windows": [[1, 3]]},
          {"qid": 1, "query": "b", "vid": "v1", "duration": 10, "relevant_windows": [[2, 5]]},
          {"qid": 2, "query": "a", "vid": "v1", "duration": 10, "relevant_windows": [], "absent": True,
           "look_alike": True},
          {"qid": 3, "query": "b", "vid": "v0", "duration": 10, "relevant_windows": [], "absent": True}]
    preds = [{"qid": 0, "vid": "v0", "pred_relevant_windows": [[1, 3, 1.0]], "pred_in_video": 0.9},
             {"qid": 1, "vid": "v1", "pred_relevant_windows": [[0, 1, 1.0]], "pred_in_video": 0.4},
             {"qid": 2, "vid": "v1", "pred_relevant_windows": [[0, 1, 1.0]], "pred_in_video": 0.6},
             {"qid": 3, "vid": "v0", "pred_relevant_windows": [[0, 1, 1.0]], "pred_in_video": 0.1}]
    for name, rows in (("gt.jsonl", gt), ("pred.jsonl", preds)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--predictions", str(tmp_path / "pred.jsonl"), "--ground-truth", str(tmp_path / "gt.jsonl")]) == 0
    metrics = json.loads(out.getvalue().strip().splitlines()[-1])
    assert metrics["num_queries"] == 2 and metrics["R1@0.5"] == 50.0  # absent queries stay out of the windows
    assert metrics["exist-AUROC"] == 0.75 and metrics["look_alike/exist-AUROC"] == 0.5
    assert (metrics["exist-num_present"], metrics["exist-num_absent"], metrics["exist-acc"]) == (2, 2, 0.5)
    assert "exist-AUROC" in out.getvalue()  # in the human summary too
    from grounding.data.records import read_native_jsonl

    preds[0]["pred_in_video"] = None  # a model without the part: counted, not scored as a guess
    metrics = existence_metrics(preds, read_native_jsonl(tmp_path / "gt.jsonl"))
    assert metrics["exist-num_missing"] == 1 and metrics["exist-num_present"] == 1


def test_the_synthetic_benchmark_writes_present_and_absent_queries(tiny_synthetic):
    from grounding.data.records import read_native_jsonl
    from grounding.synthetic.world import ACTIONS, OBJECTS

    annotations = tiny_synthetic / "annotations"
    records = read_native_jsonl(annotations / "charades_sta_test_absent.jsonl")
    events = {json.loads(line)["vid"]: json.loads(line)["events"]
              for line in (annotations / "charades_sta_test.events.jsonl").read_text().splitlines()}
    tags = [json.loads(line) for line in (annotations / "charades_sta_test.tags.jsonl").read_text().splitlines()]
    present = [r for r in records if not r.extra.get("absent")]
    absent = [r for r in records if r.extra.get("absent")]
    assert len(present) == len(absent) == len(tags) and all(r.windows for r in present)
    by_qid = {r.qid: r for r in present}
    for r in absent:
        source = by_qid[r.extra["source_qid"]]
        event = tags[source.qid]["event"]
        assert r.query == source.query and r.vid != source.vid and not r.windows
        assert event in events[source.vid] and event not in events[r.vid]
        action = next(a[0] for a in ACTIONS if event.startswith(a[0] + " "))
        obj = event[len(action) + 1:]
        assert obj in OBJECTS
        shares = any(e.startswith(action + " ") or e.endswith(" " + obj) for e in events[r.vid])
        assert r.extra["look_alike"] == shares


def test_look_alike_counts_count_the_videos_showing_each_querys_event(tiny_synthetic):
    from grounding.synthetic.absent import look_alike_ceiling, look_alike_counts

    annotations = tiny_synthetic / "annotations"
    counts = look_alike_counts(annotations)
    tags = [json.loads(line) for line in (annotations / "charades_sta_test.tags.jsonl").read_text().splitlines()]
    events = [json.loads(line)["events"] for line in (annotations / "charades_sta_test.events.jsonl").read_text().splitlines()]
    for t in tags[:20]:
        assert counts[t["qid"]] == sum(t["event"] in e for e in events) >= 1
    ceiling = look_alike_ceiling(annotations)
    n = np.array(list(counts.values()), dtype=float)
    assert ceiling["VR-R1"] == pytest.approx(100 * (1 / n).mean(), abs=0.01) and ceiling["VR-R10"] >= ceiling["VR-R1"]


def test_checkpoint_mode_scores_the_absent_split_as_the_docs_say(tiny_synthetic, tmp_path, capsys):
    """docs/model.md's command: the benchmark's present/absent file as a native split of the config."""
    from grounding.cli.eval_grounding import main
    from grounding.inference.checkpoint import random_checkpoint
    from grounding.synthetic.world import vocabulary
    from tests.conftest import REPO, tiny_config, tiny_overrides

    ckpt = random_checkpoint(tiny_config(tiny_synthetic), vocabulary(), tmp_path / "random.pt")
    out = tmp_path / "absent.jsonl"
    assert main(["--config", str(REPO / "configs/synthetic.yaml"), "--checkpoint", str(ckpt), "--split", "test_absent", "--out",
                 str(out), *tiny_overrides(tiny_synthetic), "data.dataset=native",
                 "+data.annotations.test_absent=annotations/charades_sta_test_absent.jsonl"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 2 * metrics["num_queries"] == metrics["exist-num_present"] + metrics["exist-num_absent"]
    assert all(0 <= line["pred_in_video"] <= 1 for line in lines)
    assert 0 <= metrics["exist-AUROC"] <= 1 and 0 <= metrics["exist-ECE"] <= 1 and "plain/R1@0.5" in metrics


def test_the_qvhighlights_layout_writes_its_absent_set_too(tiny_qvh_synthetic):
    from grounding.data.records import read_native_jsonl
    from grounding.eval.evaluate import compute_metrics

    annotations = tiny_qvh_synthetic / "annotations"
    records = read_native_jsonl(annotations / "highlight_val_absent.jsonl")
    events = {json.loads(line)["vid"]: json.loads(line)["events"]
              for line in (annotations / "highlight_val_release.events.jsonl").read_text().splitlines()}
    side = {json.loads(line)["qid"]: json.loads(line)["event"]
            for line in (annotations / "highlight_val_release.tags.jsonl").read_text().splitlines()}
    present = [r for r in records if not r.extra.get("absent")]
    absent = [r for r in records if r.extra.get("absent")]
    assert len(present) == len(absent) == len(side) and all("saliency_scores" in r.extra for r in present)
    assert len({r.qid for r in records}) == len(records)  # absent qids follow the split's largest
    for r in absent:
        assert side[r.extra["source_qid"]] not in events[r.vid]
    preds = [{"qid": r.qid, "vid": r.vid, "pred_relevant_windows": [[0.0, 4.0, 1.0]], "pred_in_video": 0.5}
             for r in records]
    metrics = compute_metrics(preds, records)
    assert metrics["brief"]["exist-AUROC"] == 0.5 and "MR-full-mAP" in metrics["brief"]
