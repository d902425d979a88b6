"""Causal language models with known answers for the inference grid's tests: ``lookup`` reads each
token's logits from a table (no reduction anywhere, so nothing can depend on the batch, the
padding or the cache: every such row must be bitwise equal, on any CPU); the others add 1e-3 times
one thing to every logit, so that exactly the rows that change that thing must see it (the argmax
never moves): ``batch_dependent`` the batch size, ``length_dependent`` the tokens of the forward
(padding, the KV cache and chunked prefill change it; the batch and its order do not),
``threads_dependent`` the CPU thread count, ``compile_dependent`` whether Dynamo is tracing it
(true only in a compiled graph); ``never_compiled`` is a lookup Dynamo is told to skip, so that a
"compiled" decoding of it runs eagerly and could not differ."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn


class Lookup(nn.Module):
    """Logits of a token = one row of a table, plus ``per_batch_row`` times the batch size."""

    def __init__(self, vocab: int, per_batch_row: float = 0.0, per_token: float = 0.0,
                 per_thread: float = 0.0, per_compile: float = 0.0) -> None:
        super().__init__()
        self.table = nn.Embedding(vocab, vocab)
        self.per_batch_row, self.per_token, self.per_thread = per_batch_row, per_token, per_thread
        self.per_compile = per_compile

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, past_key_values: object = None,
                use_cache: bool = False) -> SimpleNamespace:
        logits = self.table(input_ids) + self.per_batch_row * input_ids.shape[0] + \
            self.per_token * input_ids.shape[1] + self.per_thread * torch.get_num_threads()
        if self.per_compile and torch.compiler.is_compiling():
            logits = logits + self.per_compile
        return SimpleNamespace(logits=logits, past_key_values=past_key_values)


def lookup(vocab: int) -> Lookup:
    return Lookup(vocab)


def batch_dependent(vocab: int) -> Lookup:
    return Lookup(vocab, per_batch_row=1e-3)


def length_dependent(vocab: int) -> Lookup:
    return Lookup(vocab, per_token=1e-3)


def threads_dependent(vocab: int) -> Lookup:
    return Lookup(vocab, per_thread=1e-3)


def compile_dependent(vocab: int) -> Lookup:
    return Lookup(vocab, per_compile=1e-3)


class NeverCompiled(Lookup):
    @torch.compiler.disable
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, past_key_values: object = None,
                use_cache: bool = False) -> SimpleNamespace:
        return super().forward(input_ids, attention_mask, position_ids, past_key_values, use_cache)


def never_compiled(vocab: int) -> Lookup:
    return NeverCompiled(vocab)


class Unpooling(Lookup):
    """The lookup's logits passed through max-pool and max-unpool of width 1 (the same values back): an
    op PyTorch says has no deterministic implementation, on any device."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, past_key_values: object = None,
                use_cache: bool = False) -> SimpleNamespace:
        out = super().forward(input_ids, attention_mask, position_ids, past_key_values, use_cache)
        flat = out.logits.reshape(-1, 1, out.logits.shape[-1])
        pooled, indices = torch.nn.functional.max_pool1d(flat, 1, return_indices=True)
        out.logits = torch.nn.functional.max_unpool1d(pooled, indices, 1).reshape(out.logits.shape)
        return out


def unpooling(vocab: int) -> Lookup:
    return Unpooling(vocab)


class Offset(Lookup):
    """The lookup plus ``offset`` on every logit."""

    def __init__(self, vocab: int, offset: float) -> None:
        super().__init__(vocab)
        self.offset = offset

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, past_key_values: object = None,
                use_cache: bool = False) -> SimpleNamespace:
        out = super().forward(input_ids, attention_mask, position_ids, past_key_values, use_cache)
        out.logits = out.logits + self.offset
        return out


def run_dependent(vocab: int) -> Lookup:
    """The lookup plus 1e-3 times a number from the operating system's entropy pool, drawn when the model
    is built: each process decodes alike all through, and no two processes alike."""
    return Offset(vocab, 1e-3 * int.from_bytes(os.urandom(4), "little") / 2**32)


def differs_in_one_process(vocab: int) -> Lookup:
    """1e-3 added in the third process that builds it (counted in the file DETPROF_TEST_COUNTER names: the
    probe of the model, the grid's first process, its second, then any others), so the run row differs
    and two later processes agree."""
    counter = Path(os.environ["DETPROF_TEST_COUNTER"])
    built = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(built + 1))
    return Offset(vocab, 1e-3 if built == 2 else 0.0)


class PositionDependent(Lookup):
    """The lookup plus 1e-3 times each prompt's row in its batch."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, past_key_values: object = None,
                use_cache: bool = False) -> SimpleNamespace:
        out = super().forward(input_ids, attention_mask, position_ids, past_key_values, use_cache)
        rows = torch.arange(input_ids.shape[0], dtype=out.logits.dtype)[:, None, None]
        out.logits = out.logits + 1e-3 * rows
        return out


def position_dependent(vocab: int) -> Lookup:
    return PositionDependent(vocab)


class SwitchesAttention(Lookup):
    """The lookup with a Hugging Face style attention switch (``set_attn_implementation``), plus
    ``per_eager`` on every logit under eager attention."""

    def __init__(self, vocab: int, per_eager: float) -> None:
        super().__init__(vocab)
        self.attention = "sdpa"
        self.per_eager = per_eager

    def set_attn_implementation(self, name: str) -> None:
        self.attention = name

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, past_key_values: object = None,
                use_cache: bool = False) -> SimpleNamespace:
        out = super().forward(input_ids, attention_mask, position_ids, past_key_values, use_cache)
        if self.attention == "eager":
            out.logits = out.logits + self.per_eager
        return out


def attention_switch(vocab: int) -> Lookup:
    return SwitchesAttention(vocab, 0.0)


def attention_dependent(vocab: int) -> Lookup:
    return SwitchesAttention(vocab, 1e-3)


class MatmulHead(Lookup):
    """The lookup's logits times a fixed 64 x 64 matrix in float32: TF32 rounds the product's inputs to
    10 mantissa bits, so on a GPU with TF32 on, the logits differ."""

    def __init__(self, vocab: int) -> None:
        super().__init__(vocab)
        self.head = nn.Linear(vocab, vocab, bias=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, past_key_values: object = None,
                use_cache: bool = False) -> SimpleNamespace:
        out = super().forward(input_ids, attention_mask, position_ids, past_key_values, use_cache)
        out.logits = self.head(out.logits)
        return out


def tf32_sensitive(vocab: int) -> Lookup:
    return MatmulHead(vocab)


def no_cache(vocab: int) -> nn.Module:
    """A model whose forward takes no cache: detprof infer must refuse it in one line."""
    return nn.Embedding(vocab, vocab)
