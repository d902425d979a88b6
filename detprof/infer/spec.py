"""What one inference process is told, as typed records the parent writes and the child reads back.

``DecodeSettings`` is one configuration of greedy decoding (the batch a prompt is in, its padding,
the KV cache, chunked prefill, attention, dtype, threads); ``ModelSource`` says which causal
language model is built; ``InferenceSpec`` carries both, the prompts and the settings to decode
them under, across the process boundary as JSON (``to_json``, ``from_json``), refusing a field it
does not know so that a misspelling fails loudly instead of reading as a default.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from detprof.shapes import known_fields

PADDING_SIDES = ("left", "right")
DTYPES = ("float32", "bfloat16", "float16")
ATTENTIONS = ("sdpa", "eager")
# default: PyTorch's own ops; deterministic: the training mode's switches (detprof.modes), which
# make each op deterministic for a given shape but not independent of the batch; batch-invariant:
# detprof's fixed-order ops (detprof.backends.torch.inference.invariant)
INFERENCE_MODES = ("default", "deterministic", "batch-invariant")
PREFIXES = ("none", "recomputed", "reused")


class InferenceSpecError(ValueError):
    """An inference spec with a field nobody reads: a misspelling, or a version mismatch."""


@dataclass(frozen=True)
class DecodeSettings:
    """One configuration of greedy decoding. The reference is every field's default: each prompt
    alone, unpadded, the KV cache on, the whole prompt in one prefill, SDPA attention, float32, the
    spec's thread count, no shared prefix, eager PyTorch."""

    batch_size: int = 1  # prompts decoded together, in the order given (the last batch may be smaller)
    reverse_order: bool = False  # each batch's prompts in reverse order: every prompt changes position
    padding_side: str = "left"  # where a shorter prompt of a batch (and extra_padding) is padded
    extra_padding: int = 0  # pad tokens added to every prompt beyond what its batch needs
    kv_cache: bool = True  # False: each new token recomputes the whole sequence
    prefill_chunk: int | None = None  # the prompt fed in chunks of this many tokens, through the cache
    dtype: str = "float32"  # the model's parameters and activations
    attention: str = "sdpa"  # the Hugging Face attention implementation
    threads: int | None = None  # CPU intra-op threads (None: the spec's)
    temperature: float = 0.0  # 0: greedy; else sampled at this temperature from the spec's uniforms
    teacher_forced: bool = False  # score another settings' tokens in one forward per batch (a trainer), not decode
    # the spec's shared prefix before every prompt: "recomputed" in each prompt's prefill, or "reused":
    # computed once, alone, and its KV cache copied into every batch before the prompts are prefilled
    prefix: str = "none"
    compiled: bool = False  # the model run through torch.compile (dynamic shapes) instead of eagerly
    tf32: bool | None = None  # a GPU's TF32 for float32 matmuls and convolutions (None: PyTorch's default)

    def key(self) -> str:
        """A stable text naming these settings (equal settings, equal keys)."""
        return json.dumps(asdict(self), sort_keys=True)

    def changes(self) -> dict[str, Any]:
        """The fields that differ from the reference, by name."""
        reference = DecodeSettings()
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) != getattr(reference, f.name)}

    def label(self) -> str:
        """The settings in a few words: "reference", "batch 8", "right +8 pad", "no KV cache"."""
        changes = self.changes()
        if not changes:
            return "reference"
        words = []
        if "batch_size" in changes:
            words.append(f"batch {self.batch_size}")
        if self.reverse_order:
            words.append("reversed order")
        if "padding_side" in changes or "extra_padding" in changes:
            words.append(f"{self.padding_side} +{self.extra_padding} pad")
        if not self.kv_cache:
            words.append("no KV cache")
        if self.prefill_chunk:
            words.append(f"prefill in chunks of {self.prefill_chunk}")
        if "dtype" in changes:
            words.append(self.dtype)
        if "attention" in changes:
            words.append(f"{self.attention} attention")
        if "threads" in changes:
            words.append(f"{self.threads} thread{'s' if self.threads != 1 else ''}")
        if self.prefix != "none":
            words.append(f"shared prefix {self.prefix}")
        if self.compiled:
            words.append("torch.compile")
        if self.tf32 is not None:
            words.append(f"TF32 {'on' if self.tf32 else 'off'}")
        if self.temperature:
            words.append(f"sampled at temperature {self.temperature:g}")
        if self.teacher_forced:
            words.append("teacher-forced")
        return ", ".join(words)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DecodeSettings:
        """Settings as ``asdict`` wrote them; InferenceSpecError naming a field they do not have."""
        return cls(**_known(cls, data, "decode settings"))


