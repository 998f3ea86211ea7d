"""The forward adapter of bidirectional compatible training (BiCT): old gallery embeddings -> new space.

A deployed gallery keeps only embeddings; the raw videos may be gone (privacy, storage) or too costly
to re-read. The adapter ``psi`` upgrades the stored old embeddings directly: ``psi(o)`` should
retrieve like the new model's own embedding of the same moment. It is a linear map plus a residual
two-layer MLP branch whose last layer starts at zero (so it starts as a linear map, the identity where
the dims agree), and it is trained with

    L_fwd = align_weight * ||psi(o_m) - n_m||^2 + contrast_weight * InfoNCE(n_s, psi(o_m))

(``n_m``/``n_s`` the new model's moment/sentence embeddings): close to the new embedding of its moment,
and found by the new model's sentences among the other adapted moments.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from grounding.compat.objectives import same_moment
from grounding.models.contrastive import info_nce
from grounding.schedule import warmup_decay


class ForwardAdapter(nn.Module):
    def __init__(self, old_dim: int, new_dim: int, hidden: int = 256, normalize: bool = True) -> None:
        super().__init__()
        self.normalize = normalize
        self.linear = nn.Linear(old_dim, new_dim)
        self.branch = nn.Sequential(nn.Linear(old_dim, hidden), nn.GELU(), nn.Linear(hidden, new_dim))
        nn.init.zeros_(self.branch[-1].weight)
        nn.init.zeros_(self.branch[-1].bias)
        if old_dim == new_dim:
            nn.init.eye_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)

    def forward(self, old: torch.Tensor) -> torch.Tensor:  # (..., E_old) -> (..., E_new)
        out = self.linear(old) + self.branch(old)
        return F.normalize(out, dim=-1) if self.normalize else out


def forward_loss(adapted: torch.Tensor, new_moments: torch.Tensor, new_sentences: torch.Tensor | None = None,
                 same: torch.Tensor | None = None, temperature: float = 0.05, align_weight: float = 1.0,
                 contrast_weight: float = 1.0) -> torch.Tensor:
    """``L_fwd`` for a batch: adapted old moments, new moments (B, E) and, optionally, new sentences (B, E)."""
    loss = align_weight * (adapted - new_moments).pow(2).sum(-1).mean()
    if new_sentences is not None and contrast_weight:
        loss = loss + contrast_weight * info_nce(new_sentences, adapted, temperature, same)
    return loss


def fit_adapter(adapter: ForwardAdapter, old_moments: torch.Tensor, new_moments: torch.Tensor,
                new_sentences: torch.Tensor | None = None, query_moment: torch.Tensor | None = None,
                epochs: int = 40, lr: float = 1e-3, batch_size: int = 256, weight_decay: float = 0.0,
                temperature: float = 0.05, align_weight: float = 1.0, contrast_weight: float = 1.0,
                seed: int = 0) -> list[float]:
    """Train ``adapter`` on fixed embeddings (new model frozen); returns the mean loss of each epoch.

    With sentences (N, E) and their moments (N,), batches are queries (alignment + contrast); without,
    batches are moments (alignment only).
    """
    device = next(adapter.parameters()).device
    old_moments, new_moments = old_moments.to(device), new_moments.to(device)
    by_query = new_sentences is not None and query_moment is not None
    if by_query:
        new_sentences, query_moment = new_sentences.to(device), query_moment.to(device)  # type: ignore[union-attr]
    count = len(query_moment) if by_query else len(old_moments)  # type: ignore[arg-type]
    steps = math.ceil(count / batch_size)
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = warmup_decay(optimizer, steps * epochs, steps, "cosine")
    generator = torch.Generator().manual_seed(seed)
    adapter.train()
    history = []
    for _ in range(epochs):
        total = 0.0
        for index in torch.randperm(count, generator=generator).split(batch_size):
            index = index.to(device)
            moment = query_moment[index] if by_query else index  # type: ignore[index]
            adapted = adapter(old_moments[moment])
            loss = forward_loss(adapted, new_moments[moment], new_sentences[index] if by_query else None,  # type: ignore[index]
                                same_moment(moment), temperature, align_weight, contrast_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(index)
        history.append(total / count)
    adapter.eval()
    return history
