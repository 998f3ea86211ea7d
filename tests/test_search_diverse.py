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
