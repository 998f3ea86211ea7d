"""Run a model over batches and turn its decoded outputs into prediction records."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from tqdm import tqdm

from grounding.data.batch import Batch
from grounding.eval.predictions import Prediction, prediction_records
from grounding.models.decoding import DecodeConfig, decode_output


@torch.inference_mode()
def predict(model: nn.Module, batches: Iterable[Batch], device: torch.device, decode_cfg: DecodeConfig,
            autocast: torch.dtype | None = None, progress: bool = False) -> list[Prediction]:
    was_training = model.training
    model.eval()
    out: list[Prediction] = []
    for batch in tqdm(batches, desc="predict", leave=False, disable=not progress):
        batch = batch.to(device)
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            output = model(batch)
        windows, saliency = decode_output(output, batch.duration, decode_cfg)
        refined = output.decoded.refined_span  # the fine stage's regressed span, normalised
        refined = None if refined is None else (refined.float() * batch.duration[:, None]).cpu()
        out.extend(prediction_records(batch.qid, batch.vid, batch.query, windows.cpu(), saliency.cpu(),
                                      batch.num_clips.cpu(), refined))
    model.train(was_training)
    return out
