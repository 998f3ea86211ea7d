"""Diverse library results: at most ``max_per_video`` moments of one video in a query's top K."""

import pytest

from grounding.errors import GroundingError
from grounding.search.searcher import SearchSettings, limit_per_video


def test_the_limit_keeps_the_order_and_fills_the_top_k_from_further_down():
    moments = [["a", 0, 1, 0.9], ["a", 2, 3, 0.8], ["a", 4, 5, 0.7], ["b", 0, 1, 0.6], ["a", 6, 7, 0.5],
               ["c", 0, 1, 0.4], ["b", 2, 3, 0.3]]
    vid = lambda m: m[0]  # noqa: E731
    assert limit_per_video(moments, vid, 0, 3) == moments[:3]  # 0: no limit
    assert [m[0] for m in limit_per_video(moments, vid, 1, 3)] == ["a", "b", "c"]
    assert limit_per_video(moments, vid, 2, 4) == [moments[0], moments[1], moments[3], moments[5]]
    assert len(limit_per_video(moments, vid, 1, 10)) == 3  # fewer videos than the top K: what there is


def test_the_setting_has_a_default_and_is_checked():
    assert SearchSettings().max_per_video == SearchSettings.from_config({}).max_per_video == 1
    assert SearchSettings.from_config({"max_per_video": 0}).max_per_video == 0
    with pytest.raises(GroundingError, match="max_per_video"):
        SearchSettings.from_config({"max_per_video": -1})


def test_the_config_key_and_the_option_exist():
    from grounding.cli.search import parse_args
    from grounding.config import load_config
    from tests.conftest import REPO

    assert load_config(REPO / "configs/synthetic.yaml", []).search.max_per_video == SearchSettings().max_per_video
    args = parse_args(["--index", "i", "--query", "q", "--max-per-video", "1"])
    assert args.max_per_video == 1 and parse_args(["--index", "i", "--query", "q"]).max_per_video is None


@pytest.mark.parametrize("per_video, top_k", [(0, 40), (1, 10), (2, 25), (1, 1000)])
def test_one_pass_nms_per_video_equals_nms_over_everything_then_the_limit(per_video, top_k):
    """``nms_per_video`` against the batched NMS it replaced (spans of each video shifted past the previous
    video's, so that only windows of one video can overlap), on random entries with ties and overlaps."""
    import numpy as np
    import torch

    from grounding.models.decoding import batched_nms
    from grounding.search.searcher import nms_per_video

    rng = np.random.default_rng(per_video + top_k)
    videos = rng.integers(0, 12, 300)
    start = rng.integers(0, 28, 300).astype(np.float64)
    spans = np.stack([start, start + rng.integers(1, 9, 300)], 1)
    scores = np.round(rng.random(300), 2)  # ties: the stable order decides
    got = nms_per_video(spans, videos, scores, 0.5, per_video, top_k)
    order = np.argsort(-scores, kind="stable")
    shifted = torch.from_numpy(spans + videos[:, None] * 100.0)[order][None]
    keep = batched_nms(shifted, torch.ones(1, len(order), dtype=torch.float64), 0.5)[0].numpy()
    assert got == limit_per_video(order[keep].tolist(), lambda i: int(videos[i]), per_video, top_k)
    assert len(got) == min(top_k, len(got)) and got  # something kept, never past top_k
