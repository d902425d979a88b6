"""A Hugging Face model as a detprof workload: the model computes its own loss from a dict batch.

    detprof overhead --workload examples/hf_gpt2.py:build
    detprof audit --workload examples/hf_gpt2.py:build

Needs ``pip install transformers``. ``build(batch_size, device)`` returns a
``detprof.workload.UserWorkload`` with no loss function: the batch holds ``labels``, so
``GPT2LMHeadModel`` returns its own next-token loss, as it does inside a ``Trainer``. The
configuration is GPT-2's, shrunk to two layers so that it trains in seconds on a CPU.
"""

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from detprof.workload import UserWorkload

SEQUENCE = 32  # tokens per example
CONFIG = GPT2Config(n_layer=2, n_embd=128, n_head=4, n_positions=SEQUENCE, vocab_size=2048,
                    attn_implementation="sdpa")


def build(batch_size, device):
    def make_batch(generator):
        ids = torch.randint(0, CONFIG.vocab_size, (batch_size, SEQUENCE), generator=generator)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}

    return UserWorkload(model=GPT2LMHeadModel(CONFIG), make_batch=make_batch)
