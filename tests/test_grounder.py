"""The Grounder API and the ground command: the newcomer flow on the real Charades clip (tiny random CLIP,
features extracted with it, a checkpoint trained on them), zero-shot, long videos, and bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from grounding.api.long_video import merge_windows, native_saliency, plan_windows, window_clip_count
from grounding.api.zero_shot import search_windows, window_scores
from grounding.errors import GroundingError
from tests.conftest import REPO

GROUND = str(REPO / "tools/ground.py")


def _ground(*args, **kw):
    import os

    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, GROUND, *args], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=120, **kw)


# ---------------------------------------------------------------- pure functions
def test_plan_windows_overlap_by_half_and_end_at_the_video_end():
    assert plan_windows(10, 4) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert plan_windows(11, 4) == [(0, 4), (2, 6), (4, 8), (6, 10), (7, 11)]
    assert plan_windows(3, 4) == [(0, 3)]
    assert window_clip_count({"max_duration": 30.7}, 1.0) == 31
    assert window_clip_count({"num_clips": 16}, 2.0) == 16


def test_native_saliency_maps_each_native_clip_to_the_model_clip_at_its_centre():
    assert native_saliency(np.array([0.1, 0.9]), 5).tolist() == [0.1, 0.1, 0.9, 0.9, 0.9]


def test_merge_windows_drops_duplicates_from_overlapping_windows():
    merged = merge_windows([(10.0, 20.0, 0.5), (10.5, 20.0, 0.9), (40.0, 50.0, 0.7)], 0.5, 5)
    assert merged == [[10.5, 20.0, 0.9], [40.0, 50.0, 0.7]]


def test_scan_window_search_finds_the_extent_of_a_raised_segment():
    sim = np.zeros(20)
    sim[6:11] = 1.0  # clips 6..10 (2 s each) are the moment
    spans, scores = window_scores(sim, 0.5, 20)
    best = spans[np.argmax(scores)]
    assert best.tolist() == [6, 10]
    top = search_windows(sim, clip_len=2.0, duration=40.0, top_k=3)
    assert top[0][:2] == [12.0, 22.0]
    # sum of (z - tau) over the 5 raised clips: z = 1.5 for raised, -0.5 elsewhere (mean .25, std .433)
    z = (1 - 0.25) / np.sqrt(0.25 * 0.75)
    assert top[0][2] == pytest.approx(5 * (z - 0.5), rel=1e-4)


# ---------------------------------------------------------------- the newcomer flow
def test_checkpoint_records_how_its_features_were_made(demo, grounder):
    store = grounder.provenance["stores"][0]
    assert store["backbone"] == "clip" and store["model"] == demo[1]["clip"]
    assert store["clip_len"] == 1.0 and store["frames_per_clip"] == 1 and store["feature_dim"] == 16
    assert store["max_duration"] == 18.0 and store["source"].startswith("manifest")


def test_encode_video_reproduces_the_extractor_features(demo, grounder):
    feats = np.load(demo[0] / "data/features/demo01.npy")
    video = grounder.encode_video(demo[0] / "data/videos/demo01.mp4")
    np.testing.assert_allclose(video.features, feats, atol=1e-5)
    assert video.duration == pytest.approx(10.0)


def test_predict_on_the_real_charades_clip(shared, grounder):
    video = grounder.encode_video(shared / "videos/charades_sample.mp4")
    assert video.num_clips == 31  # 30.7 s in 1 s clips
    one = grounder.predict("a person opens the door", video, top_k=3)
    assert set(one) == {"query", "vid", "duration", "pred_relevant_windows", "pred_saliency_scores", "pred_in_video"}
    assert 0 <= one["pred_in_video"] <= 1
    assert one["vid"] == "charades_sample" and one["duration"] == pytest.approx(30.6973, abs=1e-3)
    windows = one["pred_relevant_windows"]
    assert 1 <= len(windows) <= 3 and all(0 <= s < e <= 30.7 for s, e, _ in windows)
    assert [w[2] for w in windows] == sorted((w[2] for w in windows), reverse=True)
    assert len(one["pred_saliency_scores"]) == 31
    many = grounder.predict(["a person opens the door", "someone holds a cup."], video, top_k=3)
    # a list in, a list out, the same answers (up to batched float rounding); the video is not encoded again
    assert many[0]["query"] == one["query"] and len(many) == 2
    np.testing.assert_allclose(many[0]["pred_relevant_windows"], one["pred_relevant_windows"], atol=1e-5)
    assert len(video.cache) == 1


def test_a_short_video_is_one_window_and_matches_the_model_on_the_training_input(demo, grounder):
    """A video no longer than the training videos goes through the model exactly as in training."""
    from grounding.data.batch import make_batch
    from grounding.data.features import resample_mean
    from grounding.inference import run_and_decode

    video = grounder.encode_video(demo[0] / "data/videos/demo00.mp4")
    pred = grounder.predict("a person opens the door.", video, top_k=2)
    words, mask, _ = grounder.loaded.encode_queries(["a person opens the door."])
    feats = torch.from_numpy(resample_mean(np.load(demo[0] / "data/features/demo00.npy"), 16))[None]
    none = torch.zeros(1, dtype=torch.long)
    batch = make_batch(feats, torch.ones(1, 16, dtype=torch.bool), torch.tensor([0]), words, mask, none, none,
                       span=torch.zeros(1, 2), duration=torch.tensor([8.0]))
    windows = run_and_decode(grounder.loaded.model, batch, grounder.loaded.decode).windows
    expected = [[round(float(s), 4), round(float(e), 4), round(float(c), 6)] for s, e, c in windows[0, :2]]
    assert pred["pred_relevant_windows"] == expected


@pytest.mark.parametrize("clips, num_windows", [(600, 66), pytest.param(7200, 799, marks=pytest.mark.slow)])
def test_long_video_features_are_grounded_over_windows(grounder, clips, num_windows):
    """A 10-minute and a 2-hour video (one-second clips) in windows of the 18 s the model was trained on."""
    rng = np.random.default_rng(0)
    video = grounder.video_from_features(rng.normal(size=(clips, 16)).astype(np.float32), float(clips),
                                         provenance=grounder.feature_recipe())
    pred = grounder.predict("someone holds a cup.", video, top_k=5)
    assert len(pred["pred_saliency_scores"]) == clips
    windows = pred["pred_relevant_windows"]
    assert len(windows) == 5 and all(0 <= s < e <= clips and e - s <= 18 for s, e, _ in windows)
    assert len(video.cache[next(iter(video.cache))].ranges) == num_windows  # windows of 18 clips, stride 9


def planted_decoder(model, batch, decode_cfg, autocast=None):
    """Stands in for the trained model: in each window it answers the clips whose first feature is high
    (the planted moment), in window seconds, with saliency 1 there; a window without them still answers
    its first clip with full confidence (as a softmax over one window does), but low saliency."""
    from grounding.inference.predict import Decoded

    marker = batch.video[batch.vid_index, :, 0]  # (B, T)
    mask = batch.video_mask[batch.vid_index]
    step = batch.duration / mask.sum(1)
    on = (marker > 0.5) & mask
    windows = torch.full((len(marker), decode_cfg.topk, 3), float("nan"))
    for b in range(len(marker)):
        clips = torch.nonzero(on[b]).flatten()
        first, last = (int(clips.min()), int(clips.max()) + 1) if len(clips) else (0, 1)
        windows[b, 0] = torch.tensor([first * step[b], last * step[b], 1.0])
    return Decoded(windows, torch.where(on, 1.0, 0.01), None, None)


@pytest.mark.parametrize("start", [300, 4, 590])
def test_a_planted_moment_in_a_long_video_comes_back_in_video_seconds(grounder, monkeypatch, start):
    """A 10-minute video (1 s clips, windows of 18 s with stride 9) with one 6 s moment planted at ``start``:
    a window's answer must be moved by that window's offset, and the video's saliency must peak there."""
    from grounding.api import long_video

    monkeypatch.setattr(long_video, "run_and_decode", planted_decoder)
    feats = np.random.default_rng(0).normal(size=(600, 16)).astype(np.float32)
    feats[:, 0] = 0.0
    feats[start:start + 6, 0] = 10.0
    video = grounder.video_from_features(feats, 600.0, provenance=grounder.feature_recipe())
    pred = grounder.predict("someone holds a cup.", video, top_k=3)
    (s, e, _), *rest = pred["pred_relevant_windows"]
    assert s == pytest.approx(start, abs=1.5) and e == pytest.approx(start + 6, abs=1.5)
    iou = [max(0, min(e, e2) - max(s, s2)) / (max(e, e2) - min(s, s2)) for s2, e2, _ in rest]
    assert max(iou) <= grounder.loaded.decode.nms_threshold  # the same moment from overlapping windows merged
    saliency = np.asarray(pred["pred_saliency_scores"])
    assert set(np.flatnonzero(saliency > 0.5)) <= set(range(start - 1, start + 7))
    assert (saliency[start + 1:start + 5] > 0.5).all()


