"""The one PyTorch training step that ``overhead`` jobs time and ``check`` and ``audit`` runs
record: the workload's model, a synthetic batch made by the workload kind's batch maker, and SGD
with momentum (detprof.workload.RECIPE).

The model is initialised and the batch drawn on the CPU from the seed, then moved, so that two runs
start from the same bits on any device. ``forward_loss`` calls the model on a batch of any form
(one tensor, a tuple of inputs, or a dict of keyword inputs) and takes its loss: the model's own
(a dict with ``loss``), or the kind's loss on the output and the targets (``KINDS``: cross-entropy
for classes and tokens, mean squared error for noise). Imports torch: job processes only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from detprof.backends.torch.attention import AttentionProbe, attention_context
from detprof.backends.torch.compiled import compile_module
from detprof.backends.torch.user_workload import (
    checked_loss,
    draw_batch,
    example_count,
    load_user_workload,
    moved_to_device,
    own_loss,
    spread_call,
)
from detprof.workload import (
    CAUSAL_LM,
    IMAGE_CLASSIFICATION,
    MASKED_LM,
    NOISE_PREDICTION,
    RECIPE,
    USER_DEFINED,
    Workload,
)


@dataclass
class Batch:
    """One synthetic batch: ``inputs`` as the model takes them (a tensor, a tuple, or a dict of
    keyword arguments) and ``targets`` (None when the model computes its own loss)."""

    inputs: Any
    targets: Any

    def to(self, device: torch.device) -> Batch:
        return Batch(moved_to_device(self.inputs, device), moved_to_device(self.targets, device))



def image_batch(workload: Workload, generator: torch.Generator) -> Batch:
    """Normal images of the workload's shape and uniform class targets."""
    inputs = torch.randn(workload.batch_size, *workload.shape, generator=generator)
    targets = torch.randint(0, workload.num_classes, (workload.batch_size,), generator=generator)
    return Batch(inputs, targets)


ZIPF_EXPONENT = 1.0  # word frequencies in text fall about as 1/rank: tokens repeat, as they do in real batches


