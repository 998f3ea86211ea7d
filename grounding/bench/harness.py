"""Speed measurements for ``tools/benchmark.py``: training, inference, data loading, metrics, extraction.

Every measurement runs warm-up iterations first, then ``repeats`` timed runs (``grounding.timing``),
and reports the median and the spread (min..max), and the peak memory of its section: allocated
tensors on a GPU, the process's resident set on the CPU (``grounding.timing.PeakMemory``). Inputs are synthetic tensors of each benchmark's real shape (feature dim,
clip count, query length), so no dataset is needed. Models and losses come from the configs shipped
with the package (``grounding.config.packaged_config``) and train with the trainer's own ``TrainStep``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grounding.config import load_config, packaged_config
from grounding.data.batch import Batch, make_batch
from grounding.device import autocast_dtype
from grounding.engine.step import TrainStep, make_optimizer
from grounding.losses import build_criterion
from grounding.models import build_model
from grounding.models.decoding import DecodeConfig, decode_output
from grounding.timing import PeakMemory, Stopwatch, device_sync, in_ms, summarise, time_calls


@dataclass(frozen=True)
class Shape:
    name: str
    config: str
    video_dim: int
    clips: int
    words: int


MODEL_NAMES = ["ccman", "span_baseline", "moment_detr", "qd_detr"]  # every model, as tools/benchmark.py measures them

SHAPES = [
    Shape("charades_sta", "charades_sta.yaml", 1024, 32, 10),
    Shape("activitynet", "activitynet.yaml", 500, 128, 15),
    Shape("tacos", "tacos.yaml", 4096, 128, 10),
    Shape("qvhighlights", "qvhighlights.yaml", 2816, 75, 12),
]


def synthetic_batch(shape: Shape, batch: int, device: torch.device, vocab: int = 1000) -> Batch:
    """A batch of ``batch`` queries, one video each, at ``shape``: random features, words and windows."""
    g = torch.Generator().manual_seed(0)
    start = torch.randint(0, shape.clips // 2, (batch,), generator=g)
    end = start + torch.randint(0, shape.clips // 2, (batch,), generator=g)
    out = make_batch(
        torch.randn(batch, shape.clips, shape.video_dim, generator=g), torch.ones(batch, shape.clips, dtype=torch.bool),
        torch.arange(batch), torch.randint(2, vocab, (batch, shape.words), generator=g),
        torch.ones(batch, shape.words, dtype=torch.bool), start, end,
        span=torch.stack([start / shape.clips, (end + 1) / shape.clips], 1), duration=torch.full((batch,), 30.0),
        qid=list(range(batch)), vid=[str(i) for i in range(batch)],
    )
    return out.to(device)


def model_and_loss(shape: Shape, model_name: str, device: torch.device, overrides: list[str]):
    """The model ``model_name`` (one of ``MODEL_NAMES``) and its loss, on ``shape``'s packaged config: CCMAN as the
    config has it, any other model with the model and loss sections of its ``configs/models/<name>.yaml``."""
    cfg = load_config(packaged_config(shape.config), overrides)
    if model_name != "ccman":
        base = load_config(packaged_config(f"models/{model_name}.yaml"))
        cfg.model, cfg.loss = base.model, base.loss
    cfg.model.video_dim = shape.video_dim
    model = build_model(cfg.model, vocab_size=1000).to(device)
    return cfg, model, build_criterion(cfg.loss).to(device)


def _autocast(device: torch.device):
    dtype = autocast_dtype(device)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def train_step_for(model: torch.nn.Module, device: torch.device) -> TrainStep:
    """The trainer's step (fused AdamW, autocast policy, clipping at 1.0) for ``model``."""
    return TrainStep(make_optimizer(model.parameters(), 1e-4, 0.01, device), device, 1.0, autocast_dtype(device))


@contextmanager
def one_thread_on_cpu(device: torch.device) -> Iterator[None]:
    """One query is too small to split across threads on a CPU: a second thread only adds synchronisation."""
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def bench_training(shape: Shape, model_name: str, device: torch.device, batch: int, steps: int, repeats: int,
                   overrides: list[str] = (), compile: bool = False) -> dict[str, Any]:
    with PeakMemory(device) as memory:
        _, model, criterion = model_and_loss(shape, model_name, device, list(overrides))
        forward = torch.compile(model) if compile else model
        step = train_step_for(model, device)
        data = synthetic_batch(shape, batch, device)
        model.train()

        def run():
            for _ in range(steps):
                step(lambda: criterion(forward(data), data))

        times = time_calls(run, repeats, warmup=2 if compile else 1, sync=device_sync(device))
    qps = [batch * steps / t for t in times]
    return {"queries_per_s": summarise(qps), "batch": batch, **memory.report()}


def compile_for_inference(model: torch.nn.Module) -> Any:
    """``torch.compile`` for inference at fixed shapes, with weights frozen into the graph.

    Freezing lets inductor fold the weights as constants and pre-pack them for the CPU's matrix
    library; without it the compiled CPU forward was no faster than eager. Each new input shape
    compiles again (about 45 s on a 2-core CPU), so pad queries to a fixed length when serving.
    """
    return torch.compile(model.eval(), dynamic=False, options={"freezing": True})


