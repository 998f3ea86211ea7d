"""The timer every benchmark uses (``grounding.timing``) and the harness: what it times, how it
summarises, what memory it reports, and that its shapes are the configs' own.

No wall-clock value is asserted except a lower bound that ``time.sleep`` guarantees.
"""

import sys
import time

import numpy as np
import pytest
import torch

from grounding.bench import harness as bench
from grounding.bench.harness import SHAPES
from grounding.config import load_config, packaged_config
from grounding.timing import PeakMemory, Stopwatch, in_ms, percentile, summarise, time_calls


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

    times = time_calls(fn, repeats=3, warmup=1, sync=sync)
    assert times == pytest.approx([0.11, 0.21, 0.31])
    assert calls == ["fn", "sync", "fn", "sync", "fn", "sync", "fn", "sync"]


def test_timed_measures_at_least_a_known_sleep():
    times = time_calls(lambda: time.sleep(0.02), repeats=3, warmup=0)
    assert len(times) == 3 and min(times) >= 0.02


def test_stopwatch_syncs_before_and_after_the_block(monkeypatch):
    clock = {"now": 0.0}
    monkeypatch.setattr(time, "perf_counter", lambda: clock["now"])

    def sync():
        clock["now"] += 1.0

    with Stopwatch(sync) as watch:
        clock["now"] += 0.5
    assert watch.seconds == pytest.approx(1.5)  # the work and the wait for it, not the work queued before


def test_summarise_reports_median_min_max_and_mean_and_in_ms_converts():
    assert summarise([3.0, 1.0, 2.0, 10.0]) == {"median": 2.5, "min": 1.0, "max": 10.0, "mean": 4.0}
    assert in_ms([0.001, 0.003, 0.002]) == pytest.approx({"median": 2.0, "min": 1.0, "max": 3.0, "mean": 2.0})
    assert percentile(list(range(101)), 0.95) == 95 and percentile([7.0], 0.95) == 7.0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a per-section peak needs Linux's clear_refs")