def zipf_tokens(count: int, vocabulary: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` token ids drawn with probability proportional to 1/(rank + 1), from a random
    order of the vocabulary: repeated ids are as common as in text, which is what the embedding
    backward's cost depends on (uniform ids over 50,000 would hardly repeat)."""
    weights = 1.0 / torch.arange(1, vocabulary + 1, dtype=torch.float64) ** ZIPF_EXPONENT
    ranks = torch.multinomial(weights, count, replacement=True, generator=generator)
    return torch.randperm(vocabulary, generator=generator)[ranks]


def causal_lm_batch(workload: Workload, generator: torch.Generator) -> Batch:
    """Token ids (batch, tokens) and their next tokens as targets."""
    tokens = int(workload.sequence_length or 1)
    ids = zipf_tokens(workload.batch_size * (tokens + 1), workload.num_classes, generator)
    ids = ids.view(workload.batch_size, tokens + 1)
    return Batch(ids[:, :-1].contiguous(), ids[:, 1:].contiguous())


MASK_FRACTION = 0.15  # BERT's
MASK_TOKEN = 103  # BERT's [MASK] in its own vocabulary (the last id in a smaller one)


def masked_lm_batch(workload: Workload, generator: torch.Generator) -> Batch:
    """Token ids with MASK_FRACTION of the positions (at least one per example) replaced by the
    mask token; the targets are the original ids there and -100 (ignored) elsewhere."""
    tokens = int(workload.sequence_length or 1)
    ids = zipf_tokens(workload.batch_size * tokens, workload.num_classes, generator).view(workload.batch_size, tokens)
    masked = torch.rand(ids.shape, generator=generator) < MASK_FRACTION
    masked[:, 0] |= ~masked.any(dim=1)
    inputs = ids.masked_fill(masked, min(MASK_TOKEN, workload.num_classes - 1))
    return Batch(inputs, ids.masked_fill(~masked, -100))


DIFFUSION_STEPS = 1_000  # DDPM's


def noise_prediction_batch(workload: Workload, generator: torch.Generator) -> Batch:
    """Two inputs, noisy images and their timesteps, with the noise as the target: the images are
    normal, mixed with normal noise by a cosine schedule's signal level at each timestep."""
    images = torch.randn(workload.batch_size, *workload.shape, generator=generator)
    noise = torch.randn(images.shape, generator=generator)
    timesteps = torch.randint(0, DIFFUSION_STEPS, (workload.batch_size,), generator=generator)
    signal = torch.cos((timesteps.float() / DIFFUSION_STEPS + 0.008) / 1.008 * torch.pi / 2) ** 2
    signal = signal.view(-1, 1, 1, 1)
    return Batch((signal.sqrt() * images + (1 - signal).sqrt() * noise, timesteps), noise)


def classification_loss(output: Any, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the logits (main and auxiliary, for Inception-v3's pair)."""
    cross_entropy = torch.nn.functional.cross_entropy
    if isinstance(output, tuple):
        return cross_entropy(output[0], targets) + RECIPE.aux_loss_weight * cross_entropy(output[1], targets)
    return cross_entropy(output, targets)


def token_loss(output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over every (example, token) logit row; targets of -100 are ignored."""
    return torch.nn.functional.cross_entropy(output.reshape(-1, output.shape[-1]), targets.reshape(-1))


def noise_loss(output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the predicted and the true noise."""
    return torch.nn.functional.mse_loss(output, targets)


@dataclass(frozen=True)
class KindTraining:
    """How this backend trains one workload kind: its synthetic batch and its loss on the model's output."""

    make_batch: Callable[[Workload, torch.Generator], Batch]
    loss: Callable[[Any, Any], torch.Tensor]


# One entry per workload kind this backend trains (see detprof.zoo.kinds).
KINDS: dict[str, KindTraining] = {
    IMAGE_CLASSIFICATION: KindTraining(image_batch, classification_loss),
    CAUSAL_LM: KindTraining(causal_lm_batch, token_loss),
    MASKED_LM: KindTraining(masked_lm_batch, token_loss),
    NOISE_PREDICTION: KindTraining(noise_prediction_batch, noise_loss),
}


def workload_model(workload: Workload) -> torch.nn.Module:
    """A fresh, randomly initialised model of the workload (on the CPU): the zoo's arch, or the user's."""
    if workload.model_ref:
        from detprof.backends.torch.zoo.custom import build_user_model

        return build_user_model(workload.model_ref, workload.num_classes)
    from detprof.backends.torch.zoo import build_model

    return build_model(workload.arch, workload.num_classes, kernel_size=workload.kernel_size,
                       batch_norm=workload.batch_norm, image_size=workload.image_size)


def make_batch(workload: Workload, seed: int) -> Batch:
    """The workload's synthetic batch, drawn on the CPU from its own generator seeded with ``seed``."""
    return KINDS[workload.kind].make_batch(workload, torch.Generator().manual_seed(seed))


def call_model(model: torch.nn.Module, inputs: Any) -> Any:
    """The model's output on inputs of any form: one tensor, a tuple of inputs, or keyword inputs."""
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


Forward = Callable[[torch.nn.Module, Any], Any]


def forward_loss(model: torch.nn.Module, batch: Batch, loss: Callable[[Any, Any], torch.Tensor],
                 forward: Forward = call_model) -> torch.Tensor:
    """The model's loss on ``batch``: its own (a dict output with ``loss``, Hugging Face style), or
    ``loss`` on its output (``forward(model, batch.inputs)``) and the batch's targets."""
    out = forward(model, batch.inputs)
    if isinstance(out, dict) and "loss" in out:
        return out["loss"]
    return loss(out, batch.targets)


def main_output(out: Any) -> torch.Tensor:
    """The main prediction of a model's output: the main head of a model with an auxiliary one, the
    ``logits`` of a dict (Hugging Face style), else the output itself."""
    if isinstance(out, dict):
        return out["logits"] if "logits" in out else next(v for v in out.values() if isinstance(v, torch.Tensor)
                                                          and v.dim() > 0)
    return out[0] if isinstance(out, tuple | list) else out


def example_slice(inputs: Any, start: int, stop: int) -> Any:
    """Examples ``start`` to ``stop`` of batched inputs of any form (a tensor, a tuple, a dict)."""
    if isinstance(inputs, torch.Tensor):
        return inputs[start:stop]
    if isinstance(inputs, dict):
        return {key: example_slice(value, start, stop) for key, value in inputs.items()}
    if isinstance(inputs, tuple | list):
        return type(inputs)(example_slice(value, start, stop) for value in inputs)
    return inputs


@dataclass
class Training:
    """A model on its device, its batch there, and its optimizer."""

    model: torch.nn.Module
    batch: Batch
    optimizer: torch.optim.Optimizer
    device: torch.device
    loss_function: Callable[[Any, Any], torch.Tensor]
    sdpa_backend: str = "auto"
    forward: Forward = call_model  # how the model is called on the batch's inputs
    # ``draw_examples(count, generator)``: ``count`` fresh examples as one Batch (batch invariance, loaders)
    draw_examples: Callable[[int, torch.Generator], Batch] | None = None
    # A DataLoader's next batch, on the device (check --workers): then every step trains on a new one
    next_batch: Callable[[], Batch] | None = None
    dataset: Any = None  # a --workload's own torch Dataset, for the loader (None: examples drawn up front)
    # A --workload's own checkpoint code, save and load of (path, model, optimizer); None: detprof's
    checkpoint_code: tuple[Callable[[str, Any, Any], None], Callable[[str, Any, Any], None]] | None = None
    micro_batches: int = 1  # check --accumulate: backward over this many equal shares of the batch, one step

    def fresh_inputs(self, count: int, seed: int) -> Any:
        """The inputs of ``count`` examples drawn from ``seed`` (not the training batch), on the device."""
        if self.draw_examples is None:
            raise ValueError("this training has no batch maker for fresh examples")
        return moved_to_device(self.draw_examples(count, torch.Generator().manual_seed(seed)).inputs, self.device)

    def loss(self, batch: Batch | None = None) -> torch.Tensor:
        """Forward pass and loss (no backward) on ``batch`` (default: the training's), attention on the
        workload's SDPA backend."""
        try:
            with attention_context(self.sdpa_backend):
                return forward_loss(self.model, self.batch if batch is None else batch, self.loss_function,
                                    self.forward)
        except RuntimeError as error:
            if self.sdpa_backend == "auto" or "No available kernel" not in str(error):
                raise
            raise RuntimeError(f"--sdpa-backend {self.sdpa_backend} has no kernel for this model's attention on "
                               f"{self.device.type} (PyTorch: No available kernel; its warnings say which condition "
                               "failed, e.g. attention dropout in training); use auto or math") from None

    def probed_step(self) -> tuple[torch.Tensor, list[str]]:
        """One step as ``step``, and the SDPA backends that ran in it (empty: no attention)."""
        with AttentionProbe() as probe:
            loss = self.step()
        return loss, probe.backends

    def step(self) -> torch.Tensor:
        """One SGD step; returns the loss, detached (no device synchronisation)."""
        if self.next_batch is not None:
            self.batch = self.next_batch()
        self.optimizer.zero_grad(set_to_none=True)
        if self.micro_batches == 1:
            loss = self.loss()
            loss.backward()
        else:
            loss = self.accumulated()
        self.optimizer.step()
        return loss.detach()

    def accumulated(self) -> torch.Tensor:
        """Backward over ``micro_batches`` equal shares of the batch in order, each share's loss scaled
        by 1/micro_batches (gradient accumulation); returns the sum of the scaled losses, detached."""
        examples = example_count(self.batch.inputs)
        if examples % self.micro_batches:
            raise ValueError(f"--accumulate {self.micro_batches}: the batch has {examples} examples, which do not "
                             "split into equal micro-batches; use a count that divides it")
        size = examples // self.micro_batches
        total = torch.zeros((), device=self.device)
        for start in range(0, examples, size):
            inputs = example_slice(self.batch.inputs, start, start + size)
            targets = inputs if self.batch.targets is self.batch.inputs else \
                example_slice(self.batch.targets, start, start + size)
            share = self.loss(Batch(inputs, targets)) / self.micro_batches
            share.backward()
            total += share.detach()
        return total


def build_training(workload: Workload, seed: int, device: torch.device) -> Training:
    """The workload's model (initialised from ``seed``), its batch (from ``seed + 1``) and an SGD
    optimizer, all on ``device``, the model in training mode."""
    training = _user_training(workload, seed, device) if workload.kind == USER_DEFINED else \
        _zoo_training(workload, seed, device)
    if workload.compiled:
        training.forward = compiled_forward(training.model, training.forward)
    return training


def compiled_forward(model: torch.nn.Module, forward: Forward) -> Forward:
    """``forward`` through ``torch.compile(model)`` (Inductor, forward and backward graphs): the
    module keeps its parameters and state dict names; only its calls are compiled."""
    compiled = compile_module(model)

    def run(_model: torch.nn.Module, inputs: Any) -> Any:
        return forward(compiled, inputs)  # type: ignore[arg-type]

    return run


def _zoo_training(workload: Workload, seed: int, device: torch.device) -> Training:
    torch.manual_seed(seed)
    model = workload_model(workload).to(device).train()
    batch = make_batch(workload, seed + 1).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=RECIPE.learning_rate, momentum=RECIPE.momentum)
    kind = KINDS[workload.kind]

    def draw_examples(count: int, generator: torch.Generator) -> Batch:
        return kind.make_batch(replace(workload, batch_size=count), generator)

    return Training(model, batch, optimizer, device, kind.loss, workload.sdpa_backend, draw_examples=draw_examples)


def _user_training(workload: Workload, seed: int, device: torch.device) -> Training:
    """A --workload's training: its model (built by its function after seeding torch with ``seed``),
    its batch (from a generator seeded ``seed + 1``), its loss of (output, batch) and its forward."""
    reference = str(workload.workload_ref)
    torch.manual_seed(seed)
    user = load_user_workload(reference, workload.batch_size, device)
    model = user.model.to(device).train()
    inputs = moved_to_device(draw_batch(user, reference, torch.Generator().manual_seed(seed + 1)), device)
    def loss(output: Any, batch: Any) -> torch.Tensor:
        return checked_loss(user.loss(output, batch) if user.loss else own_loss(output, reference), reference)

    def draw_examples(count: int, generator: torch.Generator) -> Batch:
        batches = [draw_batch(user, reference, generator)]
        if example_count(batches[0]) == 0:
            raise ValueError(f"--workload {reference}: make_batch returned a batch of 0 examples; return at least one")
        while example_count(batches[0]) * len(batches) < count:
            batches.append(draw_batch(user, reference, generator))
        examples = example_slice(concatenated(batches), 0, count)
        return Batch(examples, examples)

    optimizer = torch.optim.SGD(model.parameters(), lr=RECIPE.learning_rate, momentum=RECIPE.momentum)
    # The whole batch is both what the model is called with and what the loss reads (loss_fn(output, batch)).
    return Training(model, Batch(inputs, inputs), optimizer, device, loss, workload.sdpa_backend,
                    forward=user.forward or spread_call, draw_examples=draw_examples,
                    checkpoint_code=(user.save, user.load) if user.save and user.load else None,
                    dataset=user.dataset)


def concatenated(batches: list[Any]) -> Any:
    """Batches of one form joined along their first (example) dimension."""
    first = batches[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(batches)
    if isinstance(first, dict):
        return {key: concatenated([batch[key] for batch in batches]) for key in first}
    return type(first)(concatenated([batch[i] for batch in batches]) for i in range(len(first)))
