"""Feature recipes: the qvh_slowfast_clip sampling and preprocessing pinned on the real Charades clip, the
SlowFast weight layout, bad input, and the end-to-end flow (recipe features with tiny random weights ->
a QVHighlights-layout training -> tools/ground.py re-making the same features from the raw clip)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch

from grounding.errors import GroundingError
from grounding.extract.recipes import get_recipe, hero
from grounding.extract.video_io import VideoInfo
from tests.conftest import SHARED

pytest.importorskip("imageio_ffmpeg")
pytest.importorskip("decord")

CHARADES = VideoInfo(460, 15000 / 1001)  # the real clip: 460 frames at 14.985 fps, 30.70 s
TINY_SLOWFAST = dict(blocks=(1, 1, 1, 1), width=8)


# ------------------------------------------------------------------ sampling, by hand
def test_hero_slowfast_offsets_follow_the_source_rate():
    # 15 fps source: floor(14.985) = 14, L = 64 * 14 / 30 = 29.87: 32 offsets over the first second
    offsets = hero.slowfast_offsets(CHARADES.fps)
    assert offsets[:6].tolist() == [0, 0, 1, 2, 3, 4] and offsets[-1] == 28 and len(offsets) == 32
    # 30 fps source: L = 64, linspace(0, 63, 32) truncated; past the 60-frame clip they clamp to 59
    full = np.minimum(hero.slowfast_offsets(30.0), 59)
    assert full[:4].tolist() == [0, 2, 4, 6] and full[-3:].tolist() == [58, 59, 59]


def test_hero_slowfast_positions_pad_the_tail_by_repeating_the_last_second():
    # 921 frames at 30 fps = 30.7 s -> 16 clips; seconds 0..30 exist (31st padded with frame 920),
    # clip 15 covers seconds 30 and 31, and second 31 repeats second 30
    pos = hero.slowfast_positions(CHARADES.duration, 30.0, 2.0, decoded=921)
    assert pos.shape == (16, 32)
    assert pos[1, 0] == 60 and pos[15, 0] == 900
    assert hero.slowfast_offsets(30.0)[15] == 30 and pos[15, 15] == 900  # frame 930 = second 31 -> repeats 900
    assert pos[15, 31] == 920 and pos[14, 31] == 840 + 59  # 959 -> second 31 -> 929 -> past the end: 920
    assert pos.max() == 920
    assert hero.slow_pathway_index().tolist() == [0, 4, 8, 13, 17, 22, 26, 31]


def test_fps_filter_takes_the_last_frame_not_past_each_output_time_rounded():
    # 0.5 fps of 14.985 fps: output n is the last frame with round(t / 2) <= n, i.e. t < 2n + 1 s:
    # n = 0 -> k < 14.985 -> 14; n = 1 -> k < 44.955 -> 44 (the frame just before each clip's middle)
    assert hero.fps_filter_sources(460, CHARADES.fps, 0.5, 3).tolist() == [14, 44, 74]
    # 30 fps of it: frame k lands on output round(2.002 k), so each source frame is shown twice
    assert hero.fps_filter_sources(460, CHARADES.fps, 30, 6).tolist() == [0, 0, 1, 1, 2, 2]
    # counts: 30.697 s -> round(920.9) = 921 and round(15.35) = 15 frames
    assert hero.fps_filter_count(460, CHARADES.fps, 30) == 921 and hero.fps_filter_count(460, CHARADES.fps, 0.5) == 15


# ------------------------------------------------------------------ on the real clip
@pytest.fixture(scope="module")
def charades():
    path = SHARED / "videos" / "charades_sample.mp4"
    if not path.is_file():
        pytest.skip("../shared (the real Charades clip) is not present in this checkout")
    return path


def _ffmpeg_full_frames(path, fps: str, count: int) -> np.ndarray:
    from grounding.extract.recipes.frames import ffmpeg_binary

    out = subprocess.run([ffmpeg_binary(), "-nostdin", "-loglevel", "error", "-i", str(path), "-vf", f"fps=fps={fps}",
                          "-frames:v", str(count), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, 270, 480, 3)


@pytest.mark.parametrize("fps, count", [("30", 90), ("0.5", 6)])
def test_ffmpeg_picks_the_source_frames_the_hero_sampling_names(charades, fps, count):
    """The frame times: what ffmpeg's fps filter emits on the real clip is, frame for frame, the source frame
    fps_filter_sources predicts (decord and ffmpeg decode identical full-resolution frames)."""
    import decord

    emitted = _ffmpeg_full_frames(charades, fps, count)
    assert len(emitted) == min(count, hero.fps_filter_count(460, CHARADES.fps, float(fps)))
    predicted = hero.fps_filter_sources(460, CHARADES.fps, float(fps), len(emitted))
    source = decord.VideoReader(str(charades)).get_batch(sorted(set(predicted.tolist()))).asnumpy()
    lookup = {k: i for i, k in enumerate(sorted(set(predicted.tolist())))}
    assert all(np.array_equal(emitted[n], source[lookup[k]]) for n, k in enumerate(predicted.tolist()))


def test_recipe_inputs_on_the_real_clip(charades):
    """Sampling and preprocessing pinned: clip counts, the frames of clip 1, and the normalised inputs."""
    from grounding.extract.recipes.encode import probe
    from grounding.extract.recipes.frames import FfmpegFrames

    recipe = get_recipe("qvh_slowfast_clip")
    video = probe(charades, recipe)
    assert (video.info.num_frames, video.height, video.width) == (460, 270, 480)
    slowfast, clip = recipe.parts
    positions = slowfast.clip_positions(video.info, None)
    assert positions.shape == (16, 32) and positions[1, :3].tolist() == [60, 60, 61]
    with FfmpegFrames(charades, 30, 270, 480, 224) as frames:
        clips = frames.take(positions[1:2])  # (1, 32, 224, 224, 3): 30 fps frames 60..88 = source 30..44
        assert frames.take(np.array([[88]]))[0, 0].tobytes() == clips[0, -1].tobytes()
    slow, fast = slowfast.model_input(torch.from_numpy(clips))
    assert slow.shape == (1, 3, 8, 224, 224) and fast.shape == (1, 3, 32, 224, 224)
    expected = (torch.from_numpy(clips).float().permute(0, 4, 1, 2, 3) / 255 - 0.45) / (0.225 + 1e-8)
    assert torch.equal(fast, expected) and torch.equal(slow, fast[:, :, [0, 4, 8, 13, 17, 22, 26, 31]])
    assert float(clips.mean()) == pytest.approx(PINNED_SLOWFAST_CLIP1_MEAN, abs=0.5)
    with FfmpegFrames(charades, clip.decode_fps(video.info), 270, 480, 224) as frames:
        assert frames.rest() == 15  # 15 CLIP clips: the concatenated features have 15 (SlowFast: 16)
    with FfmpegFrames(charades, 0.5, 270, 480, 224) as frames:
        first = frames.take(np.array([[0]]))
    pixels = clip.model_input(torch.from_numpy(first))
    assert pixels.shape == (1, 3, 224, 224)
    assert float(first.mean()) == pytest.approx(PINNED_CLIP_CLIP0_MEAN, abs=0.5)


PINNED_SLOWFAST_CLIP1_MEAN = 115.68  # mean uint8 level of those 32 frames (ffmpeg 9.0.2 of imageio-ffmpeg 0.8.1)
PINNED_CLIP_CLIP0_MEAN = 126.42  # mean uint8 level of the first CLIP frame (source frame 14)


# ------------------------------------------------------------------ end to end, and bad input
def _cut(src, dst, seconds: float):
    from grounding.extract.recipes.frames import ffmpeg_binary

    dst.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([ffmpeg_binary(), "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-t", str(seconds),
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-an", str(dst)], check=True)
    return dst


@pytest.fixture(scope="module")
def qvh_recipe_run(tmp_path_factory, charades):
    """The first 4 s of the real clip, its qvh_slowfast_clip features with tiny random weights, QVHighlights
    annotations on it, and a tiny CCMAN trained on them for one epoch."""
    from grounding.backbones.slowfast import SlowFastConfig, save_random_slowfast
    from grounding.cli.extract_features import main as extract
    from grounding.config import load_config, packaged_config
    from grounding.engine.trainer import run_training
    from grounding.extract.synthetic import save_random_clip

    root = tmp_path_factory.mktemp("qvh_recipe")
    video = _cut(charades, root / "videos" / "kitchen.mp4", 4.0)
    weights = {"slowfast": save_random_slowfast(root / "weights" / "slowfast_tiny.pyth", SlowFastConfig(**TINY_SLOWFAST)),
               "clip": save_random_clip(root / "weights" / "clip_tiny", hidden_size=16, num_layers=1, num_heads=2,
                                        image_size=224, patch_size=32, projection_dim=16)}
    flags = [f"--weights={name}={path}" for name, path in weights.items()]
    assert extract(["--videos", str(root / "videos"), "--out", str(root / "data/features"), "--recipe",
                    "qvh_slowfast_clip", *flags, "--no-progress"]) == 0
    lines = [{"qid": i, "query": q, "vid": "kitchen", "duration": 4.0, "relevant_windows": [w],
              "relevant_clip_ids": list(range(w[0] // 2, w[1] // 2)), "saliency_scores": [[2, 3, 1]] * (w[1] // 2 - w[0] // 2)}
             for i, (q, w) in enumerate([("a person opens the door", [0, 2]), ("someone holds a cup", [2, 4]),
                                         ("the person walks away", [0, 4])])]
    (root / "data/annotations").mkdir(parents=True)
    for split in ("train", "val"):
        (root / f"data/annotations/highlight_{split}_release.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n")
    dim = SlowFastConfig(**TINY_SLOWFAST).feature_dim + 16
    overrides = {"data.root": root / "data", "model.video_dim": dim, "model.dim": 32, "model.heads": 2,
                 "model.word_dim": 16, "model.embed_dim": 16, "train.device": "cpu", "train.batch_size": 4,
                 "train.epochs": 1, "train.num_figures": 0, "train.log_every": 1000}
    cfg = load_config(packaged_config("qvhighlights.yaml"), [f"{k}={v}" for k, v in overrides.items()])
    run_training(cfg, root / "run", overwrite=True, progress=False)
    return root, video, weights


@pytest.mark.slow
def test_trained_on_recipe_features_grounds_the_raw_clip(qvh_recipe_run, tmp_path, capsys):
    from grounding import Grounder
    from grounding.cli.ground import main as ground
    from grounding.extract.recipes.encode import concatenate

    root, video, weights = qvh_recipe_run
    g = Grounder.from_pretrained(root / "run", device="cpu")
    recipe = g.provenance["recipe"]
    assert recipe["name"] == "qvh_slowfast_clip" and [p["part"] for p in recipe["parts"]] == ["slowfast", "clip"]
    assert recipe["parts"][0]["weights_file"] == "slowfast_tiny.pyth" and len(recipe["parts"][0]["weights_sha256"]) == 12
    # encode_video re-makes exactly the training features (the recorded weight paths exist here)
    encoded = g.encode_video(video)
    stored = {p: np.load(root / f"data/features/{p}_features/kitchen.npz")["features"] for p in ("slowfast", "clip")}
    assert encoded.features.shape == (2, 304)
    np.testing.assert_array_equal(encoded.features, concatenate(get_recipe("qvh_slowfast_clip"), stored))
    # and the command line grounds the raw clip, naming the weights explicitly, with the report page
    out, page = tmp_path / "pred.json", tmp_path / "page.html"
    code = ground(["--model", str(root / "run"), "--video", str(video), "--query", "someone holds a cup",
                   "--device", "cpu", "--json", str(out), "--html", str(page),
                   *[f"--recipe-weights={k}={v}" for k, v in weights.items()]])
    assert code == 0
    pred = json.loads(out.read_text())[0]
    assert pred["vid"] == "kitchen" and pred["duration"] == pytest.approx(4.0, abs=0.01)  # the clip lasts 4.004 s
    assert 0 <= pred["pred_relevant_windows"][0][0] < pred["pred_relevant_windows"][0][1] <= pred["duration"]
    assert "someone holds a cup" in page.read_text()


@pytest.mark.slow
def test_recipe_weights_missing_or_different_at_grounding_time(qvh_recipe_run, tmp_path):
    from grounding import Grounder
    from grounding.api.recipe_encoding import RecipeEncoder
    from grounding.backbones.slowfast import SlowFastConfig, save_random_slowfast

    root, video, weights = qvh_recipe_run
    moved = weights["slowfast"].rename(tmp_path / "elsewhere.pyth")
    try:
        with pytest.raises(GroundingError, match=r"recipe qvh_slowfast_clip.*slowfast weights slowfast_tiny\.pyth"):
            Grounder.from_pretrained(root / "run", device="cpu").encode_video(video)
        other = save_random_slowfast(tmp_path / "other.pyth", SlowFastConfig(**TINY_SLOWFAST), seed=1)
        with pytest.raises(GroundingError, match=r"other\.pyth \(sha256 \w+\) is not the slowfast weights"):
            Grounder.from_pretrained(root / "run", device="cpu", recipe_weights=[f"slowfast={other}"]).encode_video(video)
        g = Grounder.from_pretrained(root / "run", device="cpu")
        named = RecipeEncoder(g.provenance["recipe"], [f"slowfast={moved}"], g.name, torch.device("cpu"), g.video_dim)
        assert named.weights == {"slowfast": moved, "clip": weights["clip"]}  # the clip part: its recorded path
    finally:
        moved.rename(weights["slowfast"])


def test_weights_of_another_architecture_are_refused_naming_both(tmp_path):
    from grounding.backbones.slowfast import SlowFastConfig, load_slowfast, save_random_slowfast

    clip_keys = ("vision_model.embeddings.patch_embedding.weight", "vision_model.post_layernorm.weight",
                 "visual_projection.weight")  # what a transformers CLIP state dict holds
    torch.save({k: torch.zeros(2) for k in clip_keys}, tmp_path / "clip.pt")
    with pytest.raises(GroundingError, match=r"clip\.pt holds the weights of a CLIP model, not of SlowFast R50 8x8"):
        load_slowfast(tmp_path / "clip.pt")
    tiny = save_random_slowfast(tmp_path / "tiny.pyth", SlowFastConfig(**TINY_SLOWFAST))
    with pytest.raises(GroundingError, match=r"tiny\.pyth holds the weights of SlowFast \(blocks \(1, 1, 1, 1\), "
                                             r"width 8\), not of SlowFast R50 8x8"):
        load_slowfast(tiny, SlowFastConfig())
    (tmp_path / "clip_dir").mkdir()
    (tmp_path / "clip_dir/config.json").write_text('{"model_type": "clip_vision_model"}')
    with pytest.raises(GroundingError, match=r"clip_dir is a folder holding a transformers 'clip_vision_model' model, "
                                             r"not SlowFast weights"):
        get_recipe("qvh_slowfast_clip").part("slowfast").load(tmp_path / "clip_dir")
    with pytest.raises(GroundingError, match=r"tiny\.pyth is a file holding SlowFast \(blocks.*needs CLIP ViT-B/32"):
        get_recipe("qvh_slowfast_clip").part("clip").load(tiny)


def test_a_video_shorter_than_one_clip_and_missing_weights(tmp_path, charades):
    from grounding.extract.recipes.encode import probe
    from grounding.extract.recipes.weights import resolve_weights

    recipe = get_recipe("qvh_slowfast_clip")
    short = _cut(charades, tmp_path / "short.mp4", 1.5)
    with pytest.raises(GroundingError, match=r"short\.mp4 lasts 1\.\d+ s, shorter than one 2 s clip of recipe "
                                             r"qvh_slowfast_clip"):
        probe(short, recipe)
    with pytest.raises(GroundingError, match=r"needs SLOWFAST_8x8_R50\.pkl for its slowfast part.*dl\.fbaipublicfiles"):
        resolve_weights(recipe, [str(tmp_path)])
    with pytest.raises(GroundingError, match=r"'i3d' is not a part of recipe qvh_slowfast_clip"):
        resolve_weights(recipe, [f"i3d={tmp_path}/x.pt"])


def test_training_on_the_released_features_records_the_recipe_and_asks_for_its_weights(tmp_path):
    """Features downloaded from the release: the config names the recipe; grounding then needs the weights,
    and says which file each part needs."""
    from omegaconf import OmegaConf

    from grounding.api.recipe_encoding import RecipeEncoder
    from grounding.data.provenance import feature_provenance

    cfg = OmegaConf.create({"data": {"root": str(tmp_path), "l2_normalize": True, "max_clips": 75,
                                     "feature_provenance": {"recipe": "qvh_slowfast_clip", "clip_len": 2.0}},
                            "model": {"video_dim": 2816}})
    prov = feature_provenance(cfg)
    assert prov["recipe"]["name"] == "qvh_slowfast_clip" and prov["recipe"]["parts"] == []
    with pytest.raises(GroundingError, match=r"trained on features of recipe qvh_slowfast_clip; encoding a video "
                                             r"needs its slowfast weights SLOWFAST_8x8_R50\.pkl; pass --recipe-weights"):
        RecipeEncoder(prov["recipe"], None, "checkpoint x.pt", torch.device("cpu"), 2816)


def _caffe2_name(name: str) -> str:
    """PySlowFast -> Caffe2 blob name, written independently of the loader's rules (the inverse, by hand)."""
    import re

    bn = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}
    stem = re.match(r"s1\.pathway(\d)_stem\.(conv|bn)\.(\w+)", name)
    if stem:
        t = "t_" if stem[1] == "1" else ""
        return f"{t}conv1_w" if stem[2] == "conv" else f"{t}res_conv1_bn_{bn[stem[3]]}"
    fuse = re.match(r"s(\d)_fuse\.(conv_f2s|bn)\.(\w+)", name)
    if fuse:
        base = "t_pool1_subsample" if fuse[1] == "1" else f"t_res{fuse[1]}_{LAST_BLOCK[int(fuse[1])]}_branch2c_bn_subsample"
        return f"{base}_w" if fuse[2] == "conv_f2s" else f"{base}_bn_{bn[fuse[3]]}"
    block = re.match(r"s(\d)\.pathway(\d)_res(\d+)\.(branch1|branch1_bn|branch2\.([abc])(_bn)?)\.(\w+)", name)
    t = "t_" if block[2] == "1" else ""
    if block[4].startswith("branch1"):
        layer = "branch1" + ("_bn_" + bn[block[7]] if block[4] == "branch1_bn" else "_w")
    else:
        layer = f"branch2{block[5]}" + (f"_bn_{bn[block[7]]}" if block[6] else "_w")
    return f"{t}res{block[1]}_{block[3]}_{layer}"


