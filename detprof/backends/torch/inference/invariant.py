"""Batch-invariant decoding on a CPU: a TorchFunctionMode under which every op whose reduction
order could depend on the batch, the prompt's position, the padding or the KV cache runs in an
order fixed by the data alone.

Why these ops: on this CPU a float32 ``F.linear`` row already differs between a batch of 1 and of
2 (a matrix-vector product against a matrix product) and between fewer and more than 16 rows;
softmax and attention reduce over the keys, whose count changes with padding and with the cache.

How:
- **matrix products with a weight** (``F.linear``, ``addmm``, ``matmul`` by a 2-D matrix): the
  rows are cut into tiles of exactly ``TILE_ROWS`` (the last one padded with zeros), each
  multiplied by the same call, so each row's sum is always taken by the same (TILE_ROWS, K) x
  (K, N) product whatever the other rows are. Two rows is the smallest tile that is still a matrix product (one row is a
  matrix-vector product, summed differently): on this CPU a 2-row product costs what a 1-row one
  does, so a lone prompt pays almost nothing, and a batch of 8 pays four weight reads instead of one;
- **row-wise norms** (``layer_norm``, ``rms_norm``, a mean over the last dimension): the same tiles;
- **products of two activations** (attention's scores and its weighted sum of values, any batched
  ``matmul``/``bmm``): exact elementwise products summed one term at a time in index order (a
  ``cumsum``, sequential in float64), so a masked key's exact zero changes no bit wherever it sits,
  and eager attention and SDPA compute the same scores;
- **softmax** and **scaled_dot_product_attention**: the maximum (exact), ``exp`` on a last dimension
  padded to a multiple of ``EXP_MULTIPLE`` with -inf (so every element goes through the same
  vectorised code, never a scalar tail), then the sum one key at a time in index order; a row with every key
  masked gives zeros, not NaN.

Everything else a decoder runs (embeddings, elementwise activations, adds, argmax) computes each
element on its own. What this costs is measured by ``detprof infer`` and in docs/benchmarks.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

TILE_ROWS = 2  # the smallest matrix product (one row is a matrix-vector product): see the docstring
EXP_MULTIPLE = 64
PRODUCT_ELEMENTS = 1 << 24  # elementwise products an ordered matmul holds at once (64 MiB in float32)


def _tiles(rows: torch.Tensor, apply: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``apply`` to each tile of TILE_ROWS rows of a 2-D tensor (the rows copied once into a buffer
    padded with zero rows; a tile is a view of it where its start stays 64-byte aligned, else a
    fresh copy), the results' rows concatenated."""
    count = rows.shape[0]
    tiles = max(1, math.ceil(count / TILE_ROWS))
    padded = rows.new_zeros((tiles * TILE_ROWS, *rows.shape[1:]))
    padded[:count] = rows
    aligned = (TILE_ROWS * padded[0].numel() * padded.element_size()) % 64 == 0
    outputs = [apply(padded[i * TILE_ROWS:(i + 1) * TILE_ROWS] if aligned else
                     padded[i * TILE_ROWS:(i + 1) * TILE_ROWS].clone()) for i in range(tiles)]
    return (outputs[0] if tiles == 1 else torch.cat(outputs))[:count]


def tiled_product(rows: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``rows @ matrix`` for 2-D ``rows`` (M, K) and ``matrix`` (K, N), in tiles of TILE_ROWS rows: the
    rows padded once with zero rows into a new contiguous buffer, each tile multiplied by the same
    call, ``torch.mm`` of (TILE_ROWS, K) by (K, N), whatever M is. A tile is a view of the buffer
    where its start stays 64-byte aligned, else a copy of its own."""
    count, width = rows.shape
    tiles = max(1, math.ceil(count / TILE_ROWS))
    padded = F.pad(rows, (0, 0, 0, tiles * TILE_ROWS - count)).contiguous()
    if tiles == 1:
        return torch.mm(padded, matrix)[:count]
    aligned = (TILE_ROWS * width * padded.element_size()) % 64 == 0
    products = [torch.mm(tile if aligned else tile.clone(), matrix) for tile in padded.split(TILE_ROWS)]
    return torch.cat(products)[:count]


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` in fixed tiles of rows, the bias added after, element by element."""
    out = tiled_product(x.reshape(-1, x.shape[-1]), weight.t())
    if bias is not None:
        out = out + bias
    return out.reshape(*x.shape[:-1], weight.shape[0])


def addmm(bias: torch.Tensor, x: torch.Tensor, matrix: torch.Tensor, *, beta: float = 1,
          alpha: float = 1) -> torch.Tensor:
    """``torch.addmm`` (GPT-2's Conv1D) in fixed tiles of rows."""
    out = tiled_product(x, matrix)
    if alpha != 1:
        out = out * alpha
    return out + (bias if beta == 1 else beta * bias)


def ordered_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for batched operands (..., M, K) @ (..., K, N), each output the sum over K of exact
    elementwise products taken one term at a time in index order (``cumsum``, which PyTorch's CPU
    kernel runs as one sequential loop, in float64 for float32), so that exact zeros anywhere among
    the terms (masked keys) change no bit. Rows of M are taken in chunks that keep the products
    within PRODUCT_ELEMENTS (a row's sum does not depend on its chunk)."""
    rows, inner, columns = a.shape[-2], a.shape[-1], b.shape[-1]
    others = max(1, math.prod(torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])))
    chunk = max(1, PRODUCT_ELEMENTS // max(1, others * inner * columns))
    pieces = [(a[..., start:start + chunk, :, None] * b[..., None, :, :]).cumsum(dim=-2)[..., -1, :]
              for start in range(0, rows, chunk)]
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=-2)


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.matmul``: by a 2-D matrix (a weight) in tiles of rows, else in index order."""
    if b.dim() == 2 and a.dim() >= 2:
        return tiled_product(a.reshape(-1, a.shape[-1]), b).reshape(*a.shape[:-1], b.shape[1])
    if a.dim() < 2 or b.dim() < 2:
        return torch.matmul(a, b)
    return ordered_matmul(a, b)


def softmax(x: torch.Tensor, dim: int = -1, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Softmax over ``dim`` with the maximum, ``exp`` on a padded last dimension and the sum in
    index order; a row whose entries are all -inf gives zeros."""
    if dtype is not None:
        x = x.to(dtype)
    moved = x.movedim(dim, -1) if dim not in (-1, x.dim() - 1) else x
    width = moved.shape[-1]
    padded_width = math.ceil(width / EXP_MULTIPLE) * EXP_MULTIPLE
    padded = F.pad(moved, (0, padded_width - width), value=float("-inf")).contiguous()
    largest = padded.amax(dim=-1, keepdim=True)
    largest = torch.where(torch.isfinite(largest), largest, torch.zeros_like(largest))
    exps = torch.exp(padded - largest)[..., :width]
    total = exps.cumsum(dim=-1)[..., -1:]  # in index order (see ordered_matmul)
    out = torch.where(total > 0, exps / total, torch.zeros_like(exps))
    return out.movedim(-1, dim) if moved is not x else out


