"""Checkpoint-mode evaluation: rebuild the run's data and model, predict one split, score it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from grounding.data.build import DataBundle
from grounding.engine.checkpoint import load_checkpoint
from grounding.engine.inference import compute_metrics, predict
from grounding.engine.runtime import DistInfo, select_device
from grounding.engine.trainer import (
    autocast_dtype,
    build_model_for,
    decode_config,
    ensure_synthetic_data,
    make_loader,
)
from grounding.errors import GroundingError
from grounding.eval.evaluate import has_ground_truth
from grounding.eval.predictions import write_predictions


def evaluate_checkpoint(cfg: DictConfig, checkpoint: str | Path, split: str, out: str | Path,
                        overwrite: bool = False) -> dict[str, Any]:
    """Predict ``split`` with the weights and vocabulary in ``checkpoint``; write ``out``; return metrics.

    The config supplies data paths and decoding (so a model can be scored on another split or data
    root); the vocabulary comes from the checkpoint so word ids match the trained embeddings.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise GroundingError(f"{out} exists; pass --overwrite or choose another --out")
    state = load_checkpoint(checkpoint)
    ensure_synthetic_data(cfg)
    data = DataBundle(cfg, text_state=state.get("text"))
    device = select_device(cfg.train.get("device", "auto"), DistInfo())
    model = build_model_for(cfg, data).to(device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise GroundingError(
            f"checkpoint {checkpoint} does not fit the model of this config ({str(err).splitlines()[0]}); "
            "use the config.yaml saved beside the checkpoint"
        ) from err
    dataset = data.dataset(split)
    loader = make_loader(dataset, cfg, DistInfo(), train=False)
    preds = predict(model, loader, device, decode_config(cfg), autocast_dtype(device, cfg.train.get("precision", "auto")),
                    progress=True)
    write_predictions(preds, out)
    if not has_ground_truth(dataset.records):  # hidden labels (QVHighlights test): nothing to score
        return {"num_queries": len(preds), "ground_truth": False}
    return compute_metrics(preds, dataset.records, cfg.data.get("dataset", "native"), dataset.tags)
