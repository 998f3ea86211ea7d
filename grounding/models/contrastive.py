"""InfoNCE, the one contrastive objective of the shared embedding space.

It lives beside the space (``grounding.models.embedding``) rather than in ``grounding.losses`` because
two floors use it: CCMAN's alignment losses and the compatibility algorithms (``grounding.compat``,
which sit below the losses).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(queries: torch.Tensor, items: torch.Tensor, temperature: float | torch.Tensor,
             same: torch.Tensor | None = None, symmetric: bool = True) -> torch.Tensor:
    """InfoNCE between row i of ``queries`` and row i of ``items`` (B, E): other rows are negatives,
    except the off-diagonal pairs ``same`` (B, B) marks (e.g. the same moment or the same video), which
    are neither positive nor negative. ``symmetric`` averages both directions (text->video, video->text):
    ``L = (CE(S, I) + CE(S^T, I)) / 2`` with ``S_ij = <q_i, v_j> / tau``."""
    sim = (queries @ items.t() / temperature).float()  # (B, B)
    if same is not None:
        off_diagonal = same & ~torch.eye(len(same), dtype=torch.bool, device=same.device)
        sim = sim.masked_fill(off_diagonal, torch.finfo(sim.dtype).min)
    target = torch.arange(sim.shape[0], device=sim.device)
    loss = F.cross_entropy(sim, target)
    return (loss + F.cross_entropy(sim.t(), target)) / 2 if symmetric else loss
