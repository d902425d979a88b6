"""The attention and transformer blocks the zoo's transformers share. Attention always goes through
``torch.nn.functional.scaled_dot_product_attention``, so that the backend chosen with
``--sdpa-backend`` (detprof.modes) decides which kernel runs, as it does in users' own models.

Parameter layouts follow the reference implementations closely enough that the counts are equal
(one fused query/key/value projection has the same count as three separate ones).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class Rotary(nn.Module):
    """Rotary position embeddings (RoFormer, as Llama applies them): each pair of feature halves of
    a head is rotated by an angle that grows with the position. Holds no parameters."""

    inverse_frequency: torch.Tensor

    def __init__(self, head_dim: int, base: float = 10_000.0) -> None:
        super().__init__()
        inverse = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inverse_frequency", inverse, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` of shape (batch, heads, tokens, head_dim), rotated by position."""
        positions = torch.arange(x.shape[-2], device=x.device, dtype=torch.float32)
        angles = torch.outer(positions, self.inverse_frequency.to(x.device))
        angles = torch.cat((angles, angles), dim=-1)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        first, second = x.chunk(2, dim=-1)
        return x * cos + torch.cat((-second, first), dim=-1) * sin


class SelfAttention(nn.Module):
    """Multi-head (or grouped-query, with fewer key/value heads) self-attention through SDPA."""

    def __init__(self, dim: int, heads: int, kv_heads: int | None = None, bias: bool = True,
                 causal: bool = False, rotary: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.kv_heads = heads, kv_heads or heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, (self.heads + 2 * self.kv_heads) * self.head_dim, bias=bias)
        self.out = nn.Linear(dim, dim, bias=bias)
        self.causal, self.dropout = causal, dropout
        self.rotary = Rotary(self.head_dim) if rotary else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).split([self.heads * self.head_dim, self.kv_heads * self.head_dim,
                                     self.kv_heads * self.head_dim], dim=-1)
        q = q.view(batch, tokens, self.heads, self.head_dim).transpose(1, 2)
        k = k.view(batch, tokens, self.kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(batch, tokens, self.kv_heads, self.head_dim).transpose(1, 2)
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        if self.kv_heads != self.heads:  # grouped-query: each key/value head serves a group of query heads
            k = k.repeat_interleave(self.heads // self.kv_heads, dim=1)
            v = v.repeat_interleave(self.heads // self.kv_heads, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(batch, tokens, dim))


class MLP(nn.Module):
    """Two linear layers around a GELU (``approximate`` "tanh" is GPT-2's gelu_new)."""

    def __init__(self, dim: int, hidden: int, approximate: str = "none") -> None:
        super().__init__()
        self.up, self.down = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x), approximate=self.approximate))


class SwiGLU(nn.Module):
    """Llama's feed-forward: down(silu(gate(x)) * up(x)), no biases."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class PreNormBlock(nn.Module):
    """x + attention(norm(x)), then x + feed-forward(norm(x)): GPT-2, ViT and Llama."""

    def __init__(self, attention: nn.Module, feed_forward: nn.Module, norm1: nn.Module, norm2: nn.Module,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1, self.attention, self.norm2, self.feed_forward = norm1, attention, norm2, feed_forward
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.norm1(x)))
        return x + self.dropout(self.feed_forward(self.norm2(x)))


class PostNormBlock(nn.Module):
    """norm(x + attention(x)), then norm(x + feed-forward(x)): BERT."""

    def __init__(self, dim: int, heads: int, hidden: int, eps: float, dropout: float) -> None:
        super().__init__()
        self.attention = SelfAttention(dim, heads, dropout=dropout)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.feed_forward = MLP(dim, hidden)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.attention(x)))
        return self.norm2(x + self.dropout(self.feed_forward(x)))


def sinusoidal_embedding(values: torch.Tensor, dim: int) -> torch.Tensor:
    """(batch, dim) sinusoidal features of a batch of scalars (a diffusion timestep)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, device=values.device) / half)
    angles = values.float()[:, None] * frequencies[None]
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


def init_transformer_weights(model: nn.Module, std: float = 0.02) -> None:
    """The references' initialisation: normal weights of standard deviation ``std`` for linear
    layers and embeddings, zero biases (PyTorch's default N(0, 1) embeddings, tied to the output,
    would start a language model with enormous logits)."""
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
