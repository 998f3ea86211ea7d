"""Training one model of the study: the retrieval loss, plus a compatibility loss and a forward adapter.

    L = InfoNCE(sentences, moments)                                   symmetric, in-batch negatives
      + weight * L_compat(new, old)                                   (``grounding.compat.objectives``)
      + forward_weight * L_fwd(psi(old moments), new)                 (BiCT, joint with the adapter)

Batches are whole videos (``MomentSplit.video_batches``): each video runs through the video encoder
once for all its queries, and the other moments of the same video are in-batch negatives (the gallery
holds them too). Old embeddings come precomputed from the frozen old model (``old_moments`` (M, E), ``old_sentences``
(N, E), rows = the split's moments and queries), so the old model never runs inside the loop. Each
step is the engine's ``TrainStep``, as for every model of every study (``grounding.studies.protocol``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from grounding.compat.adapter import ForwardAdapter, forward_loss
from grounding.compat.objectives import CompatLoss, same_moment
from grounding.data.batch import Batch
from grounding.engine.guards import NonFiniteLossGuard
from grounding.engine.step import TrainStep, make_optimizer
from grounding.models.contrastive import info_nce
from grounding.schedule import warmup_decay
from grounding.studies.dual_encoder import DualEncoder
from grounding.studies.moment_split import MomentSplit

log = logging.getLogger("grounding")


@dataclass
class TrainSettings:
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    warmup_epochs: float = 1.0
    seed: int = 0

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> TrainSettings:
        known = {k: section[k] for k in cls.__dataclass_fields__ if section.get(k) is not None}
        return cls(**known)


@dataclass
class CompatTerms:
    """The optional parts of a new model's objective."""

    loss: CompatLoss | None = None
    weight: float = 1.0
    old_moments: torch.Tensor | None = None  # (M, E)
    old_sentences: torch.Tensor | None = None  # (N, E)
    adapter: ForwardAdapter | None = None
    forward_weight: float = 1.0
    forward_params: dict[str, Any] | None = None


def train_dual_encoder(model: DualEncoder, split: MomentSplit, settings: TrainSettings, device: torch.device,
                       terms: CompatTerms | None = None, writer: Any = None, tag: str = "model",
                       on_epoch: Callable[[int], dict[str, float]] | None = None) -> list[dict[str, float]]:
    """Train ``model`` on ``split``; returns per-epoch mean losses (and whatever ``on_epoch`` reports)."""
    terms = terms or CompatTerms()
    needs_old = terms.loss is not None or terms.adapter is not None
    if needs_old and (terms.old_moments is None or terms.old_sentences is None):
        raise ValueError("a compatibility loss or forward adapter needs the old model's embeddings")
    old_moments = terms.old_moments.to(device) if terms.old_moments is not None else None
    old_sentences = terms.old_sentences.to(device) if terms.old_sentences is not None else None
    params = list(model.parameters()) + (list(terms.adapter.parameters()) if terms.adapter is not None else [])
    optimizer = make_optimizer(params, settings.lr, settings.weight_decay, device)
    steps = len(split.video_batches(settings.batch_size, torch.Generator().manual_seed(0)))
    scheduler = warmup_decay(optimizer, steps * settings.epochs, int(settings.warmup_epochs * steps), "cosine")
    guard = NonFiniteLossGuard(1, hint="Lower compat.train.lr or the loss weights")
    train_step = TrainStep(optimizer, device, settings.grad_clip, autocast=None, scheduler=scheduler, guard=guard)
    generator = torch.Generator().manual_seed(settings.seed)
    forward_params = terms.forward_params or {}
    history = []
    for epoch in range(settings.epochs):
        model.train()
        if terms.adapter is not None:
            terms.adapter.train()
        start, sums = time.perf_counter(), {}
        for index in split.video_batches(settings.batch_size, generator):
            batch, moment = split.batch(index)
            batch, moment, index = batch.to(device), moment.to(device), index.to(device)

            def losses(batch: Batch = batch, moment: torch.Tensor = moment, index: torch.Tensor = index):
                tokens = model.video(batch.video, batch.video_mask)  # (V_b, T, dim): each video once
                moments = model.moments_from_tokens(tokens[batch.vid_index], batch.inside > 0)  # (B, E)
                sentences = model.embed_sentences(batch.words, batch.word_mask)  # (B, E)
                same = same_moment(moment)
                parts = {"task": info_nce(sentences, moments, model.embedding.temperature, same)}
                if terms.loss is not None:
                    parts["compat"] = terms.weight * terms.loss(moments, sentences, old_moments[moment],
                                                                old_sentences[index], moment, query_ids=index)
                if terms.adapter is not None:
                    adapted = terms.adapter(old_moments[moment])
                    parts["forward"] = terms.forward_weight * forward_loss(adapted, moments, sentences, same,
                                                                           **forward_params)
                return sum(parts.values()), {k: v.detach() for k, v in parts.items()}

            _, parts = train_step(losses, batch.qid, epoch + 1)
            for name, value in parts.items():
                sums[name] = sums.get(name, 0.0) + float(value) * len(index)
        record = {name: total / split.num_queries for name, total in sums.items()}
        if on_epoch is not None:
            record.update(on_epoch(epoch + 1))
        history.append(record)
        if writer is not None:
            for name, value in record.items():
                writer.add_scalar(f"{tag}/{name}", value, epoch + 1)
        log.info("%s epoch %d/%d (%.1f s): %s", tag, epoch + 1, settings.epochs, time.perf_counter() - start,
                 ", ".join(f"{k} {v:.3f}" for k, v in record.items()))
    model.eval()
    return history
