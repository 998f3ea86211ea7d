"""Compatibility training on CCMAN: keep the new model's shared space usable with an old CCMAN's index.

``tools/train_grounding.py compat.old_checkpoint=OLD compat.method=bct`` adds the term ``compat`` to the
criterion. It holds the frozen old model (not a submodule: never trained, never saved) and, on every
batch, embeds the batch's target moments and sentences with it through the ``SharedSpaceModel``
interface (the same vectors the old model's own forward gives), then applies the compatibility
objective of ``compat.method`` (``grounding.compat.objectives``: l2, bct, ract, unibct) to the new model's
``output.space`` and the old embeddings. Classes (BCT, UniBCT) are the training moments, each a distinct
(video, target clips); the old model's view of every training moment and sentence (``OldReference``)
is computed once when the term is built.

The term does not read checkpoints itself (that is the inference floor above it): the trainer passes a
loader in the ``LossContext``. The new checkpoint records OLD's fingerprint (``compatible_with``), which
is what lets its queries search OLD's index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch

from grounding.compat.objectives import OldReference, build_compat_loss
from grounding.config import to_plain
from grounding.data.batch import Batch
from grounding.data.dataset import collate
from grounding.data.text import TextInput
from grounding.errors import GroundingError
from grounding.losses.base import LOSSES, Loss
from grounding.models.outputs import GroundingOutput
from grounding.models.shared_space import SharedSpaceModel

log = logging.getLogger("grounding")


class ReferenceModel(Protocol):
    """What the term needs of the old model (``grounding.inference.LoadedModel`` is one)."""

    fingerprint: str
    text: TextInput

    @property
    def space(self) -> SharedSpaceModel: ...

    def encode_queries(self, queries: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[bool]]: ...


@dataclass
class LossContext:
    """What a term that needs more than (output, batch) may read when it is built."""

    cfg: Any
    data: Any  # grounding.data.build.DataBundle
    device: torch.device
    train_split: str
    load_model: Callable[[str], ReferenceModel] | None = None  # a checkpoint path -> a model ready for inference


def loss_section(cfg: Any) -> dict[str, Any]:
    """The config's ``loss`` section, plus the ``compat`` term when ``compat.old_checkpoint`` is set."""
    loss = to_plain(cfg.get("loss") or {})
    compat = cfg.get("compat") or {}
    if compat.get("old_checkpoint"):
        loss["compat"] = {"weight": compat.get("weight", 1.0), "old_checkpoint": compat["old_checkpoint"],
                          "method": compat.get("method", "bct"), "params": to_plain(compat.get("params") or {})}
    return loss


def target_moments(space: SharedSpaceModel, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, E) unit embeddings of each query's target moment and of its sentence, without the cascade."""
    moments = space.embed_moments(batch.video, batch.video_mask, batch.inside > 0, batch.vid_index)
    return moments, space.embed_sentences(batch.words, batch.word_mask)


@LOSSES.register("compat")
class CompatibilityLoss(Loss):
    needs_context = True

    def __init__(self, weight: float = 1.0, old_checkpoint: str | None = None, method: str = "bct",
                 params: dict[str, Any] | None = None, context: LossContext | None = None, **_: Any) -> None:
        super().__init__(weight)
        if context is None or context.load_model is None or not old_checkpoint:
            raise GroundingError("the compat loss needs compat.old_checkpoint (and is built by the trainer)")
        old = context.load_model(old_checkpoint)
        space = old.space
        new_dim = int(context.cfg.model.get("embed_dim"))
        if space.embed_dim != new_dim:
            raise GroundingError(f"compat.old_checkpoint embeds into {space.embed_dim} dimensions, this "
                                 f"model into {new_dim}; set model.embed_dim={space.embed_dim}")
        for p in old.model.parameters():  # type: ignore[attr-defined]
            p.requires_grad_(False)
        self._old = [old]  # a list: not a submodule, so neither trained nor saved with the criterion
        self.fingerprint = old.fingerprint
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
    def old(self) -> SharedSpaceModel:
        return self._old[0].space

    def _old_batch(self, batch: Batch) -> Batch:
        """The batch with the old model's token inputs (its own vocabulary, when it differs)."""
        if self.same_text:
            return batch
        if not batch.query:
            raise GroundingError("the compat loss needs the batch's sentences to re-encode them for the old model")
        words, mask, _ = self._old[0].encode_queries(list(batch.query))
        return replace(batch, words=words.to(batch.video.device), word_mask=mask.to(batch.video.device))

    @torch.no_grad()
    def _reference(self, context: LossContext) -> OldReference:
        dataset = context.data.dataset(context.train_split)
        moments, sentences, query_moment = [], [], []
        for first in range(0, len(dataset), 64):
            batch = collate([dataset[i] for i in range(first, min(first + 64, len(dataset)))]).to(context.device)
            m, s = target_moments(self.old, self._old_batch(batch))
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
                            float(self.old.temperature))

    def forward(self, output: GroundingOutput, batch: Batch) -> torch.Tensor:
        new_moments = output.space.moments(batch.inside > 0)
        with torch.no_grad():
            self._old[0].model.eval()  # type: ignore[attr-defined]
            old_moments, old_sentences = target_moments(self.old, self._old_batch(batch))
        device = new_moments.device
        query_ids = torch.tensor([self.query_index[str(q)] for q in batch.qid], device=device)
        moment_ids = torch.tensor([self.query_moment[str(q)] for q in batch.qid], device=device)
        return self.method(new_moments, output.space.sentence, old_moments.to(new_moments.dtype),
                           old_sentences.to(new_moments.dtype), moment_ids, query_ids=query_ids)

    def compatible_with(self) -> list[str]:
        return [self.fingerprint]
