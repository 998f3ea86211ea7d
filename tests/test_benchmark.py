"""The benchmark harness: what it times, how it summarises, and that its shapes are the configs' own.

No wall-clock value is asserted except a lower bound that ``time.sleep`` guarantees.
"""

import time

import pytest
import torch

from grounding.bench import harness as bench
from grounding.bench.harness import SHAPES, summarise, timed
from grounding.config import load_config, packaged_config


def test_timed_times_each_repeat_with_its_sync_and_skips_the_warmup(monkeypatch):
    clock = {"now": 100.0}
    monkeypatch.setattr(time, "perf_counter", lambda: clock["now"])
    steps = iter([50.0, 0.1, 0.2, 0.3])  # the first call is the warm-up
    calls = []

    def fn():
        clock["now"] += next(steps)
        calls.append("fn")

    def sync():  # pending device work: it must be inside each timed interval
        clock["now"] += 0.01
        calls.append("sync")

    times = timed(fn, warmup=1, repeats=3, sync=sync)
    assert times == pytest.approx([0.11, 0.21, 0.31])
    assert calls == ["fn", "sync", "fn", "sync", "fn", "sync", "fn", "sync"]


def test_timed_measures_at_least_a_known_sleep():
    times = timed(lambda: time.sleep(0.02), warmup=0, repeats=3, sync=lambda: None)
    assert len(times) == 3 and min(times) >= 0.02


def test_summarise_reports_median_min_and_max():
    assert summarise([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0}
    assert summarise([4.0, 1.0, 3.0, 2.0])["median"] == 2.5


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.name)
def test_each_benchmark_shape_is_its_config(shape):
    """A shape that drifts from its config would time another model than the one trained."""
    cfg = load_config(packaged_config(shape.config))
    assert cfg.model.video_dim == shape.video_dim
    assert shape.clips == (cfg.data.get("num_clips") or cfg.data.get("max_clips"))
    assert 0 < shape.words <= cfg.data.get("max_words", 30)




def test_harness_reports_each_section_on_a_small_shape():
    shape = bench.Shape("tiny", "charades_sta.yaml", video_dim=16, clips=8, words=5)
    cpu = torch.device("cpu")
    train = bench.bench_training(shape, "ccman", cpu, batch=2, steps=1, repeats=2)
    assert train["queries_per_s"]["min"] <= train["queries_per_s"]["median"] <= train["queries_per_s"]["max"]
    infer = bench.bench_inference(shape, "span_baseline", cpu, batch=4, repeats=1)
    assert infer["latency_ms"]["median"] > 0 and infer["queries_per_s"]["median"] > 0
    data = bench.bench_data_pipeline(shape, num_videos=3, queries_per_video=2, batch=2)
    assert data["cold_queries_per_s"] > 0 and data["warm_queries_per_s"] > 0
    assert bench.bench_metrics(num_queries=100, repeats=1)["queries"] == 100


def test_table_renders_every_measured_row():
    from grounding.cli.benchmark import table

    results = {"shapes": {"charades_sta": {
        "ccman": {"train": {"queries_per_s": {"median": 100, "min": 90, "max": 110}},
                  "infer": {"queries_per_s": {"median": 900}, "latency_ms": {"median": 2.5}}},
        "data": {"cold_queries_per_s": 500, "warm_queries_per_s": 5000}}},
        "metrics": {"queries": 20000, "seconds": {"median": 0.01}}}
    text = table(results)
    assert "| charades_sta | ccman | 100 (90..110) | 900 | 2.5 | 500 / 5000 |" in text
    assert "20000 queries: 10.0 ms" in text


def test_compare_speed_alternates_two_checkouts_in_one_process(tmp_path):
    from pathlib import Path

    import pytest

    import grounding
    from grounding.bench.compare import compare, load_version
    from grounding.errors import GroundingError

    repo = Path(__file__).resolve().parents[1]
    versions = {"a": load_version(repo, "charades_sta", "span_baseline", fused=False),
                "b": load_version(repo, "charades_sta", "span_baseline", fused=True)}
    assert __import__("grounding") is grounding  # the caller's package is restored after each import
    results = compare(versions, rounds=1, threads=1)
    for name in ("a", "b"):
        assert results[name]["latency_ms"]["best"] <= results[name]["latency_ms"]["median"]
        assert results[name]["train_queries_per_s"]["median"] > 0
    with pytest.raises(GroundingError, match="not a checkout"):
        load_version(tmp_path, "charades_sta", "ccman", fused=True)
