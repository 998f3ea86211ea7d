"""Building blocks shared by every model, written once and parameterised.

Masks are boolean with True = a real (non-padded) element. Attention takes an optional additive
bias ``(B, Tq, Tk)`` so that the local window and the coarse-to-fine focus are plain biases.

The blocks are written for speed on small shapes (``docs/performance.md``): on a CPU, a CCMAN
forward pass at batch 1 is dominated by the Python cost of each call, so the blocks call functions
rather than nested ``nn.Sequential``/``nn.Dropout`` modules, project self-attention's q, k and v with
one matrix product, and read position tables and local-window biases from buffers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

TABLE_LENGTH = 512  # position tables and window biases are precomputed up to this many steps


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax over ``mask``-ed entries only; fully masked rows give all zeros (never NaN)."""
    logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
    return torch.softmax(logits, dim=dim) * mask


def cpu_dropout_keep(x: torch.Tensor, p: float) -> tuple[torch.Tensor, float]:
    """A CPU dropout mask for ``x`` (True = kept) and the scale of kept values, ``1 / (1 - p')``.

    Why not ``F.dropout``: the CPU generator draws one 32-bit number per element, and with 37 dropout
    sites that was 29 % of a CCMAN training step on a 2-core CPU. Here one 64-bit draw gives 8 mask
    bytes, each keeping its 7 low random bits (the top byte of a draw has only 7), so the drop rate
    ``p'`` is ``p`` rounded to a multiple of 1/128 (0.1 -> 0.1016); the scale keeps the expectation exact.
    """
    threshold = round(p * 128)
    n = x.numel()
    words = torch.empty((n + 7) // 8, dtype=torch.int64).random_()  # 63 random bits each
    keep = (words.view(torch.uint8)[:n].view(x.shape) & 0x7F) >= threshold
    return keep, 128 / (128 - threshold)


def _use_cpu_mask(x: torch.Tensor, p: float) -> bool:
    return x.device.type == "cpu" and 0 < round(p * 128) < 128


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout`` on GPUs; on the CPU, a cheaper mask (see ``cpu_dropout_keep``)."""
    if not training or p <= 0.0:
        return x
    if _use_cpu_mask(x, p):
        keep, scale = cpu_dropout_keep(x, p)
        return x * keep.to(x.dtype).mul_(scale)
    return F.dropout(x, p, True)


def residual_dropout(x: torch.Tensor, branch: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``x + dropout(branch)``, on the CPU as one fused multiply-add."""
    if training and _use_cpu_mask(branch, p):
        keep, scale = cpu_dropout_keep(branch, p)
        return torch.addcmul(x, branch, keep.to(branch.dtype), value=scale)
    return x + dropout(branch, p, training)


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """The fixed sine/cosine position table (length, dim) of the Transformer."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


class SinusoidalPositions(nn.Module):
    """Adds the sinusoidal table to (B, T, D), read from a buffer up to ``TABLE_LENGTH`` steps."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("table", sinusoidal_positions(TABLE_LENGTH, dim), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        table = self.table[:length] if length <= TABLE_LENGTH else sinusoidal_positions(length, self.dim, x.device)
        return x + table.to(x.dtype)


def band_bias(length: int, window: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Additive bias (T, T): 0 within ``window`` clips of the diagonal, -inf-like outside (local attention)."""
    idx = torch.arange(length, device=device)
    outside = (idx[None] - idx[:, None]).abs() > window
    return torch.zeros(length, length, device=device, dtype=dtype).masked_fill(outside, torch.finfo(dtype).min)


class BandBias(nn.Module):
    """``band_bias`` for a fixed window, sliced from a buffer up to ``TABLE_LENGTH`` clips."""

    def __init__(self, window: int) -> None:
        super().__init__()
        self.window = window
        self.register_buffer("table", band_bias(TABLE_LENGTH, window, torch.device("cpu")), persistent=False)

    def forward(self, length: int) -> torch.Tensor:
        if length > TABLE_LENGTH:
            return band_bias(length, self.window, self.table.device)
        return self.table[:length, :length]


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention with key masking and an optional additive bias (B, Tq, Tk).

    q, k and v come from one (3D, D) projection: one matrix product for self-attention, two
    (q from the query, k and v from the context) for cross-attention.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"model dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.in_proj = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self,
        query: torch.Tensor,  # (B, Tq, D)
        key: torch.Tensor | None,  # (B, Tk, D); None = self-attention on ``query``
        key_mask: torch.Tensor,  # (B, Tk) bool
        bias: torch.Tensor | None = None,  # (B, Tq, Tk) additive, already -inf-like on padded keys
    ) -> torch.Tensor:
        b, tq, d = query.shape
        h = self.heads
        if key is None:
            q, k, v = self.in_proj(query).view(b, tq, 3, h, d // h).permute(2, 0, 3, 1, 4)
        else:
            weight, b_in = self.in_proj.weight, self.in_proj.bias
            q = F.linear(query, weight[:d], b_in[:d]).view(b, tq, h, d // h).transpose(1, 2)
            k, v = F.linear(key, weight[d:], b_in[d:]).view(b, key.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        if bias is None:
            mask = torch.where(key_mask[:, None, None, :], 0.0, torch.finfo(q.dtype).min).to(q.dtype)
        else:
            mask = bias.unsqueeze(1).to(q.dtype)
            if bias.dtype != q.dtype:  # under bf16/fp16 autocast the fp32 minimum would become -inf
                mask = mask.clamp_min(torch.finfo(q.dtype).min)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(out.transpose(1, 2).reshape(b, tq, d))


class AttentionBlock(nn.Module):
    """Pre-norm (self- or cross-) attention + feed-forward, with residuals.

    No dropout on the attention weights (costly on the CPU, little gain); dropout on the feed-forward
    hidden layer and on both residual branches. Padded query positions are *not* zeroed here (every
    attention masks padded keys, so they never reach a real position); the encoders and stages zero
    them once on output.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.1, ffn_mult: int = 2) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff_in = nn.Linear(dim, ffn_mult * dim)
        self.ff_out = nn.Linear(ffn_mult * dim, dim)
        self.p = dropout

    def forward(
        self,
        x: torch.Tensor,  # (B, Tq, D)
        x_mask: torch.Tensor,  # (B, Tq)
        context: torch.Tensor | None = None,  # (B, Tk, D); None = self-attention
        context_mask: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,  # (B, Tq, Tk), must already mask padded keys
    ) -> torch.Tensor:
        q = self.norm_q(x)
        if context is None:
            attended = self.attn(q, None, x_mask, bias)
        else:
            attended = self.attn(q, self.norm_kv(context), context_mask, bias)
        x = residual_dropout(x, attended, self.p, self.training)
        hidden = dropout(F.gelu(self.ff_in(self.norm_ff(x))), self.p, self.training)
        return residual_dropout(x, self.ff_out(hidden), self.p, self.training)


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
        return torch.bmm(weights.unsqueeze(1), x).squeeze(1), weights


class MLP(nn.Module):
    """Linear -> GELU -> dropout -> Linear."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)
        self.p = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(dropout(F.gelu(self.fc1(x)), self.p, self.training))


class InputProjection(nn.Module):
    """Linear -> LayerNorm -> dropout: raw features or word vectors into the model dimension."""

    def __init__(self, in_dim: int, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.p = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(self.norm(self.linear(x)), self.p, self.training)


class GlobalFusion(nn.Module):
    """x_i <- LayerNorm(x_i + MLP([x_i; g; x_i * g])): every element sees one global vector g."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.mlp = MLP(3 * dim, dim, dim, dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        g = g.unsqueeze(1).expand_as(x)
        return self.norm(x + self.mlp(torch.cat([x, g, x * g], dim=-1))) * mask.unsqueeze(-1).to(x.dtype)