LAST_BLOCK = {2: 0, 3: 0, 4: 0}  # the tiny model has one block per stage: the fusion follows block 0


def test_a_caffe2_checkpoint_loads_under_pyslowfast_names(tmp_path):
    """The released SLOWFAST_8x8_R50.pkl layout ({"blobs": {caffe2 name: ndarray}}, solver state included)."""
    import pickle

    from grounding.backbones.slowfast import SlowFast, SlowFastConfig, load_slowfast

    cfg = SlowFastConfig(**TINY_SLOWFAST)
    torch.manual_seed(0)
    model = SlowFast(cfg)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    blobs = {_caffe2_name(k): v.numpy() for k, v in state.items()}
    assert blobs["t_res3_0_branch2c_bn_subsample_w"].shape == tuple(state["s3_fuse.conv_f2s.weight"].shape)
    blobs |= {f"{k}_momentum": np.zeros(1) for k in list(blobs)[:3]} | {"lr": np.ones(1), "pred_w": np.zeros((400, 288))}
    with (tmp_path / "SLOWFAST_8x8_R50.pkl").open("wb") as fh:
        pickle.dump({"blobs": blobs}, fh)
    loaded = load_slowfast(tmp_path / "SLOWFAST_8x8_R50.pkl", cfg)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())
    with (tmp_path / "evil.pkl").open("wb") as fh:
        pickle.dump({"blobs": {"x": subprocess.Popen}}, fh)
    with pytest.raises(GroundingError, match=r"evil\.pkl.*subprocess\.Popen is not allowed"):
        load_slowfast(tmp_path / "evil.pkl", cfg)


@pytest.mark.parametrize("batch_size", [1, 16])
def test_the_tail_is_padded_as_hero_pads_it(tmp_path, batch_size):
    """A 2.5 s 30 fps video whose frame k is grey level k: clip 1 is second 2 then, as second 3 does not
    exist, second 2 again (HERO repeats the last second), each frame past the end being the last one."""
    from grounding.extract.recipes.encode import part_clips, probe
    from grounding.extract.synthetic import make_video

    path = make_video(tmp_path / "grey.mkv", 75, fps=30, size=(64, 48), frame_index_pattern=True)
    recipe = get_recipe("qvh_slowfast_clip")
    video = probe(path, recipe)
    clips = np.concatenate(list(part_clips(recipe.part("slowfast"), video, batch_size)))
    levels = clips[..., 0].reshape(*clips.shape[:2], -1).mean(-1).round().astype(int)  # (2, 32) source frames
    offsets = np.minimum(hero.slowfast_offsets(30.0), 59)
    assert levels[0].tolist() == offsets.tolist()
    assert levels[1].tolist() == [min(60 + o % 30, 74) for o in offsets]  # 60, 62, ..., then 60, 62, ... again
