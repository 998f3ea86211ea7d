"""Clip counts and frame indices (pure functions), including odd frame rates."""

from fractions import Fraction
from math import floor

import numpy as np
import pytest

from grounding.errors import GroundingError
from grounding.extract.sampling import ClipSampling, count_clips, frame_indices

NTSC = 30000 / 1001  # 29.97
FILM = 24000 / 1001  # 23.976


@pytest.mark.parametrize(
    ("duration", "clip_len", "ceil", "floor_", "round_"),
    [
        (30.0, 1.0, 30, 30, 30),  # exact multiple: no extra empty clip
        (30.697, 1.0, 31, 30, 31),  # the Charades sample (460 frames at 14.985 fps)
        (150.0, 2.0, 75, 75, 75),  # a full QVHighlights video
        (149.9, 2.0, 75, 74, 75),
        (3.0, 2.0, 2, 1, 2),  # 1.5 clips: round half up
        (0.4, 2.0, 1, 1, 1),  # shorter than a clip: still one clip
        (899 / NTSC, 1.0, 30, 29, 30),  # 29.9966 s
        (900 / NTSC, 1.0, 31, 30, 30),  # 30.03 s: a 0.03 s tail is a clip under ceil
    ],
)
def test_clip_count_rules(duration, clip_len, ceil, floor_, round_):
    assert count_clips(duration, clip_len, "ceil") == ceil
    assert count_clips(duration, clip_len, "floor") == floor_
    assert count_clips(duration, clip_len, "round") == round_


def test_clip_count_absorbs_float_error():
    # 450 frames at 15 fps and 720 at 24 are 30 s; float division must not make a 31st clip
    assert count_clips(450 / 15.0, 1.0) == 30
    assert count_clips(720 / 24.0, 0.1) == 300
    assert count_clips(1800 / NTSC * (1 + 1e-12), 1800 / NTSC) == 1


def test_frame_indices_match_exact_rational_maths_at_29_97_for_an_hour():
    num_frames = int(3600 * NTSC)  # one hour
    idx = frame_indices(num_frames, NTSC, ClipSampling(1.0))
    assert idx.shape == (3600, 1)
    fps = Fraction(30000, 1001)
    expected = [floor((i + Fraction(1, 2)) * fps) for i in range(3600)]  # the frame shown at each clip's middle
    assert idx[:, 0].tolist() == expected
    # treating 29.97 as 30 would be 108 frames off by the end of the hour
    assert floor(3599.5 * 30) - expected[-1] == 108


@pytest.mark.parametrize("fps", [NTSC, FILM, 14.985014985014985, 25.0, 12.0, 59.94])
@pytest.mark.parametrize("frames_per_clip", [1, 3, 16])
def test_every_sampled_frame_is_shown_inside_its_clip(fps, frames_per_clip):
    num_frames = 1234
    sampling = ClipSampling(2.0, frames_per_clip)
    idx = frame_indices(num_frames, fps, sampling)
    duration = num_frames / fps
    assert idx.shape == (count_clips(duration, 2.0), frames_per_clip)
    assert idx.dtype == np.int64 and idx.min() >= 0 and idx.max() <= num_frames - 1
    assert (np.diff(idx.ravel()) >= 0).all()  # in time order
    shown_from, shown_to = idx / fps, (idx + 1) / fps
    starts = np.arange(idx.shape[0])[:, None] * 2.0
    ends = np.minimum(starts + 2.0, duration)
    assert ((shown_to > starts) & (shown_from < ends)).all()  # each frame is on screen during its clip


def test_partial_last_clip_samples_within_the_video():
    idx = frame_indices(100, NTSC, ClipSampling(1.0, 2))  # 3.3367 s: clips [0,1) [1,2) [2,3) [3,3.337)
    assert idx.shape == (4, 2)
    # last clip: 0.3367 s split in two, midpoints 3.0834 and 3.2517 s
    assert idx[3].tolist() == [floor(3.0834 * NTSC), floor(3.2517 * NTSC)] == [92, 97]


def test_video_shorter_than_one_clip():
    assert frame_indices(10, 30.0, ClipSampling(2.0)).tolist() == [[5]]  # middle of 0.333 s
    assert frame_indices(1, 30.0, ClipSampling(2.0, 4)).tolist() == [[0, 0, 0, 0]]


def test_floor_rule_drops_the_partial_tail():
    idx = frame_indices(100, NTSC, ClipSampling(1.0, 1, "floor"))
    assert idx[:, 0].tolist() == [14, 44, 74]


def test_clip_len_from_a_clip_rate():
    idx = frame_indices(90, 30.0, ClipSampling(1 / 3))  # 3 clips/s of a 3 s video
    assert idx.shape == (9, 1) and idx[:, 0].tolist() == [5, 15, 25, 35, 45, 55, 65, 75, 85]


def test_bad_settings_are_user_errors():
    with pytest.raises(GroundingError, match="--clip-len"):
        ClipSampling(0.0)
    with pytest.raises(GroundingError, match="--frames-per-clip"):
        ClipSampling(1.0, 0)
    with pytest.raises(GroundingError, match="ceil"):
        ClipSampling(1.0, 1, "nearest")
    with pytest.raises(ValueError):
        frame_indices(0, 30.0, ClipSampling(1.0))
    with pytest.raises(ValueError):
        count_clips(0.0, 1.0)
