"""Recipe ``charades_i3d``: VSLNet's windows and preprocessing on hand-computed cases, the I3D's shapes and
checkpoint layout on a tiny random model, and the sampling and preprocessing pinned on the real Charades
clip in ../shared (parity with the reference itself: tools/parity_charades_i3d.py, docs/features.md)."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from grounding.backbones.i3d import InceptionI3D, load_i3d, same_padding
from grounding.errors import GroundingError
from grounding.extract.recipes import charades_i3d as recipe
from grounding.extract.recipes import get_recipe
from grounding.extract.recipes.frames import ffmpeg_binary

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "videos" / "charades_sample.mp4"
TINY = 1 / 16  # 64-d features, same geometry


def tiny_i3d(seed: int = 0) -> InceptionI3D:
    """A tiny random I3D whose activations keep their scale (the default init fades them to ~1e-6)."""
    torch.manual_seed(seed)
    model = InceptionI3D(width=TINY)
    for module in model.modules():
        if isinstance(module, torch.nn.Conv3d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return model.eval()


@pytest.mark.parametrize(("frames", "starts"), [
    (25, [0, 0]),  # the shortest video: ceil(25 / 24) = 2 windows, both frames 0-23 (the final frame unused)
    (48, [0, 23]),  # the last window ends at frame 46, one before the end
    (50, [0, 24, 25]),
    (737, [*range(0, 696 + 1, 24), 712]),  # the Charades sample at 24 fps
])
def test_window_starts_follow_the_reference_loop(frames, starts):
    assert recipe.window_starts(frames).tolist() == starts


def test_a_video_shorter_than_one_window_is_a_clear_error():
    with pytest.raises(GroundingError, match=r"clip\.mp4 gives 24 frames .* at least 25 frames"):
        recipe.window_starts(24, "clip.mp4")


def test_feature_spans_are_the_pooled_halves_of_each_window():
    spans = recipe.feature_spans(50)  # windows at 0, 24, 25
    assert spans.shape == (6, 2)
    np.testing.assert_allclose(spans[:2], [[0, 16 / 24], [8 / 24, 1]])
    np.testing.assert_allclose(spans[-1], [(25 + 8) / 24, (25 + 24) / 24])


def test_source_frames_follow_the_fps_filter():
    # 10 fps source, 0.5 s long -> 12 frames at 24 fps; source frame i takes slot round(2.4 i) = 0, 2, 5, 7, 10
    picked = recipe.source_frames(np.arange(5) / 10, duration=0.5)
    assert picked.tolist() == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4]


def test_model_input_is_minus_one_to_one_channels_first():
    win = np.zeros((1, 24, 16, 32, 3), dtype=np.uint8)
    win[0, 5, 10, 20] = [255, 128, 0]
    x = recipe.model_input(win)
    assert x.shape == (1, 3, 24, 16, 32) and x.dtype == torch.float32
    assert x[0, :, 5, 10, 20].tolist() == [1.0, np.float32(128 / 255 * 2 - 1), -1.0]
    assert x[0, :, 0, 0, 0].tolist() == [-1.0, -1.0, -1.0]


def test_center_crop_rounds_half_to_even():
    img = np.arange(229 * 230).reshape(229, 230, 1)
    crop = recipe.center_crop(img)  # offsets round(2.5) = 2 and round(3.0) = 3
    assert crop.shape == (224, 224, 1) and crop[0, 0, 0] == img[2, 3, 0]


def test_upscale_short_side_matches_opencv_fixed_point_by_hand():
    img = np.zeros((2, 2, 3), dtype=np.uint8)
    img[:, 1] = 200  # columns 0 and 200 -> x2: 0, 50, 150, 200 (weights 2048, 1536/512, 512/1536, 2048)
    out = recipe.upscale_short_side(img, min_side=4)
    assert out.shape == (4, 4, 3)
    assert out[:, :, 0].tolist() == [[0, 50, 150, 200]] * 4
    assert recipe.upscale_short_side(out, min_side=4) is out  # short side reached: untouched
    assert recipe.upscale_short_side(np.zeros((180, 320, 3), np.uint8)).shape == (226, 402, 3)


def test_same_padding_is_tensorflow_same():
    assert same_padding((24, 224, 224), (7, 7, 7), (2, 2, 2)) == [2, 3, 2, 3, 2, 3]
    assert same_padding((12, 112, 112), (1, 3, 3), (1, 2, 2)) == [0, 1, 0, 1, 0, 0]
    assert same_padding((3, 7, 7), (3, 3, 3), (2, 2, 2)) == [1, 1, 1, 1, 1, 1]


def test_tiny_i3d_gives_one_feature_per_8_frames_less_one():
    model = tiny_i3d()
    with torch.no_grad():
        short = model(torch.rand(1, 3, 16, 224, 224) * 2 - 1)  # ceil(16 / 8) - 1 = 1 feature
    assert model.feature_dim == 64 and short.shape == (1, 1, 64) and torch.isfinite(short).all()
    with pytest.raises(ValueError, match="224x224"):
        model(torch.zeros(1, 3, 24, 112, 112))


def test_encode_frames_stacks_two_features_per_window_in_order():
    model = tiny_i3d()
    frames = np.repeat(np.arange(0, 260, 10, dtype=np.uint8), 224 * 224 * 3).reshape(26, 224, 224, 3)  # windows 0, 1
    feats = recipe.encode_frames(frames, model, batch_size=2)  # both windows in one batch
    with torch.no_grad():
        last = model(recipe.model_input(frames[None, 1:25]))[0].numpy()  # the second window alone
    assert feats.shape == (4, 64) and feats.dtype == np.float32
    np.testing.assert_allclose(feats[2:], last, rtol=1e-4, atol=1e-5)  # in order, no cross-talk in a batch
    assert not np.allclose(feats[:2], last, atol=1e-3)


def test_full_i3d_has_pytorch_i3d_key_layout():
    model = InceptionI3D()
    weights = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(weights) == 57 * 5  # 57 conv units: conv weight + 4 BatchNorm tensors (logits dropped)
    assert weights["Conv3d_1a_7x7.conv3d.weight"] == (64, 3, 7, 7, 7)
    assert weights["Mixed_4b.b2b.conv3d.weight"] == (48, 16, 3, 3, 3)
    assert weights["Mixed_5c.b3b.bn.running_var"] == (128,)
    assert model.feature_dim == 1024


def _tiny_checkpoint(path: Path, **extra: torch.Tensor) -> InceptionI3D:
    model = tiny_i3d(1)
    state = {f"module.{k}": v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({**state, "module.logits.conv3d.weight": torch.zeros(157, 64, 1, 1, 1), **extra}, path)
    return model


def test_load_i3d_round_trips_a_pytorch_i3d_checkpoint(tmp_path):
    model = _tiny_checkpoint(tmp_path / "rgb_charades.pt")
    loaded = load_i3d(tmp_path / "rgb_charades.pt")  # width read from the stem: 4 filters = 1/16
    for key, value in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(loaded.state_dict()[key], value), key
    assert not loaded.training


@pytest.mark.parametrize(("state", "match"), [
    ({"s1.pathway0_stem.conv.weight": torch.zeros(1)}, r"other\.pt holds the weights of a SlowFast .*not InceptionV1-I3D"),
    ({"conv1a.weight": torch.zeros(1)}, r"holds the weights of C3D, not InceptionV1-I3D"),
    ({"Conv3d_1a_7x7.conv3d.weight": torch.zeros(64, 2, 7, 7, 7)}, r"flow \(2-channel\) I3D"),
    ({"Conv3d_1a_7x7.conv3d.weight": torch.zeros(64, 3, 7, 7, 7)}, r"does not match InceptionV1-I3D .*missing: "),
])
def test_weights_of_another_network_are_named(tmp_path, state, match):
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(GroundingError, match=match):
        load_i3d(tmp_path / "other.pt")


def test_the_slowfast_checkpoint_of_the_other_recipe_is_named(tmp_path):
    from grounding.backbones.slowfast import SlowFastConfig, save_random_slowfast

    path = save_random_slowfast(tmp_path / "SLOWFAST_8x8_R50.pyth", SlowFastConfig(width=8, blocks=(1, 1, 1, 1)))
    with pytest.raises(GroundingError, match=r"SLOWFAST_8x8_R50\.pyth holds the weights of a SlowFast .* not InceptionV1-I3D"):
        get_recipe("charades_i3d").parts[0].load(path)


def test_not_a_weights_file_is_a_clear_error(tmp_path):
    (tmp_path / "rgb_imagenet.pt").write_text("not a checkpoint")
    with pytest.raises(GroundingError, match=r"rgb_imagenet\.pt is not a PyTorch weights file"):
        load_i3d(tmp_path / "rgb_imagenet.pt")
    with pytest.raises(GroundingError, match="neither rgb_charades.pt nor rgb_imagenet.pt"):
        recipe.load_model((tmp_path / "empty").mkdir() or tmp_path / "empty")


@pytest.mark.slow
def test_recipe_run_writes_the_charades_layout(tmp_path):
    from grounding.cli.extract_features import main
    from grounding.data.manifest import read_manifest
    from grounding.data.provenance import manifest_provenance
    from grounding.extract.synthetic import make_video

    make_video(tmp_path / "videos" / "v.mp4", num_frames=48, fps=24, size=(64, 48))  # upscaled to 301x226
    _tiny_checkpoint(tmp_path / "rgb_charades.pt")
    assert main(["--videos", str(tmp_path / "videos"), "--out", str(tmp_path / "out"), "--recipe", "charades_i3d",
                 "--weights", str(tmp_path / "rgb_charades.pt"), "--batch-size", "3"]) == 0
    feats = np.load(tmp_path / "out" / "i3d_features" / "v.npy")  # the folder configs/features/i3d_npy.yaml reads
    assert feats.shape == (4, 64) and feats.dtype == np.float32  # 48 frames: windows at 0, 23
    assert np.isfinite(feats).all() and not np.allclose(feats[:2], feats[2:])
    record = read_manifest(tmp_path / "out" / "i3d_features")["v"]
    assert record["recipe"] == "charades_i3d" and record["weights_file"] == "rgb_charades.pt"
    made = manifest_provenance(tmp_path / "out" / "i3d_features")  # what a checkpoint trained on them records
    assert made["recipe"] == "charades_i3d" and made["clip_len"] == 0.5


def test_a_short_video_fails_with_the_recipe_error(tmp_path):
    from grounding.extract.synthetic import make_video

    video = make_video(tmp_path / "short.mp4", num_frames=24, fps=24)
    with pytest.raises(GroundingError, match=r"short\.mp4 gives 24 frames at 24 fps \(1\.00 s\).*at least 25"):
        get_recipe("charades_i3d").parts[0].encode_video(tiny_i3d(), video, torch.device("cpu"), 4)


# --- pinned on the real clip (480x270, 14.985 fps, 30.70 s) -------------------------------------------------

needs_sample = pytest.mark.skipif(not SAMPLE.is_file(), reason=f"{SAMPLE} is not here (the shared folder is absent)")


@pytest.fixture(scope="module")
def sample_frames():
    return recipe.read_frames(SAMPLE)


@needs_sample
@pytest.mark.slow
def test_sample_frames_are_the_fps_filter_picks_cropped(sample_frames):
    decord = pytest.importorskip("decord")
    reader = decord.VideoReader(str(SAMPLE), num_threads=1)
    stamps = reader.get_frame_timestamp(list(range(len(reader))))
    picked = recipe.source_frames(stamps[:, 0], duration=float(stamps[-1, 1]))
    assert len(sample_frames) == len(picked) == 737 and sample_frames.shape[1:] == (224, 224, 3)
    every = np.s_[::4, ::4]  # a 56x56 grid of the crop is plenty to tell frames apart, and 16x cheaper
    source = np.stack([recipe.center_crop(f)[every] for f in reader.get_batch(list(range(len(reader)))).asnumpy()])
    source, ours = source.astype(np.int16), sample_frames[(slice(None), *every)]
    # each decoded frame is (up to JPEG loss) the picked source frame, centre-cropped at rows 23, columns 128;
    # checked where that frame differs from its neighbours by more than the JPEG loss (~4 levels)
    checked = 0
    for n, i in enumerate(picked):
        cost = {j: np.abs(source[j] - ours[n]).mean() for j in (i - 1, i, i + 1) if 0 <= j < len(source)}
        if all(np.abs(source[j] - source[i]).mean() > 2 for j in cost if j != i):
            assert min(cost, key=cost.get) == i, (n, i, cost)
            checked += 1
    assert checked > 350  # of 737


@needs_sample
@pytest.mark.slow
def test_sample_windows_and_inputs_are_pinned(sample_frames, tmp_path):
    starts = recipe.window_starts(len(sample_frames), SAMPLE)
    assert len(starts) == 31 and starts[-1] == 712
    x = recipe.model_input(np.stack([sample_frames[s : s + recipe.WINDOW] for s in starts[[0, -1]]]))
    assert x.shape == (2, 3, 24, 224, 224) and -1 <= x.min() and x.max() <= 1
    # per-channel (RGB) means of the first and last window: catch a channel swap, another normalisation or
    # another frame rate (tolerance 0.005 = 0.6 grey level, for another ffmpeg's JPEG encoder)
    np.testing.assert_allclose(x.mean(dim=(2, 3, 4)).numpy(), PINNED_MEANS, atol=5e-3)
    # no resize at 480x270 (short side >= 226): the crop is rows 23-246, columns 128-351 of the decoded JPEG
    subprocess.run([ffmpeg_binary(), "-nostdin", "-loglevel", "error", "-i", str(SAMPLE), "-filter:v", "fps=fps=24",
                    "-frames:v", "1", str(tmp_path / "first.jpg")], check=True)
    full = np.asarray(Image.open(tmp_path / "first.jpg").convert("RGB"))
    assert full.shape == (270, 480, 3) and np.array_equal(sample_frames[0], full[23:247, 128:352])


PINNED_MEANS = [[0.0962, -0.0375, -0.0523], [-0.0265, -0.1029, -0.1158]]


def test_parity_tool_skips_without_the_reference_code(tmp_path, capsys):
    from grounding.cli.parity_charades_i3d import main

    assert main(["--vslnet", str(tmp_path / "absent"), "--video", str(tmp_path / "v.mp4")]) == 0
    assert capsys.readouterr().out.startswith("skip: no VSLNet copy at")
