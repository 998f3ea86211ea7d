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


class FeedForward(nn.Module):
    """Linear -> activation -> dropout -> Linear: ReLU (Moment-DETR) or a learnt-slope PReLU (QD-DETR's layers)."""

    def __init__(self, dim: int, ffn_dim: int, p: float, activation: str = "relu") -> None:
        super().__init__()
        if activation not in ("relu", "prelu"):
            raise ValueError(f"activation '{activation}' is not relu or prelu")
        self.ff_in, self.ff_out = nn.Linear(dim, ffn_dim), nn.Linear(ffn_dim, dim)
        self.act = nn.PReLU() if activation == "prelu" else nn.ReLU()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff_out(dropout(self.act(self.ff_in(x)), self.p, self.training))


class DetrLayer(nn.Module):
    """Post-norm transformer layer: [self-attention] -> [cross-attention to a memory] -> feed-forward.

    An encoder layer has self-attention only, a decoder layer both, QD-DETR's text-to-video layer only
    cross-attention (clips attend to words). Positions are added to queries and keys, never to values.
    ``t2v_residual``: the feed-forward's residual starts from the attention sum *before* its norm, as QD-DETR's
    text-to-video layer has it: ``norm(h + ffn(norm(h)))`` with ``h = x + attention``.
    """

    def __init__(self, dim: int, heads: int, ffn_dim: int, p: float, self_attn: bool = True,
                 cross_attn: bool = False, activation: str = "relu", t2v_residual: bool = False) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=p, batch_first=True) if self_attn else None
        self.norm_self = nn.LayerNorm(dim) if self_attn else None
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=p, batch_first=True) if cross_attn else None
        self.norm_cross = nn.LayerNorm(dim) if cross_attn else None
        self.ffn = FeedForward(dim, ffn_dim, p, activation)
        self.norm_ff = nn.LayerNorm(dim)
        self.p = p
        self.t2v_residual = t2v_residual

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
            summed = x + dropout(attended, self.p, self.training)
            x = self.norm_cross(summed)
            if self.t2v_residual:
                return self.norm_ff(summed + dropout(self.ffn(x), self.p, self.training))
        return self.norm_ff(x + dropout(self.ffn(x), self.p, self.training))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, key_mask: torch.Tensor | None,
           p: float, training: bool) -> torch.Tensor:
    """Multi-head attention of already projected (B, Tq, Dq), (B, Tk, Dq), (B, Tk, Dv) -> (B, Tq, Dv), scaled by
    the query head width; ``key_mask`` (B, Tk) True = real."""
    b, tq, tk = q.shape[0], q.shape[1], k.shape[1]
    split = lambda x, t: x.reshape(b, t, heads, -1).transpose(1, 2)  # noqa: E731
    mask = None if key_mask is None else key_mask[:, None, None, :]
    out = F.scaled_dot_product_attention(split(q, tq), split(k, tk), split(v, tk), attn_mask=mask,
                                         dropout_p=p if training else 0.0)
    return out.transpose(1, 2).reshape(b, tq, -1)


class AnchorDecoderLayer(nn.Module):
    """QD-DETR's (DAB-DETR's) decoder layer: self-attention with the anchor's position embedding added, then a
    *conditional* cross-attention whose queries and keys are, per head, [content; position]: the query's
    position is its anchor's (scaled) sine embedding, a key's its clip's sine position; only the first layer
    also adds the position embedding to the content. Every projection is explicit (none inside attention)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, p: float, first: bool, activation: str = "prelu") -> None:
        super().__init__()
        linear = lambda: nn.Linear(dim, dim)  # noqa: E731
        self.sa_q, self.sa_qpos, self.sa_k, self.sa_kpos, self.sa_v, self.sa_out = (linear() for _ in range(6))
        self.ca_q, self.ca_k, self.ca_kpos, self.ca_v, self.ca_qsine, self.ca_out = (linear() for _ in range(6))
        self.ca_qpos = linear() if first else None
        self.norm_self, self.norm_cross, self.norm_ff = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_dim, p, activation)
        self.heads, self.p = heads, p

    def forward(self, x: torch.Tensor, query_pos: torch.Tensor, query_sine: torch.Tensor, memory: torch.Tensor,
                memory_pos: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        h, train = self.heads, self.training
        q, k = self.sa_q(x) + self.sa_qpos(query_pos), self.sa_k(x) + self.sa_kpos(query_pos)
        x = self.norm_self(x + dropout(self.sa_out(attend(q, k, self.sa_v(x), h, None, self.p, train)), self.p, train))
        q, k, k_pos = self.ca_q(x), self.ca_k(memory), self.ca_kpos(memory_pos).expand_as(memory)
        if self.ca_qpos is not None:
            q, k = q + self.ca_qpos(query_pos), k + k_pos
        b, nq, tk, d = len(x), x.shape[1], memory.shape[1], x.shape[2]
        q = torch.cat([q.reshape(b, nq, h, -1), self.ca_qsine(query_sine).reshape(b, nq, h, -1)], -1).reshape(b, nq, 2 * d)
        k = torch.cat([k.reshape(b, tk, h, -1), k_pos.reshape(b, tk, h, -1)], -1).reshape(b, tk, 2 * d)
        attended = self.ca_out(attend(q, k, self.ca_v(memory), h, memory_mask, self.p, train))
        x = self.norm_cross(x + dropout(attended, self.p, train))
        return self.norm_ff(x + dropout(self.ffn(x), self.p, train))
