"""Decoding real (generated) videos, preprocessing frames, and listing/naming/sharding inputs."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("decord")
pytest.importorskip("imageio_ffmpeg")

from grounding.backbones.transforms import FramePreprocess  # noqa: E402
from grounding.errors import GroundingError  # noqa: E402
from grounding.extract import synthetic  # noqa: E402
from grounding.extract.inputs import list_videos, parse_shard, take_shard  # noqa: E402
from grounding.extract.sampling import ClipSampling, frame_indices  # noqa: E402
from grounding.extract.video_io import VideoReader, VideoReadError  # noqa: E402
from tests import fakes  # noqa: E402

CONTAINERS = [  # (name, frames, fps, codec)
    ("h264.mp4", 100, "30000/1001", "libx264"),
    ("vp9.webm", 80, "25", "libvpx-vp9"),
    ("mjpeg.avi", 50, "12", "mjpeg"),
    ("mpeg4.mkv", 60, "24000/1001", "mpeg4"),
    ("h264.mov", 45, "30", "libx264"),
]


def _as_float(rate: str) -> float:
    num, _, den = rate.partition("/")
    return float(num) / float(den or 1)


def _identity(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames)


@pytest.mark.parametrize(("name", "num_frames", "fps", "codec"), CONTAINERS)
def test_reads_frame_count_rate_and_frames_of_each_container(tmp_path, name, num_frames, fps, codec):
    if not synthetic.has_encoder(codec):
        pytest.skip(f"this ffmpeg has no {codec} encoder")
    path = synthetic.make_video(tmp_path / name, num_frames, fps, codec=codec)
    reader = VideoReader(path)
    assert reader.info.num_frames == num_frames
    assert reader.info.fps == pytest.approx(_as_float(fps), rel=1e-4)
    frames = reader.read(np.array([0, 3, num_frames - 1]), _identity, chunk=2)
    assert frames.shape == (3, 48, 64, 3) and frames.dtype == torch.uint8


def test_sampled_indices_decode_to_exactly_those_frames_at_29_97(tmp_path):
    # frame k is a grey of level k: the decoded pixels say which frame decord returned
    path = synthetic.make_video(tmp_path / "index.mkv", 200, "30000/1001", size=(32, 32), frame_index_pattern=True)
    reader = VideoReader(path)
    idx = frame_indices(reader.info.num_frames, reader.info.fps, ClipSampling(1.0, 3))
    assert idx.shape == (7, 3)
    distinct = np.unique(idx)
    frames = reader.read(distinct, _identity, chunk=5)
    assert frames[:, 16, 16, 0].tolist() == distinct.tolist()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: fakes.make_corrupt_video(p), "not a readable video"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: None, "no such file"),
    ],
)
def test_unreadable_files_raise_with_path_and_reason(tmp_path, make, reason):
    path = tmp_path / "broken.mp4"
    make(path)
    with pytest.raises(VideoReadError, match=reason) as info:
        VideoReader(path).read(np.array([0]), _identity)
    assert info.value.path == path and reason in info.value.reason


def test_truncated_video_fails_cleanly(tmp_path):
    full = synthetic.make_video(tmp_path / "full.mp4", 250, 25, size=(320, 240))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    with pytest.raises(VideoReadError):
        reader = VideoReader(cut)
        reader.read(np.arange(0, reader.info.num_frames, 10), _identity)


def test_preprocess_resizes_short_side_then_centre_crops():
    prep = FramePreprocess(224, (224, 224), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    landscape = np.zeros((4, 270, 480, 3), np.uint8)
    landscape[:, :, 240:] = 255  # right half white: the crop keeps the centre
    out = prep.resize_crop(landscape)
    assert out.shape == (4, 3, 224, 224) and out.dtype == torch.uint8
    assert out[0, :, :, :100].max() == 0 and out[0, :, :, 124:].min() == 255
    assert prep.resize_crop(np.zeros((1, 640, 360, 3), np.uint8)).shape == (1, 3, 224, 224)  # portrait
    assert prep.resize_crop(np.zeros((1, 48, 64, 3), np.uint8)).shape == (1, 3, 224, 224)  # upscaled
    exact = FramePreprocess((32, 48), None, (0, 0, 0), (1, 1, 1))
    assert exact.resize_crop(np.zeros((2, 100, 60, 3), np.uint8)).shape == (2, 3, 32, 48)


def test_normalize_uses_mean_and_std():
    prep = FramePreprocess(8, (8, 8), (0.5, 0.25, 0.0), (0.5, 0.25, 1.0))
    frames = torch.full((2, 3, 8, 8), 255, dtype=torch.uint8)
    out = prep.normalize(frames)
    assert out.dtype == torch.float32
    assert out[:, 0].unique().tolist() == [1.0] and out[:, 1].unique().tolist() == [3.0] and out[:, 2].unique().tolist() == [1.0]
    assert prep.normalize(frames, torch.float16).dtype == torch.float16


def test_preprocess_settings_come_from_the_model_folder(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps({"size": {"shortest_edge": 40}, "crop_size": {"height": 32, "width": 32},
                    "image_mean": [0.1, 0.2, 0.3], "image_std": [1, 2, 3]})
    )
    prep = FramePreprocess.from_model_dir(tmp_path, image_size=224)
    assert prep == FramePreprocess(40, (32, 32), (0.1, 0.2, 0.3), (1.0, 2.0, 3.0))
    assert FramePreprocess.from_model_dir(tmp_path / "none", 64).crop == (64, 64)  # no processor config: defaults


# ---- inputs: listing, naming, sharding -------------------------------------------------------------


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folder_listing_is_recursive_and_case_insensitive(tmp_path):
    for name in ["a.mp4", "sub/b.MKV", "sub/deep/c.webm", "d.avi", "e.mov", "notes.txt", "f.jpg"]:
        _touch(tmp_path / name)
    jobs = list_videos(tmp_path)
    assert [j.vid for j in jobs] == ["a", "b", "c", "d", "e"]
    assert jobs[1].path == tmp_path / "sub/b.MKV"


def test_list_file_paths_are_relative_to_the_list(tmp_path):
    _touch(tmp_path / "videos/x.mp4")
    listing = tmp_path / "lists/videos.txt"
    listing.parent.mkdir()
    listing.write_text(f"# my videos\n../videos/x.mp4\n\n{tmp_path / 'elsewhere/y.mkv'}\n")
    jobs = list_videos(listing)
    assert [(j.vid, j.path) for j in jobs] == [("x", tmp_path / "lists/../videos/x.mp4"), ("y", tmp_path / "elsewhere/y.mkv")]


def test_id_map_names_videos_and_must_cover_them(tmp_path):
    _touch(tmp_path / "v/clip 1.mp4")
    _touch(tmp_path / "v/clip 2.mp4")
    id_map = tmp_path / "ids.csv"
    id_map.write_text("path,vid\nv/clip 1.mp4,AB12C\n" + f"{tmp_path / 'v/clip 2.mp4'},XY34Z\n")
    assert [j.vid for j in list_videos(tmp_path / "v", id_map)] == ["AB12C", "XY34Z"]
    id_map.write_text("path,vid\nv/clip 1.mp4,AB12C\n")
    with pytest.raises(GroundingError, match="no row in the id map"):
        list_videos(tmp_path / "v", id_map)
    id_map.write_text("file,name\n")
    with pytest.raises(GroundingError, match="columns 'path' and 'vid'"):
        list_videos(tmp_path / "v", id_map)


def test_duplicate_ids_name_both_files_and_the_fix(tmp_path):
    _touch(tmp_path / "a/x.mp4")
    _touch(tmp_path / "b/x.mkv")
    with pytest.raises(GroundingError, match="--id-map") as info:
        list_videos(tmp_path)
    assert "a/x.mp4" in str(info.value) and "b/x.mkv" in str(info.value)


def test_missing_or_empty_inputs_are_user_errors(tmp_path):
    with pytest.raises(GroundingError, match="does not exist"):
        list_videos(tmp_path / "nope")
    with pytest.raises(GroundingError, match="lists no videos"):
        list_videos(tmp_path)


def test_shards_partition_the_list():
    items = list(range(23))
    shards = [take_shard(items, i, 4) for i in range(4)]
    assert sorted(sum(shards, [])) == items
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_parse_shard():
    assert parse_shard("1/4", env={}) == (1, 4)
    assert parse_shard(None, env={}) == (0, 1)
    assert parse_shard(None, env={"RANK": "2", "WORLD_SIZE": "3"}) == (2, 3)  # torchrun
    for bad in ["4/4", "-1/2", "1", "a/b", "0/0"]:
        with pytest.raises(GroundingError, match="--shard"):
            parse_shard(bad, env={})