@dataclass(frozen=True)
class ModelSource:
    """Which causal language model a process builds: a zoo arch (gpt2-small, llama-small) as its
    Hugging Face twin at the zoo's sizes, with ``vocab`` tokens; a Hugging Face ``config`` (a
    config.json, or a folder holding one and perhaps weights), with random weights from the seed
    when the folder has none; or a user's ``model`` (MODULE:FUNCTION, called with ``vocab``)."""

    arch: str | None = None
    vocab: int | None = None
    config: str | None = None  # an absolute path
    model: str | None = None  # MODULE:FUNCTION, a .py path made absolute

    def describe(self) -> str:
        """The source in words: "gpt2-small (vocabulary 512)", "config /path/config.json"."""
        if self.arch:
            return f"{self.arch}" + (f" (vocabulary {self.vocab})" if self.vocab else "")
        if self.model:
            return f"--model {self.model} (vocabulary {self.vocab})"
        return f"config {self.config}"


@dataclass(frozen=True)
class InferenceSpec:
    """What one inference process does: build ``source`` on ``device`` from ``seed``, then decode
    ``prompts`` (token ids) greedily for ``new_tokens`` tokens under each of ``settings``, in
    order, writing each one's tokens and the logits it chose them from."""

    source: ModelSource
    prompts: tuple[tuple[int, ...], ...]
    new_tokens: int
    settings: tuple[DecodeSettings, ...]
    seed: int
    threads: int | None  # CPU intra-op threads of the reference (None: PyTorch's default, on a GPU)
    device: str  # "cpu" or "cuda:0"
    pad_token: int = 0
    mode: str = "default"  # or "deterministic" or "batch-invariant": every configuration decoded under that mode
    warmup: bool = False  # decode each settings once untimed first (the cost's processes)
    keep_logits: bool = True  # write each settings' logits (the grid compares them; the cost does not)
    uniforms: tuple[tuple[float, ...], ...] = ()  # per prompt and step, in [0, 1): what a sampling settings draws
    # per settings: for a teacher-forced one, the index of the earlier settings whose tokens it scores
    scores: tuple[int | None, ...] = ()
    # --locate-op: (baseline settings index, other settings index, prompt, step) to re-decode with a probe
    locate: tuple[tuple[int, int, int, int], ...] = ()
    shared_prefix: tuple[int, ...] = ()  # token ids before every prompt of a settings whose prefix is not "none"
    # --locate-op across processes: (settings index, prompt, step) to re-decode with a probe, saving its rows
    record: tuple[int, int, int] | None = None
    fingerprint: bool = False  # infer --record: read the environment fingerprint (nvidia-smi on a GPU) once decoded

    def to_json(self) -> dict[str, Any]:
        """The spec as a JSON-able dict."""
        data = asdict(self)
        data["prompts"] = [list(p) for p in self.prompts]
        data["settings"] = [asdict(s) for s in self.settings]
        data["uniforms"] = [list(row) for row in self.uniforms]
        data["scores"] = list(self.scores)
        data["locate"] = [list(item) for item in self.locate]
        data["shared_prefix"] = list(self.shared_prefix)
        data["record"] = list(self.record) if self.record is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InferenceSpec:
        """The spec ``to_json`` wrote; InferenceSpecError naming any field it does not have."""
        data = _known(cls, data, "inference spec")
        return cls(**{**data, "source": ModelSource(**_known(ModelSource, data["source"], "model source")),
                      "prompts": tuple(tuple(int(t) for t in p) for p in data["prompts"]),
                      "settings": tuple(DecodeSettings.from_json(s) for s in data["settings"]),
                      "uniforms": tuple(tuple(float(u) for u in row) for row in data.get("uniforms", ())),
                      "scores": tuple(None if i is None else int(i) for i in data.get("scores", ())),
                      "locate": tuple((int(a), int(b), int(c), int(d)) for a, b, c, d in data.get("locate", ())),
                      "shared_prefix": tuple(int(t) for t in data.get("shared_prefix", ())),
                      "record": tuple(int(i) for i in data["record"]) if data.get("record") is not None else None})

    def but(self, **changes: Any) -> InferenceSpec:
        """The same spec with ``changes`` (field names checked)."""
        return replace(self, **changes)


def _known(cls: type, data: dict[str, Any], what: str) -> dict[str, Any]:
    """``data`` when every key is a field of ``cls``; InferenceSpecError naming the others."""
    return known_fields(cls, data, what, InferenceSpecError)
