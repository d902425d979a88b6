"""A token language model as a detprof workload, with no detprof import.

    detprof overhead --workload examples/token_lm.py:build
    detprof check --workload examples/token_lm.py:build --locate-op

``build(batch_size, device)`` returns ``(model, make_batch, loss_fn)``: a two-layer causal
transformer over a 1,024-token vocabulary, batches of token ids drawn from detprof's generator, and
next-token cross-entropy. The model sees the whole sequence; the loss compares the logits at each
position with the token after it.
"""

import torch
from torch import nn

VOCABULARY = 1024
SEQUENCE = 32  # tokens per example
WIDTH = 64


class TinyCausalLM(nn.Module):
    """Token and position embeddings, two pre-norm transformer layers with a causal mask, and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(VOCABULARY, WIDTH)
        self.positions = nn.Embedding(SEQUENCE, WIDTH)
        layer = nn.TransformerEncoderLayer(WIDTH, nhead=4, dim_feedforward=4 * WIDTH, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(WIDTH, VOCABULARY)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        hidden = self.tokens(ids) + self.positions(torch.arange(length, device=ids.device))
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=ids.device)
        return self.head(self.layers(hidden, mask=mask, is_causal=True))


def build(batch_size, device):
    def make_batch(generator):
        return torch.randint(0, VOCABULARY, (batch_size, SEQUENCE), generator=generator)

    def loss_fn(logits, ids):
        return nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCABULARY), ids[:, 1:].reshape(-1))

    return TinyCausalLM(), make_batch, loss_fn
