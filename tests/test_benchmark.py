"""Smoke test of the benchmark harness: it runs and reports the fields the docs table reads (no timings asserted)."""

import torch

from grounding.bench import harness as bench


def test_harness_measures_each_section_on_a_small_shape():
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