def bench_inference(shape: Shape, model_name: str, device: torch.device, batch: int, repeats: int,
                    compile: bool = False) -> dict[str, Any]:
    """Throughput at ``batch`` and the latency of one query (forward + decoding).

    On the CPU the latency runs on one thread (``one_thread_on_cpu``). ``compile`` measures a frozen ``torch.compile`` forward instead.
    """
    sync = device_sync(device)
    with PeakMemory(device) as memory:
        _, model, _ = model_and_loss(shape, model_name, device, [])
        model.eval()
        forward = compile_for_inference(model) if compile else model
        decode_cfg = DecodeConfig()
        # compiled graphs with frozen weights are built under no_grad; eager runs under inference_mode
        grad_mode = torch.no_grad if compile else torch.inference_mode

        def infer(data: Batch):
            with grad_mode(), _autocast(device):
                out = forward(data)
                decode_output(out, data.duration, decode_cfg)

        big, one = synthetic_batch(shape, batch, device), synthetic_batch(shape, 1, device)
        throughput = [batch / t for t in time_calls(lambda: infer(big), repeats, warmup=2, sync=sync)]
        with one_thread_on_cpu(device):
            latency = time_calls(lambda: infer(one), max(repeats, 50), warmup=10, sync=sync)
    return {"queries_per_s": summarise(throughput), "latency_ms": in_ms(latency), "batch": batch,
            "compiled": compile, **memory.report()}


def bench_data_pipeline(shape: Shape, num_videos: int, queries_per_video: int, batch: int,
                        device: torch.device | str = "cpu") -> dict[str, Any]:
    """Queries/s served from ``.npy`` files by the per-item DataLoader (first pass cold, second warm) and by
    the tensorized path (``train.fast_data``: building the split tensors, then serving shuffled batches)."""
    from torch.utils.data import DataLoader

    from grounding.data.dataset import GroundingDataset, collate
    from grounding.data.features import FeatureBank, NpyFolderStore
    from grounding.data.records import MomentRecord
    from grounding.data.text import WordVocabulary

    rng = np.random.default_rng(0)
    sync = device_sync(device)
    with tempfile.TemporaryDirectory() as tmp, PeakMemory(device) as memory:
        native = max(shape.clips, 8)
        for v in range(num_videos):
            np.save(Path(tmp) / f"v{v}.npy", rng.normal(size=(native + v % 7, shape.video_dim)).astype(np.float32))
        records = [MomentRecord(i, "a person opens the door before sitting", f"v{i % num_videos}", 30.0, [[3.0, 9.0]])
                   for i in range(num_videos * queries_per_video)]
        vocab = WordVocabulary()
        vocab.fit(records)
        bank = FeatureBank([NpyFolderStore(tmp)], num_clips=shape.clips)
        loader = DataLoader(GroundingDataset(records, bank, vocab), batch_size=batch, shuffle=True, collate_fn=collate)
        passes = []
        for _ in range(2):
            with Stopwatch() as watch:
                for _ in loader:
                    pass
            passes.append(len(records) / watch.seconds)
        from grounding.data.tensorized import TensorizedSplit

        with Stopwatch(sync) as build:
            fast = TensorizedSplit(GroundingDataset(records, bank, vocab), device)
        with Stopwatch(sync) as serve:
            for epoch in range(3):
                for _batch in fast.batches(batch, shuffle=True, seed=epoch):
                    pass
    return {"cold_queries_per_s": passes[0], "warm_queries_per_s": passes[1], "tensorized_build_s": build.seconds,
            "tensorized_queries_per_s": 3 * len(records) / serve.seconds, **memory.report()}


def bench_metrics(num_queries: int = 20000, repeats: int = 5) -> dict[str, Any]:
    from grounding.eval.metrics import recall_at_iou

    with PeakMemory() as memory:
        rng = np.random.default_rng(0)
        start = rng.uniform(0, 20, (num_queries, 5))
        pred = np.stack([start, start + rng.uniform(1, 10, (num_queries, 5))], -1)
        gt = np.stack([rng.uniform(0, 20, num_queries), rng.uniform(21, 30, num_queries)], -1)[:, None]
        times = time_calls(lambda: recall_at_iou(pred, gt), repeats)
    return {"ms": in_ms(times), "queries": num_queries, **memory.report()}


def bench_extraction(device: str, num_videos: int = 2, seconds: float = 10.0) -> dict[str, Any]:
    from grounding.extract.bench import run_benchmark

    with PeakMemory(device) as memory:  # this process: the model and writing, not the decoding workers
        rows = run_benchmark(["clip-b32"], num_videos=num_videos, seconds=seconds, device=device,
                             num_workers=2 if device == "cpu" else 8)
    row = rows[-1]
    return {"clips_per_s": row.clips / row.seconds, "videos_per_s": row.videos / row.seconds, "videos": row.videos,
            **memory.report()}