def test_zero_shot_finds_a_planted_stretch_in_video_seconds(demo, monkeypatch):
    """Clip features whose 6 clips (2 s each) from clip 20 point along the query's text embedding: the
    scan statistic must return exactly 40-52 s, and the raw similarities as saliency."""
    from grounding import Grounder
    from grounding.api.encoding import EncodedVideo

    zs = Grounder.zero_shot(demo[1]["clip"], device="cpu", clip_len=2.0)
    rng = np.random.default_rng(0)
    dim = zs.feature_recipe()["feature_dim"]
    query = rng.normal(size=dim)
    query /= np.linalg.norm(query)
    monkeypatch.setattr(zs, "encode_text", lambda queries: (np.tile(query, (len(queries), 1)), [False] * len(queries)))
    feats = rng.normal(size=(60, dim)).astype(np.float32)
    feats[20:26] += 3 * np.sqrt(dim) * query.astype(np.float32)
    video = EncodedVideo("planted", 119.5, 2.0, feats, zs.feature_recipe())
    pred = zs.predict("a person opens the door", video, top_k=3)
    assert pred["pred_relevant_windows"][0][:2] == [40.0, 52.0]
    saliency = np.asarray(pred["pred_saliency_scores"])
    assert set(np.argsort(-saliency)[:6]) == set(range(20, 26))
    feats[54:60] = feats[20:26]  # the same moment at the video's end: its last clip is cut at the duration
    assert zs.predict("a person opens the door", video, top_k=2)["pred_relevant_windows"][1][:2] == [108.0, 119.5]


