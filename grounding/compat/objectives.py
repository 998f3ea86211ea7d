"""Compatibility objectives: keep a new model's embeddings usable against a frozen old model's.

These are the algorithms; ``grounding.losses.compat`` wraps them as the trainer's loss term ``compat``
(and ``grounding.studies`` trains the study's models with them).

Every loss sees one batch of B training queries, each with its moment, and gets

    new_moments, new_sentences   (B, E)  the new model's embeddings (trained)
    old_moments, old_sentences   (B, E)  the frozen old model's embeddings of the same moments/sentences
    moment_ids                   (B,)    the training moment of each query (equal ids = same moment)

and, where the caller has them, ``query_ids`` (B,) (the training query of each row: UniBCT keeps the
new model's latest embedding of every training sentence), plus, once before training (``prepare``),
an ``OldReference``: the old model's embeddings of *every*
training moment and sentence. Grounding has no class labels, so where a method needs classes (BCT,
UniBCT) **each training moment is a class** and the old model's embedding of it is that class's row of
the old classifier (as BCT builds classifier rows for new classes from old-model features). All
embeddings are unit vectors. Losses are picked by name in the config (``COMPAT_LOSSES``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from grounding.registry import Registry


@dataclass
class OldReference:
    """What the frozen old model provides before training: its view of the whole training set."""

    moments: torch.Tensor  # (M, E) old embedding of every training moment
    sentences: torch.Tensor  # (N, E) old embedding of every training sentence
    query_moment: torch.Tensor  # (N,) moment of each sentence
    temperature: float  # the old model's similarity temperature

    def to(self, device: torch.device | str) -> OldReference:
        return OldReference(self.moments.to(device), self.sentences.to(device), self.query_moment.to(device),
                            self.temperature)


def same_moment(moment_ids: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, B) bool, True where two queries of the batch describe the same moment."""
    return moment_ids[:, None] == moment_ids[None, :]


