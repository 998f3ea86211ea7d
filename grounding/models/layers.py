"""Building blocks shared by every model, written once and parameterised.

Masks are boolean with True = a real (non-padded) element. Attention takes an optional additive
bias ``(B, Tq, Tk)`` so that the local window and the coarse-to-fine focus are plain biases.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax over ``mask``-ed entries only; fully masked rows give all zeros (never NaN)."""
    logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
    return torch.softmax(logits, dim=dim) * mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the sequence axis of ``x`` (B, T, D) using ``mask`` (B, T) -> (B, D)."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """The fixed sine/cosine position table (length, dim) of the Transformer."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention with key masking and an optional additive bias (B, Tq, Tk)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"model dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.kv_proj = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(
        self,
        query: torch.Tensor,  # (B, Tq, D)
        key: torch.Tensor,  # (B, Tk, D)
        key_mask: torch.Tensor,  # (B, Tk) bool
        bias: torch.Tensor | None = None,  # (B, Tq, Tk) additive
    ) -> torch.Tensor:
        b, tq, d = query.shape
        h = self.heads
        q = self.q_proj(query).view(b, tq, h, d // h).transpose(1, 2)
        k, v = self.kv_proj(key).view(b, key.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        neg = torch.finfo(q.dtype).min
        attn_bias = torch.zeros(b, 1, tq, key.shape[1], dtype=q.dtype, device=q.device)
        if bias is not None:
            attn_bias = (attn_bias + bias.unsqueeze(1).to(q.dtype)).clamp_min(neg)  # no -inf: no NaN rows
        attn_bias = attn_bias.masked_fill(~key_mask[:, None, None, :], neg)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, dropout_p=self.dropout if self.training else 0.0)
        return self.out(out.transpose(1, 2).reshape(b, tq, d))


class AttentionBlock(nn.Module):
    """Pre-norm (self- or cross-) attention + feed-forward, with residuals; padded queries are zeroed."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.1, ffn_mult: int = 2) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads)  # no dropout on attention weights: costly on CPU, little gain
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ffn_mult * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_mult * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,  # (B, Tq, D)
        x_mask: torch.Tensor,  # (B, Tq)
        context: torch.Tensor | None = None,  # (B, Tk, D); None = self-attention
        context_mask: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        q = self.norm_q(x)
        kv = q if context is None else self.norm_kv(context)
        kv_mask = x_mask if context is None else context_mask
        x = x + self.drop(self.attn(q, kv, kv_mask, bias))
        x = x + self.drop(self.ff(self.norm_ff(x)))
        return x * x_mask.unsqueeze(-1).to(x.dtype)


class AttentivePooling(nn.Module):
    """Pool a sequence into one vector with learned attention, optionally guided by a condition vector.

    Returns the pooled vector (B, D) and the weights (B, T), which the attention-guidance loss reads.
    """

    def __init__(self, dim: int, cond_dim: int | None = None) -> None:
        super().__init__()
        self.cond = nn.Linear(cond_dim, dim) if cond_dim else None
        self.proj = nn.Linear(dim, dim)
        self.score = nn.Linear(dim, 1)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, condition: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.proj(x)
        if self.cond is not None and condition is not None:
            hidden = hidden + self.cond(condition).unsqueeze(1)
        weights = masked_softmax(self.score(torch.tanh(hidden)).squeeze(-1), mask)
        return torch.einsum("bt,btd->bd", weights, x), weights


class MLP(nn.Module):
    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def band_bias(length: int, window: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Additive bias (T, T): 0 within ``window`` clips of the diagonal, -inf-like outside (local attention)."""
    idx = torch.arange(length, device=device)
    outside = (idx[None] - idx[:, None]).abs() > window
    return torch.zeros(length, length, device=device, dtype=dtype).masked_fill(outside, torch.finfo(dtype).min)
