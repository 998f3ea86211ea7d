"""Feature recipes: the qvh_slowfast_clip sampling and preprocessing pinned on the real Charades clip, the
SlowFast weight layout, bad input, and the end-to-end flow (recipe features with tiny random weights ->
a QVHighlights-layout training -> tools/ground.py re-making the same features from the raw clip)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

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


@pytest.mark.parametrize("fps, count", [("30", 90), ("0.5", 15)])
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
