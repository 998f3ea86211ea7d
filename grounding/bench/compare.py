"""Speed of two checkouts of this package, measured in one process with their steps interleaved.

Why: shared CPU machines change speed by up to 2x within minutes, so two benchmark runs minutes
apart can disagree more than the change being measured. Here both versions' models live in the
same process and alternate step by step, so both see the same machine state.

Each checkout is imported in turn under the name ``grounding`` (its modules are dropped from
``sys.modules`` afterwards, the model objects keep the code they were built with); it must contain
``grounding/bench/harness.py`` (``SHAPES``, ``model_and_loss``, ``synthetic_batch``, ``train_step_for``)
or, for checkouts before the engine refactor, ``grounding/engine/benchmark.py``.
"""

from __future__ import annotations

import importlib
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from grounding.bench.harness import one_thread_on_cpu
from grounding.errors import GroundingError
from grounding.timing import time_calls

HARNESS = ("grounding/bench/harness.py", "grounding/engine/benchmark.py")  # this layout, the one before it


def _drop_package() -> None:
    for name in [n for n in sys.modules if n == "grounding" or n.startswith("grounding.")]:
        del sys.modules[name]


def load_version(checkout: Path, shape_name: str, model_name: str, fused: bool) -> dict[str, Callable[[], None]]:
    """Build the model of ``checkout`` at one benchmark shape; return its timed operations."""
    layout = next((h for h in HARNESS if (checkout / h).is_file()), None)
    if layout is None:
        raise GroundingError(f"{checkout} is not a checkout of this project (it has neither {' nor '.join(HARNESS)})")
    saved = dict(sys.modules)
    _drop_package()
    sys.path.insert(0, str(checkout))
    try:
        bench = importlib.import_module(layout[:-3].replace("/", "."))
        decoding = importlib.import_module("grounding.models.decoding")
        shape = next((s for s in bench.SHAPES if s.name == shape_name), None)
        if shape is None:
            raise GroundingError(f"{checkout} has no benchmark shape '{shape_name}'")
        torch.manual_seed(0)
        cpu = torch.device("cpu")
        if layout == HARNESS[0]:
            ops = _current_ops(bench, decoding, shape, model_name, cpu)
        else:
            ops = _legacy_ops(bench, decoding, shape, model_name, cpu, fused)
    finally:
        sys.path.remove(str(checkout))
        _drop_package()
        sys.modules.update({k: v for k, v in saved.items() if k == "grounding" or k.startswith("grounding.")})
    return ops


def _current_ops(bench: Any, decoding: Any, shape: Any, model_name: str, cpu: torch.device) -> dict[str, Callable[[], None]]:
    _, model, criterion = bench.model_and_loss(shape, model_name, cpu, [])
    train, one, big = (bench.synthetic_batch(shape, n, cpu) for n in (32, 1, 128))
    step, decode_cfg = bench.train_step_for(model, cpu), decoding.DecodeConfig()

    def train_step() -> None:
        model.train()
        step(lambda: criterion(model(train), train))

    @torch.inference_mode()
    def infer(batch: Any) -> None:
        model.eval()
        out = model(batch)
        decoding.decode_output(out, batch.duration, decode_cfg)

    return {"train": train_step, "infer_batch": lambda: infer(big), "infer_one": lambda: infer(one)}


def _legacy_ops(bench: Any, decoding: Any, shape: Any, model_name: str, cpu: torch.device,
                fused: bool) -> dict[str, Callable[[], None]]:
    """Checkouts before the engine refactor: tensors in, dict out, the loss reads the model."""
    _, model, criterion = bench._model_and_loss(shape, model_name, cpu, [])
    train, one, big = (bench.synthetic_batch(shape, n, cpu) for n in (32, 1, 128))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused)
    decode_cfg = decoding.DecodeConfig()

    def train_step() -> None:
        model.train()
        out = model(train["video"], train["video_mask"], train["words"], train["word_mask"])
        loss, _ = criterion(out, train, model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        optimizer.step()

    @torch.inference_mode()
    def infer(batch: dict[str, Any]) -> None:
        model.eval()
        out = model(batch["video"], batch["video_mask"], batch["words"], batch["word_mask"])
        decoding.decode(out["stages"][out["final"]], batch["video_mask"], batch["duration"], decode_cfg)

    return {"train": train_step, "infer_batch": lambda: infer(big), "infer_one": lambda: infer(one)}


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
            samples[name]["train"].append(32 / time_calls(ops["train"], 1, warmup=0)[0])
            samples[name]["infer"].append(128 / time_calls(ops["infer_batch"], 1, warmup=0)[0])
            with one_thread_on_cpu(torch.device("cpu")):
                samples[name]["latency"] += [t * 1000 for t in time_calls(ops["infer_one"], 5, warmup=0)]
    return {name: {"train_queries_per_s": {"median": statistics.median(s["train"]), "best": max(s["train"])},
                   "infer_queries_per_s": {"median": statistics.median(s["infer"]), "best": max(s["infer"])},
                   "latency_ms": {"median": statistics.median(s["latency"]), "best": min(s["latency"])}}
            for name, s in samples.items()}