class CompatLoss(nn.Module):
    """Base class: ``prepare`` once with the old model's reference, then call on batches."""

    def prepare(self, old: OldReference) -> None:  # noqa: B027 - optional hook
        """Read what the loss needs from the old model's view of the training set."""

    def forward(self, new_moments: torch.Tensor, new_sentences: torch.Tensor, old_moments: torch.Tensor,
                old_sentences: torch.Tensor, moment_ids: torch.Tensor, query_ids: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


COMPAT_LOSSES: Registry[CompatLoss] = Registry("compatibility loss")


@COMPAT_LOSSES.register("l2")
class L2Compat(CompatLoss):
    """``||phi_n(x) - phi_o(x)||^2`` for the moment and the sentence of each query, averaged."""

    def forward(self, new_moments, new_sentences, old_moments, old_sentences, moment_ids, query_ids=None):
        moment = (new_moments - old_moments).pow(2).sum(-1).mean()
        sentence = (new_sentences - old_sentences).pow(2).sum(-1).mean()
        return (moment + sentence) / 2


@COMPAT_LOSSES.register("bct")
class InfluenceLoss(CompatLoss):
    """BCT's influence loss: the new embedding classified by the old model's fixed classifier.

    ``L = CE(W_o phi_n(x) / tau, y)`` with ``W_o`` (M, E) the old embeddings of the M training moments
    (the classes) and ``y`` the query's moment; applied to the new moment and the new sentence
    embedding. ``temperature`` null = the old model's own temperature.
    """

    def __init__(self, temperature: float | None = None) -> None:
        super().__init__()
        self.temperature = temperature
        self.register_buffer("classifier", torch.empty(0), persistent=False)
        self.tau = 1.0

    def prototypes(self, old: OldReference) -> torch.Tensor:
        return old.moments

    def prepare(self, old: OldReference) -> None:
        self.classifier = self.prototypes(old).detach()
        self.tau = float(self.temperature if self.temperature is not None else old.temperature)

    def forward(self, new_moments, new_sentences, old_moments, old_sentences, moment_ids, query_ids=None):
        if self.classifier.numel() == 0:
            raise RuntimeError(f"{type(self).__name__}.prepare(old_reference) must be called before training")
        moment = F.cross_entropy((new_moments @ self.classifier.t() / self.tau).float(), moment_ids)
        sentence = F.cross_entropy((new_sentences @ self.classifier.t() / self.tau).float(), moment_ids)
        return (moment + sentence) / 2


@COMPAT_LOSSES.register("ract")
class RegressionAlleviatingLoss(CompatLoss):
    """RACT's regression-alleviating contrastive loss.

    For an anchor ``a_i`` (the new moment embedding, and the new sentence embedding, of query i):

        L = -log  e^{a_i.o_i/tau} / ( e^{a_i.o_i/tau} + sum_k e^{a_i.o_k/tau} + sum_k e^{a_i.n_k/tau} )

    with ``o`` the old and ``n`` the new moment embeddings and k over the other moments of the batch:
    the new embedding must sit closer to the *old* embedding of its own moment than to the old **and
    the new** embeddings of any other moment, which is exactly the comparison a half-backfilled gallery
    makes. ``hardest_k`` keeps only the k most similar negatives of each kind (None = all). The defaults
    are RACT's public recipe (OpenCompatible's ``contra_ract``: tau 0.01, the 10 hardest negatives);
    ``temperature=None`` takes the old model's temperature instead (``prepare``).
    """

    def __init__(self, temperature: float | None = 0.01, hardest_k: int | None = 10) -> None:
        super().__init__()
        self.temperature = temperature
        self.hardest_k = hardest_k
        self.tau = temperature if temperature is not None else 1.0

    def prepare(self, old: OldReference) -> None:
        """``temperature`` None: the old model's own temperature (as BCT's influence loss takes it)."""
        self.tau = float(self.temperature if self.temperature is not None else old.temperature)

    def _anchor_loss(self, anchor: torch.Tensor, old_moments: torch.Tensor, new_moments: torch.Tensor,
                     same: torch.Tensor) -> torch.Tensor:
        low = torch.finfo(torch.float32).min
        positive = (anchor * old_moments).sum(-1, keepdim=True).float() / self.tau  # (B, 1)
        negatives = []
        for bank in (old_moments, new_moments):
            sim = ((anchor @ bank.t()).float() / self.tau).masked_fill(same, low)  # (B, B)
            if self.hardest_k is not None and self.hardest_k < sim.shape[1]:
                sim = sim.topk(self.hardest_k, dim=1).values
            negatives.append(sim)
        logits = torch.cat([positive, *negatives], dim=1)
        return F.cross_entropy(logits, torch.zeros(len(anchor), dtype=torch.long, device=anchor.device))

    def forward(self, new_moments, new_sentences, old_moments, old_sentences, moment_ids, query_ids=None):
        same = same_moment(moment_ids)
        moment = self._anchor_loss(new_moments, old_moments, new_moments, same)
        sentence = self._anchor_loss(new_sentences, old_moments, new_moments, same)
        return (moment + sentence) / 2


def propagate_within_classes(old_nodes: torch.Tensor, new_nodes: torch.Tensor, mask: torch.Tensor,
                             lam: float = 0.5, temperature: float = 0.1) -> torch.Tensor:
    """UniBCT's structural prototype refinement for C classes at once -> prototypes (C, E).

    ``old_nodes``/``new_nodes`` (C, K, E): the old and the new model's embeddings of up to K samples of
    each class, ``mask`` (C, K) which are real. Inside each class, the affinity ``A`` (K, K) is built
    from the *new* embeddings (softmax over the other samples of ``n_i . n_j / temperature``, zero
    diagonal, rows summing to 1); the old embeddings are propagated over it in closed form,
    ``O* = (1 - lam) (I - lam A)^-1 O``, and the prototype is the normalised mean of the refined rows.
    A sample the new model places far from the rest of its class gets little weight in the others'
    rows, so a badly embedded old sample drags its prototype less. No graph edge leaves a class.
    """
    c, k, _ = old_nodes.shape
    sim = (new_nodes.float() @ new_nodes.float().transpose(1, 2)) / temperature  # (C, K, K)
    eye = torch.eye(k, dtype=torch.bool, device=old_nodes.device)
    valid = mask[:, :, None] & mask[:, None, :] & ~eye
    sim = sim.masked_fill(~valid, float("-inf"))
    affinity = torch.softmax(sim, dim=-1).nan_to_num(0.0) * valid  # rows without a neighbour: all zero
    system = torch.eye(k, device=old_nodes.device).expand(c, k, k) - lam * affinity
    refined = (1 - lam) * torch.linalg.solve(system, old_nodes.float() * mask[..., None])  # (C, K, E)
    total = (refined * mask[..., None]).sum(1)
    return F.normalize(total, dim=-1)


@COMPAT_LOSSES.register("unibct")
class UniversalPrototypeLoss(InfluenceLoss):
    """UniBCT: BCT's influence loss against old prototypes refined inside each class during training.

    A class is a training moment; its samples are the moment and its sentences. At every step the new
    model's embeddings of the batch are written to a bank holding the latest new embedding of every
    training moment and sentence (entries not seen yet are zero: uniform affinity), and every class's
    prototype is refined from the old embeddings with ``propagate_within_classes`` on the bank's new
    embeddings of the same samples. Needs ``query_ids`` to place the sentences in the bank.
    """

    def __init__(self, temperature: float | None = None, lam: float = 0.5, graph_temperature: float = 0.1) -> None:
        super().__init__(temperature)
        if not 0 <= lam < 1:
            raise ValueError(f"unibct: lam must be in [0, 1), not {lam}")
        self.lam, self.graph_temperature = lam, graph_temperature
        for name in ("old_nodes", "bank", "members", "member_mask"):
            self.register_buffer(name, torch.empty(0), persistent=False)

    def prepare(self, old: OldReference) -> None:
        super().prepare(old)  # the plain old prototypes until the first step refines them
        num_moments = len(old.moments)
        self.old_nodes = F.normalize(torch.cat([old.moments, old.sentences]).float(), dim=-1).detach()
        self.bank = torch.zeros_like(self.old_nodes)
        query_moment = old.query_moment.to(old.moments.device)
        order = torch.argsort(query_moment, stable=True)
        counts = torch.bincount(query_moment, minlength=num_moments)
        width = 1 + int(counts.max()) if len(counts) else 1
        members = torch.zeros(num_moments, width, dtype=torch.long, device=old.moments.device)
        mask = torch.zeros(num_moments, width, dtype=torch.bool, device=old.moments.device)
        members[:, 0], mask[:, 0] = torch.arange(num_moments, device=old.moments.device), True  # the moment itself
        start = torch.cumsum(counts, 0) - counts
        slot = torch.arange(len(order), device=old.moments.device) - start[query_moment[order]]
        members[query_moment[order], 1 + slot] = num_moments + order  # its sentences, after the moments
        mask[query_moment[order], 1 + slot] = True
        self.members, self.member_mask = members, mask

    def refined(self) -> torch.Tensor:
        """The prototypes (M, E) from the current bank of new embeddings."""
        return propagate_within_classes(self.old_nodes[self.members], self.bank[self.members], self.member_mask,
                                        self.lam, self.graph_temperature)

    def forward(self, new_moments, new_sentences, old_moments, old_sentences, moment_ids, query_ids=None):
        if self.bank.numel() == 0:
            raise RuntimeError("UniversalPrototypeLoss.prepare(old_reference) must be called before training")
        if query_ids is None:
            raise ValueError("unibct needs query_ids (the training query of each row) to refine prototypes")
        with torch.no_grad():
            self.bank[moment_ids] = F.normalize(new_moments.detach().float(), dim=-1)
            self.bank[len(self.classifier) + query_ids] = F.normalize(new_sentences.detach().float(), dim=-1)
            self.classifier = self.refined()
        return super().forward(new_moments, new_sentences, old_moments, old_sentences, moment_ids)


def build_compat_loss(name: str | None, params: dict | None = None) -> CompatLoss | None:
    """The loss registered as ``name`` with ``params`` from the config; None for no compatibility loss."""
    if name is None:
        return None
    return COMPAT_LOSSES.get(name)(**(params or {}))
