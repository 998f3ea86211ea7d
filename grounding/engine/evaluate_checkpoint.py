"""Checkpoint-mode evaluation: rebuild the run's data and model, predict one split, score it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from grounding.data.build import DataBundle
from grounding.data.settings import dataset_name
from grounding.engine.batches import BatchSource
from grounding.engine.run import Run
from grounding.engine.settings import TrainSettings
from grounding.errors import GroundingError
from grounding.eval.evaluate import compute_metrics, has_ground_truth
from grounding.eval.predictions import write_predictions
from grounding.inference import predict, read_checkpoint
from grounding.inference.loading import build_model_from_checkpoint
from grounding.models.decoding import DecodeConfig


def evaluate_checkpoint(cfg: DictConfig, checkpoint: str | Path, split: str, out: str | Path,
                        overwrite: bool = False) -> dict[str, Any]:
    """Predict ``split`` with the model in ``checkpoint``; write ``out``; return metrics.

    The config supplies data paths and decoding (so a model can be scored on another split or data
    root); the model and its vocabulary come from the checkpoint (``grounding.inference``), so the
    network is the one that was trained and word ids match its embeddings.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise GroundingError(f"{out} exists; pass --overwrite or choose another --out")
    settings = TrainSettings.from_config(cfg)
    run = Run.start(settings, tensorboard=False)
    state = read_checkpoint(checkpoint)
    data = DataBundle(cfg, text_state=state.text)
    model = build_model_from_checkpoint(state, data.text, checkpoint).to(run.device)
    dataset = data.dataset(split)
    batches = BatchSource(settings, run.dist, run.device).batches(dataset, train=False)
    preds = predict(model, batches, run.device, DecodeConfig.from_config(cfg), run.autocast, progress=True)
    write_predictions(preds, out)
    if not has_ground_truth(dataset.records):  # hidden labels (QVHighlights test): nothing to score
        return {"num_queries": len(preds), "ground_truth": False}
    return compute_metrics(preds, dataset.records, dataset_name(cfg), dataset.tags)
