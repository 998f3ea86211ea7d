"""The parts of the DETR-family grounders (Moment-DETR, QD-DETR), each written once.

They follow DETR's conventions rather than the rest of the package's (``layers.py``): post-norm layers,
positions added to attention queries and keys but never to values, ReLU feed-forwards, and input
projections of LayerNorm -> dropout -> Linear -> ReLU. Masks are True on real elements, as everywhere.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from grounding.models.layers import dropout


def sine_positions(mask: torch.Tensor, dim: int) -> torch.Tensor:
    """(B, T, dim) sine/cosine positions of the real clips, normalised to the video: clip t of n sits at
    ``2 pi (t + 1) / n``, so every video spans the same phase range whatever its length."""
    steps = mask.float().cumsum(1)
    steps = steps / (steps[:, -1:] + 1e-6) * 2 * math.pi
    return sine_embed(steps, dim)


def sine_embed(values: torch.Tensor, dim: int) -> torch.Tensor:
    """(..) scalars -> (.., dim): interleaved sin/cos at wavelengths 10000^(2i/dim) (DETR's sine embedding)."""
    freq = 10000 ** (2 * (torch.arange(dim, device=values.device) // 2) / dim)
    angles = values[..., None] / freq
    return torch.stack([angles[..., 0::2].sin(), angles[..., 1::2].cos()], dim=-1).flatten(-2)


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    x = x.clamp(0, 1)
    return torch.log(x.clamp_min(eps) / (1 - x).clamp_min(eps))


class ProjectionStack(nn.Module):
    """``layers`` x (LayerNorm -> dropout -> Linear [-> ReLU, except the last]): inputs into the model width."""

    def __init__(self, in_dim: int, dim: int, layers: int, p: float) -> None:
        super().__init__()
        dims = [in_dim] + [dim] * layers
        self.norms = nn.ModuleList(nn.LayerNorm(d) for d in dims[:-1])
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (norm, linear) in enumerate(zip(self.norms, self.linears, strict=True)):
            x = linear(dropout(norm(x), self.p, self.training))
            x = F.relu(x) if i < len(self.linears) - 1 else x
        return x


class MLP(nn.Module):
    """``layers`` linear layers with ReLU between them (DETR's span head)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, linear in enumerate(self.linears):
            x = linear(x)
            x = F.relu(x) if i < len(self.linears) - 1 else x
        return x


class DetrLayer(nn.Module):
    """Post-norm transformer layer: [self-attention] -> [cross-attention to a memory] -> feed-forward.

    An encoder layer has self-attention only, a decoder layer both, QD-DETR's text-to-video layer only
    cross-attention (clips attend to words). Positions are added to queries and keys, never to values.
    """

    def __init__(self, dim: int, heads: int, ffn_dim: int, p: float, self_attn: bool = True,
                 cross_attn: bool = False) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=p, batch_first=True) if self_attn else None
        self.norm_self = nn.LayerNorm(dim) if self_attn else None
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=p, batch_first=True) if cross_attn else None
        self.norm_cross = nn.LayerNorm(dim) if cross_attn else None
        self.ff_in, self.ff_out = nn.Linear(dim, ffn_dim), nn.Linear(ffn_dim, dim)
        self.norm_ff = nn.LayerNorm(dim)
        self.p = p

    def forward(
        self,
        x: torch.Tensor,  # (B, Tq, D)
        pos: torch.Tensor | None,  # (B or 1, Tq, D)
        mask: torch.Tensor | None,  # (B, Tq) True = real; None = no padding
        memory: torch.Tensor | None = None,  # (B, Tk, D)
        memory_pos: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.self_attn is not None:
            q = x if pos is None else x + pos
            attended = self.self_attn(q, q, x, key_padding_mask=None if mask is None else ~mask, need_weights=False)[0]
            x = self.norm_self(x + dropout(attended, self.p, self.training))
        if self.cross_attn is not None:
            q = x if pos is None else x + pos
            k = memory if memory_pos is None else memory + memory_pos
            attended = self.cross_attn(q, k, memory, key_padding_mask=~memory_mask, need_weights=False)[0]
            x = self.norm_cross(x + dropout(attended, self.p, self.training))
        hidden = dropout(F.relu(self.ff_in(x)), self.p, self.training)
        return self.norm_ff(x + dropout(self.ff_out(hidden), self.p, self.training))
