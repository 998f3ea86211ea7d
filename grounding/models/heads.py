"""Per-clip prediction heads and the soft span they imply."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from grounding.models.layers import dropout, masked_softmax


class BoundaryHeads(nn.Module):
    """Start, end and inside-moment (relevance) logits per clip (B, T); padded clips are never chosen."""

    def __init__(self, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.hidden = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, 3)  # start, end, inside
        self.p = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(start, end, inside) logits, each (B, T)."""
        hidden = F.gelu(self.hidden(dropout(self.norm(x), self.p, self.training)))
        logits = self.out(hidden).float().masked_fill(~mask.unsqueeze(-1), torch.finfo(torch.float32).min)
        start, end, inside = logits.unbind(-1)
        return start, end, inside


class SaliencyHead(nn.Module):
    """Per-clip saliency logits (B, T) from query-aware clip tokens: how much each clip shows the query
    (QVHighlights' highlight scores), trained by the ``saliency`` ranking loss; padded clips never rank."""

    def __init__(self, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.hidden = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, 1)
        self.p = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = F.gelu(self.hidden(dropout(self.norm(x), self.p, self.training)))
        return self.out(hidden).squeeze(-1).float().masked_fill(~mask, torch.finfo(torch.float32).min)


def expected_span(start_logits: torch.Tensor, end_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Differentiable span (B, 2) in [0, 1]: expected start boundary t/T and end boundary (t+1)/T."""
    num = mask.sum(1, keepdim=True).clamp_min(1).to(start_logits.dtype)
    pos = torch.arange(mask.shape[1], device=mask.device, dtype=start_logits.dtype)[None]
    p_start, p_end = masked_softmax(start_logits, mask), masked_softmax(end_logits, mask)
    return torch.stack([(p_start * pos).sum(1) / num.squeeze(1), (p_end * (pos + 1)).sum(1) / num.squeeze(1)], dim=1)


def inside_probability(start_logits: torch.Tensor, end_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """P(start <= t <= end) per clip (B, T) under independent start/end distributions."""
    p_start, p_end = masked_softmax(start_logits, mask), masked_softmax(end_logits, mask)
    started = p_start.cumsum(1)
    not_ended = (p_end.flip(1).cumsum(1)).flip(1)
    return started * not_ended * mask