def scaled_dot_product_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                 attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> torch.Tensor:
    """SDPA (no dropout: inference) with ordered scores, the softmax above and an ordered weighted sum."""
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        repeat = query.shape[-3] // key.shape[-3]
        key, value = key.repeat_interleave(repeat, dim=-3), value.repeat_interleave(repeat, dim=-3)
    scale = scale if scale is not None else 1.0 / math.sqrt(query.shape[-1])
    scores = ordered_matmul(query, key.transpose(-2, -1)) * scale  # as eager attention's matmul, then scale
    if is_causal:
        length, keys = query.shape[-2], key.shape[-2]
        keep = torch.ones(length, keys, dtype=torch.bool, device=query.device).tril(diagonal=keys - length)
        scores = scores.masked_fill(~keep, float("-inf"))
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
    weights = softmax(scores.float(), -1).to(query.dtype)
    return ordered_matmul(weights, value)


def layer_norm(x: torch.Tensor, normalized_shape: Any, weight: torch.Tensor | None = None,
               bias: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    """``F.layer_norm`` over the last dimension, in tiles of rows."""
    rows = x.reshape(-1, x.shape[-1])
    out = _tiles(rows, lambda tile: F.layer_norm(tile, normalized_shape, weight, bias, eps))
    return out.reshape(x.shape)


def rms_norm(x: torch.Tensor, normalized_shape: Any, weight: torch.Tensor | None = None,
             eps: float | None = None) -> torch.Tensor:
    """``F.rms_norm`` over the last dimension, in tiles of rows."""
    rows = x.reshape(-1, x.shape[-1])
    return _tiles(rows, lambda tile: F.rms_norm(tile, normalized_shape, weight, eps)).reshape(x.shape)


def last_dim_mean(x: torch.Tensor, keepdim: bool = False, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A mean over the last dimension (Llama's RMSNorm), in tiles of rows."""
    rows = x.reshape(-1, x.shape[-1])
    out = _tiles(rows, lambda tile: tile.mean(dim=-1, keepdim=True, dtype=dtype))
    return out.reshape(*x.shape[:-1], 1) if keepdim else out.reshape(x.shape[:-1])


def _is_last_dim(x: torch.Tensor, dim: Any) -> bool:
    if isinstance(dim, list | tuple):
        dim = dim[0] if len(dim) == 1 else None
    return isinstance(dim, int) and dim in (-1, x.dim() - 1)


class BatchInvariantOps(TorchFunctionMode):
    """The mode (see the module docstring); ``replaced`` counts the calls it took over, by op."""

    def __init__(self) -> None:
        super().__init__()
        self.replaced: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.replaced[name] = self.replaced.get(name, 0) + 1

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        replacement = self._replacement(func, args, kwargs)
        if replacement is None:
            return func(*args, **kwargs)
        name, call = replacement
        self._count(name)
        return call()

    def _replacement(self, func: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> tuple[str, Callable[[], Any]] | None:
        if func is F.linear:
            return "linear", lambda: linear(*args, **kwargs)
        if func is torch.addmm and len(args) == 3 and args[1].dim() == 2:
            return "addmm", lambda: addmm(*args, **kwargs)
        if func in (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm) and not kwargs:
            return "matmul", lambda: matmul(*args)
        if func in (F.softmax, torch.softmax, torch.Tensor.softmax):
            return "softmax", lambda: softmax(*args, **{k: v for k, v in kwargs.items() if k in ("dim", "dtype")})
        if func is F.scaled_dot_product_attention:
            return "scaled_dot_product_attention", lambda: scaled_dot_product_attention(*args, **kwargs)
        if func is F.layer_norm:
            return "layer_norm", lambda: layer_norm(*args, **kwargs)
        if func is F.rms_norm:
            return "rms_norm", lambda: rms_norm(*args, **kwargs)
        if func in (torch.mean, torch.Tensor.mean) and args and isinstance(args[0], torch.Tensor):
            dim = args[1] if len(args) > 1 else kwargs.get("dim")
            if dim is not None and _is_last_dim(args[0], dim) and args[0].dim() >= 2:
                keepdim = bool(args[2] if len(args) > 2 else kwargs.get("keepdim", False))
                return "mean", lambda: last_dim_mean(args[0], keepdim, kwargs.get("dtype"))
        return None
