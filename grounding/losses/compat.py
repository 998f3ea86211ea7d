"""Compatibility training on CCMAN: keep the new model's shared space usable with an old CCMAN's index.

``tools/train_grounding.py compat.old_checkpoint=OLD compat.method=bct`` adds the term ``compat`` to the
criterion. It holds the frozen old CCMAN (not a submodule: never trained, never saved) and, on every
batch, embeds the batch's target moments and sentences with it (the same ``space`` the old model's own
forward gives), then applies the study's loss of ``compat.method`` (``grounding.compat.objectives``: l2,
bct, ract, unibct) to the new model's ``output.space`` and the old embeddings. Classes (BCT, UniBCT) are
the training moments, each a distinct (video, target clips); the old model's view of every training
moment and sentence (``OldReference``) is computed once when the term is built.

The new checkpoint records OLD's fingerprint (``compatible_with``), which is what lets its queries
search OLD's index (``grounding.search.model``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from grounding.compat.objectives import OldReference, build_compat_loss
from grounding.config import to_plain
from grounding.data.batch import Batch
from grounding.data.dataset import collate
from grounding.errors import GroundingError
from grounding.losses.base import LOSSES, Loss
from grounding.models.outputs import GroundingOutput

log = logging.getLogger("grounding")


@dataclass
class LossContext:
    """What a term that needs more than (output, batch) may read when it is built."""

    cfg: Any
    data: Any  # grounding.data.build.DataBundle
    device: torch.device
    train_split: str


def loss_section(cfg: Any) -> dict[str, Any]:
    """The config's ``loss`` section, plus the ``compat`` term when ``compat.old_checkpoint`` is set."""
    loss = to_plain(cfg.get("loss") or {})
    compat = cfg.get("compat") or {}
    if compat.get("old_checkpoint"):
        loss["compat"] = {"weight": compat.get("weight", 1.0), "old_checkpoint": compat["old_checkpoint"],
                          "method": compat.get("method", "bct"), "params": to_plain(compat.get("params") or {})}
    return loss


def space_embeddings(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, E) unit embeddings of each query's target moment and of its sentence: ``model(batch).space``'s
    ``moments(inside)`` and ``sentence`` without running the cascade."""
    clips = model.video_encoder(batch.video, batch.video_mask)[batch.vid_index]
    proj = model.embedding.video_proj(clips)
    inside = (batch.inside > 0).to(proj.dtype).unsqueeze(-1)
    moments = F.normalize((proj * inside).sum(1) / inside.sum(1).clamp_min(1.0), dim=-1)
    _, sentence, _ = model.query_encoder(batch.words, batch.word_mask)
    return moments, model.embedding.embed_text(sentence)


@LOSSES.register("compat")
class CompatibilityLoss(Loss):
    needs_context = True

    def __init__(self, weight: float = 1.0, old_checkpoint: str | None = None, method: str = "bct",
                 params: dict[str, Any] | None = None, context: LossContext | None = None, **_: Any) -> None:
        super().__init__(weight)
        if context is None or not old_checkpoint:
            raise GroundingError("the compat loss needs compat.old_checkpoint (and is built by the trainer)")
        from grounding.api.loading import load_for_inference
        from grounding.search.embed import model_fingerprint

        old = load_for_inference(old_checkpoint, str(context.device))
        if not hasattr(old.model, "embedding") or not hasattr(old.model, "video_encoder"):
            raise GroundingError(f"compat.old_checkpoint {old_checkpoint} is not a CCMAN with a shared space")
        new_dim = int(context.cfg.model.get("embed_dim"))
        if old.model.embedding.embed_dim != new_dim:
            raise GroundingError(f"compat.old_checkpoint embeds into {old.model.embedding.embed_dim} dimensions, this "
                                 f"model into {new_dim}; set model.embed_dim={old.model.embedding.embed_dim}")
        for p in old.model.parameters():
            p.requires_grad_(False)
        self._old = [old]  # a list: not a submodule, so neither trained nor saved with the criterion
        self.fingerprint = model_fingerprint(old.model)
        self.same_text = old.text.state() == context.data.text.state()
        self.method = build_compat_loss(method, params)
        if self.method is None:
            raise GroundingError("compat.method must name a loss: l2, bct, ract or unibct")
        self.method.to(context.device)
        self.query_index: dict[str, int] = {}
        self.moment_index: dict[str, int] = {}  # "vid:first:last" clips -> training moment (a class)
        self.query_moment: dict[str, int] = {}  # qid -> its moment (keyed by qid: batch paths may round clips apart)
        reference = self._reference(context)
        self.method.prepare(reference.to(context.device))
        log.info("compat: %s against %s (model %s), %d training moments, %d sentences", method, old_checkpoint,
                 self.fingerprint, len(reference.moments), len(reference.sentences))

    @property
    def old(self) -> nn.Module:
        return self._old[0].model

    def _old_batch(self, batch: Batch) -> Batch:
        """The batch with the old model's token inputs (its own vocabulary, when it differs)."""
        if self.same_text:
            return batch
        from dataclasses import replace

        from grounding.api.loading import encode_queries

        if not batch.query:
            raise GroundingError("the compat loss needs the batch's sentences to re-encode them for the old model")
        words, mask, _ = encode_queries(self._old[0], list(batch.query))
        return replace(batch, words=words.to(batch.video.device), word_mask=mask.to(batch.video.device))

    @torch.no_grad()
    def _reference(self, context: LossContext) -> OldReference:
        dataset = context.data.dataset(context.train_split)
        moments, sentences, query_moment = [], [], []
        for first in range(0, len(dataset), 64):
            batch = collate([dataset[i] for i in range(first, min(first + 64, len(dataset)))]).to(context.device)
            m, s = space_embeddings(self.old, self._old_batch(batch))
            for row, qid in enumerate(batch.qid):
                key = f"{batch.vid[row]}:{int(batch.start_idx[row])}:{int(batch.end_idx[row])}"
                if key not in self.moment_index:
                    self.moment_index[key] = len(moments)
                    moments.append(m[row])
                self.query_index[str(qid)] = len(sentences)
                self.query_moment[str(qid)] = self.moment_index[key]
                sentences.append(s[row])
                query_moment.append(self.moment_index[key])
        return OldReference(torch.stack(moments), torch.stack(sentences), torch.tensor(query_moment),
                            float(self.old.embedding.temperature))

    def forward(self, output: GroundingOutput, batch: Batch) -> torch.Tensor:
        new_moments = output.space.moments(batch.inside > 0)
        with torch.no_grad():
            self.old.eval()
            old_moments, old_sentences = space_embeddings(self.old, self._old_batch(batch))
        device = new_moments.device
        query_ids = torch.tensor([self.query_index[str(q)] for q in batch.qid], device=device)
        moment_ids = torch.tensor([self.query_moment[str(q)] for q in batch.qid], device=device)
        return self.method(new_moments, output.space.sentence, old_moments.to(new_moments.dtype),
                           old_sentences.to(new_moments.dtype), moment_ids, query_ids=query_ids)

    def checkpoint_extras(self) -> dict[str, Any]:
        """Saved with every checkpoint: the spaces this model's queries may search."""
        return {"compatible_with": [self.fingerprint]}
