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




def test_harness_reports_each_section_on_a_small_shape(monkeypatch):
    from grounding.engine.step import TrainStep

    shape = bench.Shape("tiny", "charades_sta.yaml", video_dim=16, clips=8, words=5)
    cpu = torch.device("cpu")
    clock, real_step = {"now": 0.0}, TrainStep.__call__
    seconds = iter([5.0] * 2 + [0.1] * 2 + [0.2] * 2)  # per step: the warm-up run, then two timed repeats

    def step_on_the_clock(self, *args, **kwargs):
        clock["now"] += next(seconds)
        return real_step(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(time, "perf_counter", lambda: clock["now"])
        patch.setattr(TrainStep, "__call__", step_on_the_clock)
        train = bench.bench_training(shape, "ccman", cpu, batch=2, steps=2, repeats=2)
    # 2 steps of 2 queries per repeat, in 0.2 s and 0.4 s; the warm-up is not timed
    assert train["queries_per_s"] == pytest.approx({"median": 15.0, "min": 10.0, "max": 20.0})
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


def test_compare_speed_alternates_two_checkouts_in_one_process(tmp_path, monkeypatch):
    import itertools
    from pathlib import Path

    import grounding
    from grounding.bench.compare import compare, load_version
    from grounding.errors import GroundingError

    repo = Path(__file__).resolve().parents[1]
    versions = {"a": load_version(repo, "charades_sta", "span_baseline", fused=False),
                "b": load_version(repo, "charades_sta", "span_baseline", fused=True)}
    assert __import__("grounding") is grounding  # the caller's package is restored after each import
    # each real operation runs once (the warm-up); then a fake clock moves by a known cost per call
    # (version b is twice as slow)
    clock, calls = {"now": 0.0}, []
    costs = {"train": [0.1, 0.2], "infer_batch": [0.5], "infer_one": [0.001, 0.002, 0.003, 0.004, 0.005]}

    def on_the_clock(name, op, seconds):
        def run():
            if name not in calls:
                op()
            calls.append(name)
            clock["now"] += next(seconds)
        return run

    timed_versions = {v: {op: on_the_clock(f"{v}.{op}", fn, itertools.cycle([c * (1 + (v == "b")) for c in costs[op]]))
                          for op, fn in ops.items()} for v, ops in versions.items()}
    monkeypatch.setattr(time, "perf_counter", lambda: clock["now"])
    results = compare(timed_versions, rounds=2, threads=1)
    monkeypatch.undo()

    def one_round(v):
        return [f"{v}.train", f"{v}.infer_batch"] + [f"{v}.infer_one"] * 5

    warmup = [f"{v}.{op}" for v in "ab" for op in costs]
    assert calls == warmup + (one_round("a") + one_round("b")) * 2  # the versions alternate, round by round
    assert results["a"]["train_queries_per_s"] == pytest.approx({"median": 240.0, "best": 320.0})
    assert results["a"]["infer_queries_per_s"] == pytest.approx({"median": 256.0, "best": 256.0})
    assert results["a"]["latency_ms"] == pytest.approx({"median": 3.0, "best": 1.0})
    assert results["b"]["train_queries_per_s"] == pytest.approx({"median": 120.0, "best": 160.0})
    assert results["b"]["latency_ms"] == pytest.approx({"median": 6.0, "best": 2.0})
    with pytest.raises(GroundingError, match="not a checkout"):
        load_version(tmp_path, "charades_sta", "ccman", fused=True)
