"""Speed of two checkouts of this package, measured in one process with their steps interleaved.

Why: shared CPU machines change speed by up to 2x within minutes, so two benchmark runs minutes
apart can disagree more than the change being measured. Here both versions' models live in the
same process and alternate step by step, so both see the same machine state.

Each checkout is imported in turn under the name ``grounding`` (its modules are dropped from
``sys.modules`` afterwards, the model objects keep the code they were built with); it must contain
``grounding/engine/benchmark.py`` with ``SHAPES``, ``_model_and_loss`` and ``synthetic_batch``.
"""

from __future__ import annotations

import importlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from grounding.engine.benchmark import one_thread_on_cpu, training_step
from grounding.errors import GroundingError


def _drop_package() -> None:
    for name in [n for n in sys.modules if n == "grounding" or n.startswith("grounding.")]:
        del sys.modules[name]


def load_version(checkout: Path, shape_name: str, model_name: str, fused: bool) -> dict[str, Callable[[], None]]:
    """Build the model of ``checkout`` at one benchmark shape; return its timed operations."""
    if not (checkout / "grounding" / "engine" / "benchmark.py").is_file():
        raise GroundingError(f"{checkout} is not a checkout of this project with grounding/engine/benchmark.py")
    saved = dict(sys.modules)
    _drop_package()
    sys.path.insert(0, str(checkout))
    try:
        bench = importlib.import_module("grounding.engine.benchmark")
        decoding = importlib.import_module("grounding.models.decoding")
        shape = next((s for s in bench.SHAPES if s.name == shape_name), None)
        if shape is None:
            raise GroundingError(f"{checkout} has no benchmark shape '{shape_name}'")
        torch.manual_seed(0)
        _, model, criterion = bench._model_and_loss(shape, model_name, torch.device("cpu"), [])
        cpu = torch.device("cpu")
        train, one, big = (bench.synthetic_batch(shape, n, cpu) for n in (32, 1, 128))
        decode_cfg = decoding.DecodeConfig()
        decode = decoding.decode
    finally:
        sys.path.remove(str(checkout))
        _drop_package()
        sys.modules.update({k: v for k, v in saved.items() if k == "grounding" or k.startswith("grounding.")})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused)

    def step() -> None:
        model.train()
        training_step(model, model, criterion, optimizer, train, cpu)

    @torch.inference_mode()
    def infer(batch: dict[str, Any]) -> None:
        model.eval()
        out = model(batch["video"], batch["video_mask"], batch["words"], batch["word_mask"])
        decode(out["stages"][out["final"]], batch["video_mask"], batch["duration"], decode_cfg)

    return {"train": step, "infer_batch": lambda: infer(big), "infer_one": lambda: infer(one)}


def compare(versions: dict[str, dict[str, Callable[[], None]]], rounds: int, threads: int = 2) -> dict[str, dict]:
    """Alternate the versions ``rounds`` times: one training step (batch 32), one batch-128 inference,
    five single-query inferences on one thread. Medians and bests per version."""
    samples: dict[str, dict[str, list[float]]] = {v: {"train": [], "infer": [], "latency": []} for v in versions}
    torch.set_num_threads(threads)
    for ops in versions.values():  # warm-up
        for op in ops.values():
            op()
    for _ in range(rounds):
        for name, ops in versions.items():
            start = time.perf_counter()
            ops["train"]()
            samples[name]["train"].append(32 / (time.perf_counter() - start))
            start = time.perf_counter()
            ops["infer_batch"]()
            samples[name]["infer"].append(128 / (time.perf_counter() - start))
            with one_thread_on_cpu(torch.device("cpu")):
                for _ in range(5):
                    start = time.perf_counter()
                    ops["infer_one"]()
                    samples[name]["latency"].append((time.perf_counter() - start) * 1000)
    return {name: {"train_queries_per_s": {"median": statistics.median(s["train"]), "best": max(s["train"])},
                   "infer_queries_per_s": {"median": statistics.median(s["infer"]), "best": max(s["infer"])},
                   "latency_ms": {"median": statistics.median(s["latency"]), "best": min(s["latency"])}}
            for name, s in samples.items()}