def test_zero_shot_flow(demo, shared):
    from grounding import Grounder

    zs = Grounder.zero_shot(demo[1]["clip"], device="cpu", clip_len=2.0)
    video = zs.encode_video(shared / "videos/charades_sample.mp4")
    assert video.num_clips == 16
    pred = zs.predict("door", video, top_k=2)
    assert len(pred["pred_relevant_windows"]) == 2 and len(pred["pred_saliency_scores"]) == 16
    long = zs.predict("a person opens the door of the fridge", video)
    assert "cut to 16 tokens" in long["warnings"][0]


@pytest.mark.slow
def test_ground_command_writes_json_and_html(demo, shared, tmp_path):
    video = shared / "videos/charades_sample.mp4"
    out_json, out_html = tmp_path / "pred.json", tmp_path / "report.html"
    done = _ground("--model", demo[1]["run"], "--video", str(video), "--query", "a person opens the door",
                   "--top-k", "3", "--json", str(out_json), "--html", str(out_html), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    last = json.loads(done.stdout.strip().splitlines()[-1])
    assert json.loads(out_json.read_text()) == last
    assert last[0]["query"] == "a person opens the door" and len(last[0]["pred_relevant_windows"]) == 3
    assert "rank     start       end" in done.stdout
    page = out_html.read_text()
    assert page.count("data:image/jpeg;base64,") == 12 and "data:video/mp4;base64," in page
    assert '"pred_relevant_windows"' in page and "<script src" not in page  # self-contained
    again = _ground("--model", demo[1]["run"], "--video", str(video), "--query", "x", "--json", str(out_json))
    assert again.returncode == 2 and "exists; pass --overwrite" in again.stderr


@pytest.mark.slow
def test_ground_command_zero_shot_and_a_folder_with_a_queries_file(demo, tmp_path):
    queries = tmp_path / "q.txt"
    queries.write_text("a person opens the door\n\nsomeone holds a cup\n")
    done = _ground("--zero-shot", demo[1]["clip"], "--video", demo[1]["videos"], "--queries", str(queries),
                   "--clip-len", "1", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    preds = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(preds) == 6 * 2 and {p["vid"] for p in preds} == {f"demo{i:02d}" for i in range(6)}


# ---------------------------------------------------------------- bad input: one clear message, nothing written
@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("hello"), "not a readable video"),
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()),
     "not a readable video"),
])
def test_bad_video_files(grounder, tmp_path, make, message):
    path = tmp_path / "clip.mp4"
    make(path)
    with pytest.raises(GroundingError, match=message):
        grounder.encode_video(path)


