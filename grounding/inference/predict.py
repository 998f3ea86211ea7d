"""Run a model on a ``Batch`` and decode it: the one forward-and-decode every predictor calls.

``run_and_decode`` gives windows in seconds, per-clip saliency and the regressed span for one batch
(the Grounder, the Searcher's stage 2); ``predict`` runs it over a split's batches and returns
prediction records (training-time evaluation, checkpoint-mode evaluation).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from grounding.data.batch import Batch
from grounding.inference.records import Prediction, prediction_records
from grounding.models.decoding import DecodeConfig, decode_output
from grounding.models.outputs import GroundingOutput


@dataclass
class Decoded:
    """A batch's answers: ``windows`` (B, K, 3) ``[start_s, end_s, score]`` best first (NaN rows = none),
    ``saliency`` (B, T), ``refined`` (B, 2) seconds or None, the model's ``output`` for callers that
    read more of it (the Searcher's shared-space window scores), and ``in_video`` (B,) the calibrated
    probability that each query's moment is in its video (None: a model configured without it)."""

    windows: torch.Tensor
    saliency: torch.Tensor
    refined: torch.Tensor | None
    output: GroundingOutput
    in_video: torch.Tensor | None = None


@torch.inference_mode()
def run_and_decode(model: nn.Module, batch: Batch, decode_cfg: DecodeConfig,
                   autocast: torch.dtype | None = None) -> Decoded:
    """``model(batch)`` (in autocast where given), decoded with ``decode_cfg``; the model is not switched
    to eval mode here (callers that train put it there)."""
    device = batch.video.device
    with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
        output = model(batch)
    windows, saliency = decode_output(output, batch.duration, decode_cfg)
    refined = output.refined_span  # normalised to the video
    refined = None if refined is None else refined.float() * batch.duration[:, None]
    in_video = None if output.existence is None else output.existence.probability()
    return Decoded(windows, saliency, refined, output, in_video)


def predict(model: nn.Module, batches: Iterable[Batch], device: torch.device, decode_cfg: DecodeConfig,
            autocast: torch.dtype | None = None, progress: bool = False) -> list[Prediction]:
    """Prediction records of every query in ``batches`` (eval mode for the run, then the mode it had)."""
    was_training = model.training
    model.eval()
    out: list[Prediction] = []
    for batch in tqdm(batches, desc="predict", leave=False, disable=not progress):
        batch = batch.to(device)
        decoded = run_and_decode(model, batch, decode_cfg, autocast)
        refined = None if decoded.refined is None else decoded.refined.cpu()
        in_video = None if decoded.in_video is None else decoded.in_video.cpu()
        out.extend(prediction_records(batch.qid, batch.vid, batch.query, decoded.windows.cpu(),
                                      decoded.saliency.cpu(), batch.num_clips.cpu(), refined, in_video))
    model.train(was_training)
    return out
