"""Language models: GPT-2 small (causal LM), BERT base (masked LM) and a small Llama-style decoder,
each returning logits of shape (batch, tokens, vocabulary) for a batch of token ids.

Configurations are those of Hugging Face transformers' defaults (``GPT2Config()``,
``BertConfig()``) and, for Llama, the one stated in ``LLAMA_SMALL``; the parameter counts equal
those of ``GPT2LMHeadModel``, ``BertForMaskedLM`` and ``LlamaForCausalLM`` (tests/test_zoo.py).
Dropout is the references' (0.1 for GPT-2 and BERT, none for Llama).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from detprof.backends.torch.zoo.attention import (
    MLP,
    PostNormBlock,
    PreNormBlock,
    SelfAttention,
    SwiGLU,
    init_transformer_weights,
)


@dataclass(frozen=True)
class DecoderConfig:
    """A decoder-only language model's sizes (``kv_heads`` below ``heads``: grouped-query attention)."""

    vocab: int
    dim: int
    layers: int
    heads: int
    hidden: int
    max_tokens: int
    kv_heads: int | None = None


GPT2_SMALL = DecoderConfig(vocab=50_257, dim=768, layers=12, heads=12, hidden=3_072, max_tokens=1_024)
BERT_BASE = DecoderConfig(vocab=30_522, dim=768, layers=12, heads=12, hidden=3_072, max_tokens=512)
LLAMA_SMALL = DecoderConfig(vocab=32_000, dim=512, layers=8, heads=8, hidden=1_408, max_tokens=2_048, kv_heads=2)


class GPT2(nn.Module):
    """GPT-2: learned positions, pre-norm blocks with causal attention, output tied to the input
    embedding."""

    def __init__(self, config: DecoderConfig = GPT2_SMALL, dropout: float = 0.1) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab, config.dim)
        self.position_embedding = nn.Embedding(config.max_tokens, config.dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            PreNormBlock(SelfAttention(config.dim, config.heads, causal=True, dropout=dropout),
                         MLP(config.dim, config.hidden, approximate="tanh"),
                         nn.LayerNorm(config.dim), nn.LayerNorm(config.dim), dropout)
            for _ in range(config.layers))
        self.final_norm = nn.LayerNorm(config.dim)
        init_transformer_weights(self)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.dropout(self.token_embedding(input_ids) + self.position_embedding(positions))
        for block in self.blocks:
            x = block(x)
        return F.linear(self.final_norm(x), self.token_embedding.weight)


class BertMaskedLM(nn.Module):
    """BERT base with its masked-LM head (dense, GELU, LayerNorm, then the tied embedding with its
    own bias); token types are all 0, as for single sentences."""

    def __init__(self, config: DecoderConfig = BERT_BASE, dropout: float = 0.1, eps: float = 1e-12) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab, config.dim)
        self.position_embedding = nn.Embedding(config.max_tokens, config.dim)
        self.type_embedding = nn.Embedding(2, config.dim)
        self.embedding_norm = nn.LayerNorm(config.dim, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(PostNormBlock(config.dim, config.heads, config.hidden, eps, dropout)
                                    for _ in range(config.layers))
        self.head_dense = nn.Linear(config.dim, config.dim)
        self.head_norm = nn.LayerNorm(config.dim, eps=eps)
        self.head_bias = nn.Parameter(torch.zeros(config.vocab))
        init_transformer_weights(self)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        types = torch.zeros_like(input_ids)
        x = self.token_embedding(input_ids) + self.position_embedding(positions) + self.type_embedding(types)
        x = self.dropout(self.embedding_norm(x))
        for block in self.blocks:
            x = block(x)
        x = self.head_norm(F.gelu(self.head_dense(x)))
        return F.linear(x, self.token_embedding.weight, self.head_bias)


class Llama(nn.Module):
    """A Llama-style decoder: RMSNorm, rotary positions, SwiGLU feed-forward, grouped-query causal
    attention without biases, and an output projection of its own (untied)."""

    def __init__(self, config: DecoderConfig = LLAMA_SMALL, eps: float = 1e-6) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab, config.dim)
        self.blocks = nn.ModuleList(
            PreNormBlock(SelfAttention(config.dim, config.heads, config.kv_heads, bias=False, causal=True,
                                       rotary=True),
                         SwiGLU(config.dim, config.hidden),
                         nn.RMSNorm(config.dim, eps=eps), nn.RMSNorm(config.dim, eps=eps))
            for _ in range(config.layers))
        self.final_norm = nn.RMSNorm(config.dim, eps=eps)
        self.output = nn.Linear(config.dim, config.vocab, bias=False)
        init_transformer_weights(self)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(input_ids)
        for block in self.blocks:
            x = block(x)
        return self.output(self.final_norm(x))


def gpt2_small(vocab: int = GPT2_SMALL.vocab) -> GPT2:
    """GPT-2 small (124,439,808 parameters at its own vocabulary)."""
    return GPT2(DecoderConfig(**{**GPT2_SMALL.__dict__, "vocab": vocab}))


def bert_base(vocab: int = BERT_BASE.vocab) -> BertMaskedLM:
    """BERT base for masked LM (109,514,298 parameters at its own vocabulary)."""
    return BertMaskedLM(DecoderConfig(**{**BERT_BASE.__dict__, "vocab": vocab}))


def llama_small(vocab: int = LLAMA_SMALL.vocab) -> Llama:
    """The small Llama-style decoder of ``LLAMA_SMALL`` (55,321,088 parameters at its own vocabulary)."""
    return Llama(DecoderConfig(**{**LLAMA_SMALL.__dict__, "vocab": vocab}))