def test_a_video_shorter_than_one_clip(grounder, tmp_path):
    from grounding.extract.synthetic import make_video

    path = make_video(tmp_path / "short.mp4", 5, fps=15)
    with pytest.raises(GroundingError, match=r"lasts 0.33 s, shorter than one 1 s clip"):
        grounder.encode_video(path)


def test_empty_and_too_long_queries(grounder):
    video = grounder.video_from_features(np.ones((10, 16), np.float32), 10.0)
    with pytest.raises(GroundingError, match="the query is empty"):
        grounder.predict("   ", video)
    with pytest.raises(GroundingError, match="query 2 is empty"):
        grounder.predict(["door", ""], video)
    pred = grounder.predict("door " * 31, video)
    assert pred["warnings"] == ["the query was cut to its first 30 words, the model's limit"]


def test_features_from_another_backbone_are_refused_naming_both(grounder):
    other = {"backbone": "videomae", "model": "/models/videomae-base", "clip_len": 2.0, "feature_dim": 16}
    video = grounder.video_from_features(np.ones((10, 16), np.float32), 20.0, provenance=other)
    with pytest.raises(GroundingError, match=r"encoded with videomae \(/models/videomae-base.*trained on clip \("):
        grounder.predict("door", video)


def test_incompatible_checkpoints_and_missing_folders(demo, tmp_path):
    from grounding import Grounder

    old = tmp_path / "old.pt"
    torch.save({"model": {}, "epoch": 3}, old)
    with pytest.raises(GroundingError, match="not compatible with this version of grounding"):
        Grounder.from_pretrained(old)
    state = torch.load(demo[1]["run"] + "/checkpoints/last.pt", weights_only=False)
    state["model"] = {k + "_renamed": v for k, v in state["model"].items()}
    torch.save(state, tmp_path / "renamed.pt")
    with pytest.raises(GroundingError, match="not compatible with this version of grounding"):
        Grounder.from_pretrained(tmp_path / "renamed.pt")
    with pytest.raises(GroundingError, match="holds no checkpoints/best.pt"):
        Grounder.from_pretrained(tmp_path)
    moved = Grounder.from_pretrained(demo[1]["run"], device="cpu", backbone_dir=tmp_path / "gone")
    with pytest.raises(GroundingError, match="does not exist here; pass backbone_dir"):
        moved.encode_video(demo[0] / "data/videos/demo00.mp4")
    with pytest.raises(GroundingError, match="not a transformers model folder"):
        Grounder.zero_shot(tmp_path / "no_clip")


@pytest.mark.slow
def test_ground_command_bad_input_exits_2_and_writes_nothing(demo, tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    out = tmp_path / "out.html"
    done = _ground("--model", demo[1]["run"], "--video", str(bad), "--query", "door", "--html", str(out))
    # decord's C++ layer logs its own line first; ours is the last, and there is no traceback
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and last.startswith("error: cannot read video") and "not a readable video" in last
    assert "Traceback" not in done.stderr
    assert not out.exists() and not list(tmp_path.glob(".*tmp"))
    empty = _ground("--model", demo[1]["run"], "--video", str(bad), "--query", " ")
    assert empty.returncode == 2 and "--query is empty" in empty.stderr
