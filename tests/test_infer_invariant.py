"""The batch-invariant ops of detprof infer's batch-invariant mode, each against a known answer: what a
row gets must not depend on the other rows, on where it sits, or on masked keys around it. The
ordered reductions are exact by construction (exact elementwise products, one rounding per
addition in index order, exp never on a scalar tail), so these hold on any CPU; the tiled matrix
products hold where the library computes a row of a fixed-shape product the same wherever it sits,
which the grid's own rows check on each machine."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from detprof.backends.torch.inference.invariant import (
    TILE_ROWS,
    BatchInvariantOps,
    linear,
    ordered_matmul,
    scaled_dot_product_attention,
    softmax,
)


def _bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool((a.contiguous().view(torch.int32) == b.contiguous().view(torch.int32)).all())


@pytest.mark.parametrize("width", [96, 100])  # tiles as views of one buffer, and as copies (unaligned starts)
def test_a_row_of_a_linear_layer_is_the_same_alone_and_anywhere_in_any_batch(width: int) -> None:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(300, width, generator=generator)
    bias = torch.randn(300, generator=generator)
    row = torch.randn(1, width, generator=generator)
    alone = linear(row, weight, bias)
    for batch, position in [(2, 1), (7, 6), (TILE_ROWS + 1, TILE_ROWS), (3 * TILE_ROWS + 1, 2 * TILE_ROWS + 1),
                            (40, 0), (16, 9)]:
        rows = torch.randn(batch, width, generator=generator)
        rows[position] = row[0]
        assert _bits_equal(linear(rows, weight, bias)[position], alone[0]), (batch, position)
    assert torch.allclose(alone, F.linear(row, weight, bias), atol=1e-4)  # still a linear layer


def test_masked_keys_change_no_bit_of_a_softmax_or_an_attention_wherever_they_sit() -> None:
    generator = torch.Generator().manual_seed(1)
    scores = torch.randn(3, 5, 11, generator=generator)
    padded = torch.cat([torch.full((3, 5, 4), float("-inf")), scores, torch.full((3, 5, 2), float("-inf"))], -1)
    assert _bits_equal(softmax(padded)[..., 4:15], softmax(scores))
    assert _bits_equal(softmax(padded)[..., :4], torch.zeros(3, 5, 4))
    assert torch.allclose(softmax(scores), torch.softmax(scores, -1), atol=1e-6)
    assert _bits_equal(softmax(torch.full((2, 6), float("-inf"))), torch.zeros(2, 6))  # all masked: zeros, not NaN

    q, k, v = (torch.randn(2, 4, 1, 8, generator=generator) for _ in range(3))
    keys, values = torch.randn(2, 4, 9, 8, generator=generator), torch.randn(2, 4, 9, 8, generator=generator)
    alone = scaled_dot_product_attention(q, keys, values)
    left = torch.cat([torch.randn(2, 4, 5, 8, generator=generator), keys], dim=2)  # 5 pad keys, masked
    left_values = torch.cat([torch.randn(2, 4, 5, 8, generator=generator), values], dim=2)
    mask = torch.cat([torch.zeros(5, dtype=torch.bool), torch.ones(9, dtype=torch.bool)])[None, None, None, :]
    assert _bits_equal(scaled_dot_product_attention(q, left, left_values, attn_mask=mask), alone)
    reference = F.scaled_dot_product_attention(q, keys, values)
    assert torch.allclose(alone, reference, atol=1e-5) and not _bits_equal(k, v)


def test_an_ordered_product_sums_in_index_order_whatever_surrounds_it() -> None:
    a = torch.tensor([[[1e8, 1.0, -1e8, 1.0]]])
    b = torch.ones(1, 4, 1)
    # ((1e8 + 1) - 1e8) + 1 taken in order in float64, rounded once: 2 (float32 in order would lose a 1)
    assert ordered_matmul(a, b).item() == 2.0
    generator = torch.Generator().manual_seed(2)
    weights, values = torch.rand(3, 1, 7, generator=generator), torch.randn(3, 7, 5, generator=generator)
    alone = ordered_matmul(weights, values)
    padded = ordered_matmul(torch.cat([torch.zeros(3, 1, 4), weights, torch.zeros(3, 1, 2)], dim=-1),
                            torch.cat([torch.randn(3, 4, 5, generator=generator), values,
                                       torch.randn(3, 2, 5, generator=generator)], dim=-2))
    assert _bits_equal(alone, padded)  # exact zeros before and after change no bit
    many_rows = ordered_matmul(torch.cat([weights] * 40, dim=1), values)  # rows in chunks: each the same
    assert all(_bits_equal(many_rows[:, i:i + 1], alone) for i in range(40))


def test_the_mode_takes_over_the_ops_a_decoder_calls_and_leaves_the_rest() -> None:
    x = torch.randn(3, 4, 16)
    layer = torch.nn.Linear(16, 8)
    with BatchInvariantOps() as mode:
        layer(x)
        torch.softmax(x, dim=-1)
        x.mean(-1, keepdim=True)
        x.mean(0)  # not over the last dimension: PyTorch's own
        x @ x.transpose(-1, -2)
        F.layer_norm(x, (16,))
        x.exp()
    assert mode.replaced == {"linear": 1, "softmax": 1, "mean": 1, "matmul": 1, "layer_norm": 1}