def test_peak_memory_on_the_cpu_is_each_sections_own():
    """The process's peak only grows; each section must still see its own, or a small section after a
    big one would report the big one's peak."""
    with PeakMemory("cpu") as big:
        block = np.ones(64 * 2**20 // 8)  # 64 MB, every page touched
        del block
    with PeakMemory("cpu") as small:
        pass
    assert big.scope == small.scope == "section" and big.kind == "resident set"
    assert big.added_mb >= 60
    assert small.added_mb < 16 and small.peak_mb < big.peak_mb
    report = big.report()
    assert report["memory_added_mb"] >= 60 and report["peak_memory_mb"] == round(big.peak_mb, 1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a per-section peak needs Linux's clear_refs")
def test_peak_memory_counts_a_section_that_reuses_what_an_earlier_one_freed():
    """Freed heap memory stays resident; reused, it would not grow the resident set, and a section
    allocating as much as the one before it would report nothing added."""
    kept = []

    def allocate():
        chunks = []
        for _ in range(200):  # 80 MB in 400 KB pieces from the C heap, each followed by a small survivor
            chunks.append(torch.ones(100_000))
            kept.append(np.ones(64))  # which pins the heap: the free pieces are holes, not its top
        del chunks

    block = torch.ones(2**20)  # a freed 4 MB block raises glibc's mmap threshold: 400 KB pieces come from the heap
    del block
    allocate()
    with PeakMemory("cpu") as again:
        allocate()
    assert again.added_mb >= 60


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.name)
def test_each_benchmark_shape_is_its_config(shape):
    """A shape that drifts from its config would time another model than the one trained."""
    cfg = load_config(packaged_config(shape.config))
    assert cfg.model.video_dim == shape.video_dim
    assert shape.clips == (cfg.data.get("num_clips") or cfg.data.get("max_clips"))
    assert 0 < shape.words <= cfg.data.get("max_words", 30)




def test_harness_reports_each_section_on_a_small_shape(monkeypatch):

    shape = bench.Shape("tiny", "charades_sta.yaml", video_dim=16, clips=8, words=5)
    cpu = torch.device("cpu")
    train = bench.bench_training(shape, "ccman", cpu, batch=2, steps=1, repeats=2)
    assert train["queries_per_s"]["median"] > 0 and train["batch"] == 2
    # a resident set in MB (not KiB or bytes): above an empty interpreter, far below this machine's memory
    assert 50 < train["peak_memory_mb"] < 100_000 and train["memory_kind"] == "resident set"
    infer = bench.bench_inference(shape, "span_baseline", cpu, batch=4, repeats=1)
    assert infer["latency_ms"]["median"] > 0 and infer["queries_per_s"]["median"] > 0
    for name in ("moment_detr", "qd_detr"):
        assert bench.bench_training(shape, name, cpu, batch=2, steps=1, repeats=1)["queries_per_s"]["median"] > 0
        assert bench.bench_inference(shape, name, cpu, batch=4, repeats=1)["queries_per_s"]["median"] > 0
    data = bench.bench_data_pipeline(shape, num_videos=3, queries_per_video=2, batch=2)
    assert data["cold_queries_per_s"] > 0 and data["warm_queries_per_s"] > 0 and data["peak_memory_mb"] > 50
    metrics = bench.bench_metrics(num_queries=100, repeats=1)
    assert metrics["queries"] == 100 and metrics["ms"]["median"] > 0


def test_table_renders_every_measured_row():
    from grounding.cli.benchmark import table

    memory = {"memory_kind": "resident set", "memory_scope": "section"}
    results = {"shapes": {"charades_sta": {
        "ccman": {"train": {"queries_per_s": {"median": 100, "min": 90, "max": 110}, "peak_memory_mb": 812.4,
                            "memory_added_mb": 301.0, **memory},
                  "infer": {"queries_per_s": {"median": 900}, "latency_ms": {"median": 2.5}}},
        "data": {"cold_queries_per_s": 500, "warm_queries_per_s": 5000, "peak_memory_mb": 640.0,
                 "memory_added_mb": None}}},
        "metrics": {"queries": 20000, "ms": {"median": 10.0}}}
    text = table(results)
    assert "| charades_sta | ccman | 100 (90..110) | 900 | 2.5 | 500 / 5000 | 812 (+301) / - / 640 |" in text
    assert "20000 queries: 10.0 ms" in text
    assert "peak resident set in MB during each section (its own peak)" in text


def test_compare_speed_alternates_two_checkouts_in_one_process(tmp_path, monkeypatch):
    from pathlib import Path

    import grounding
    from grounding.bench.compare import compare, load_version
    from grounding.errors import GroundingError

    repo = Path(__file__).resolve().parents[1]
    versions = {"a": load_version(repo, "charades_sta", "span_baseline", fused=False),
                "b": load_version(repo, "charades_sta", "span_baseline", fused=True)}
    assert __import__("grounding") is grounding  # the caller's package is restored after each import
    results = compare(versions, rounds=1, threads=1)
    assert set(results) == {"a", "b"}
    for name in ("a", "b"):
        assert results[name]["latency_ms"]["best"] > 0 and results[name]["train_queries_per_s"]["median"] > 0
    with pytest.raises(GroundingError, match="not a checkout"):
        load_version(tmp_path, "charades_sta", "ccman", fused=True)


def test_table_has_a_compiled_training_column_when_both_modes_ran():
    from grounding.cli.benchmark import table

    rate = lambda q: {"queries_per_s": {"median": q, "min": q - 10, "max": q + 10}}  # noqa: E731
    results = {"shapes": {"qvhighlights": {"qd_detr": {"train": rate(100), "train_compiled": rate(250),
                                                       "infer": {"queries_per_s": {"median": 900},
                                                                 "latency_ms": {"median": 2.5}}}}}}
    text = table(results)
    assert "| train q/s | train compiled q/s | infer q/s |" in text
    assert "| qvhighlights | qd_detr | 100 (90..110) | 250 (240..260) | 900 | 2.5 | - | - / - / - |" in text
