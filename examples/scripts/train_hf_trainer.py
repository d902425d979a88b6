"""A Hugging Face ``Trainer`` script, with no detprof import (needs `pip install transformers accelerate`).

    detprof check --script examples/scripts/train_hf_trainer.py --steps 6

A two-layer GPT-2 (width 64, vocabulary 512) trained as a causal language model on random token
sequences. ``TrainingArguments(seed=...)`` seeds the model's initialisation and the data order;
the Trainer steps a torch optimizer underneath, where detprof's hooks see it. Nothing is saved or
logged, so two runs leave nothing behind for each other.
"""

import argparse
import tempfile

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments


class RandomTokens(torch.utils.data.Dataset):
    def __init__(self, count: int, length: int, vocabulary: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(vocabulary, (count, length), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        return {"input_ids": self.ids[index], "labels": self.ids[index]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = GPT2Config(vocab_size=512, n_positions=64, n_embd=64, n_layer=2, n_head=2, bos_token_id=0,
                        eos_token_id=0)
    with tempfile.TemporaryDirectory() as output:
        arguments = TrainingArguments(output_dir=output, max_steps=args.max_steps, per_device_train_batch_size=8,
                                      learning_rate=5e-4, seed=args.seed, use_cpu=True, report_to=[],
                                      save_strategy="no", logging_strategy="no", disable_tqdm=True,
                                      dataloader_num_workers=0)
        trainer = Trainer(model_init=lambda: GPT2LMHeadModel(config), args=arguments,
                          train_dataset=RandomTokens(256, 32, config.vocab_size))
        trainer.train()


if __name__ == "__main__":
    main()
