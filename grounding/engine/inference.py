"""Run a model over a split and turn its outputs into prediction records; compute metrics on them."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from grounding.data.dataset import batch_to
from grounding.data.records import MomentRecord
from grounding.models.decoding import DecodeConfig, decode, to_prediction_records


def forward_batch(model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
    return model(batch["video"], batch["video_mask"], batch["words"], batch["word_mask"])


@torch.inference_mode()
def predict(model: nn.Module, loader: DataLoader, device: torch.device, decode_cfg: DecodeConfig,
            autocast_dtype: torch.dtype | None = None, progress: bool = False) -> list[dict[str, Any]]:
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    out: list[dict[str, Any]] = []
    for batch in tqdm(loader, desc="predict", leave=False, disable=not progress):
        batch = batch_to(batch, device)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            outputs = forward_batch(model, batch)
        stage = outputs["stages"][outputs["final"]]
        windows, saliency = decode(stage, batch["video_mask"], batch["duration"], decode_cfg)
        out.extend(to_prediction_records(batch, windows, saliency))
    model.train(was_training)
    return out


def compute_metrics(predictions: list[dict[str, Any]], records: list[MomentRecord], dataset: str,
                    tags: dict[Any, list[str]] | None = None) -> dict[str, float]:
    """Metric names as the reference evaluators print them; ``<tag>/<metric>`` for each query subset."""
    from grounding.eval.metrics import evaluate_single_window
    from grounding.eval.qvhighlights import evaluate_qvhighlights

    if dataset == "qvhighlights":
        labelled = [r for r in records if r.windows]
        full = evaluate_qvhighlights(predictions, labelled)
        metrics = dict(full["brief"])
        metrics["num_queries"] = full["num_queries"]
        metrics["num_missing"] = full["num_missing"]
        return metrics
    metrics: dict[str, float] = dict(evaluate_single_window(predictions, records))
    if tags:
        by_qid = {str(p["qid"]): p for p in predictions}
        for tag in sorted({t for ts in tags.values() for t in ts}):
            subset = [r for r in records if tag in tags.get(r.qid, [])]
            if subset:
                sub = evaluate_single_window([by_qid[str(r.qid)] for r in subset if str(r.qid) in by_qid], subset)
                metrics.update({f"{tag}/{k}": v for k, v in sub.items() if k != "num_missing"})
    return metrics
