"""Sampler against trainer (``detprof infer --compare sampler,trainer``): how far the log-probabilities
an RL sampler computes for its own tokens are from those the trainer computes for the same tokens,
and which known remedy closes the gap.

The sampler decodes the prompts with its configuration (KV cache, batch, dtype; sampling at
temperature 1 from uniforms drawn here, so that a token depends only on its prompt's logits, never
on the batch); the trainer scores the same sequences teacher-forced, one forward per micro-batch
without a cache, in its own configuration, in the same fresh process (one per mode: the run row of
the grid is what shows a second process would decode the same). Both sides' float32 logits are turned into log-probs
here, by one function (numpy, float64), so a difference is the models', never this comparison's.
Per pair: |Δ log-prob| per token (max, p99, mean), the sequence-level KL estimate (the mean over
sequences of the summed sampler - trainer log-ratio: the k1 estimator, the tokens being the
sampler's samples), the share of tokens whose importance ratio leaves 1 ± ``ratio_threshold``,
and whether the log-probs are bitwise equal. The remedies are the published ones: the same dtype,
float16 instead of bfloat16 in both, the same micro-batch as the sampler's batch, the same
attention implementation, and detprof's batch-invariant mode in both.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from detprof.documents import DOCUMENT_VERSION, InferenceMismatchDocument
from detprof.errors import require
from detprof.infer.run import PromptChoice, prepare, run_process
from detprof.infer.spec import DTYPES, DecodeSettings

DEFAULT_SAMPLER = DecodeSettings(batch_size=8, dtype="bfloat16", temperature=1.0)
DEFAULT_TRAINER = DecodeSettings(batch_size=4, kv_cache=False, teacher_forced=True)
DEFAULT_RATIO_THRESHOLD = 1e-3


@dataclass(frozen=True)
class Pairing:
    """One sampler configuration and the trainer configuration that scores its tokens, each with its
    mode (``batch-invariant`` or ``default``), named by the remedy it tries."""

    name: str
    sampler: DecodeSettings
    trainer: DecodeSettings
    mode: str = "default"


def remedies(sampler: DecodeSettings, trainer: DecodeSettings) -> list[Pairing]:
    """The baseline pair and each published remedy applied to it alone (the batch-invariant mode with
    the same dtype as well, since the mode cannot make two dtypes agree)."""
    same_dtype = replace(sampler, dtype=trainer.dtype)
    pairs = [Pairing("as given", sampler, trainer),
             Pairing(f"the same dtype ({trainer.dtype})", same_dtype, trainer)]
    if "bfloat16" in (sampler.dtype, trainer.dtype):
        pairs.append(Pairing("float16 instead of bfloat16", replace(sampler, dtype=_swap(sampler.dtype)),
                             replace(trainer, dtype=_swap(trainer.dtype))))
    if trainer.batch_size != sampler.batch_size:
        pairs.append(Pairing(f"the same micro-batch ({sampler.batch_size})", sampler,
                             replace(trainer, batch_size=sampler.batch_size)))
    if trainer.attention != sampler.attention:
        pairs.append(Pairing(f"the same attention ({sampler.attention})", sampler,
                             replace(trainer, attention=sampler.attention)))
    pairs.append(Pairing(f"batch-invariant mode in both, the same dtype ({trainer.dtype})", same_dtype, trainer,
                         mode="batch-invariant"))
    return pairs


SETTINGS_KEYS = {"dtype": "dtype", "batch": "batch_size", "micro-batch": "batch_size", "attention": "attention",
                 "cache": "kv_cache"}


def side_settings(option: str, pairs: dict[str, str], base: DecodeSettings) -> DecodeSettings:
    """``base`` with ``--sampler``/``--trainer``'s NAME=VALUE pairs (dtype, batch or micro-batch,
    attention, cache on/off for the sampler); ArgumentError naming a bad name or value."""
    from detprof.infer.spec import ATTENTIONS
    from detprof.parse import whole_number

    changes: dict[str, Any] = {}
    for name, value in pairs.items():
        require(name in SETTINGS_KEYS, f"{option} {name}={value} is not accepted; use dtype, "
                                       f"{'batch' if not base.teacher_forced else 'micro-batch'}, attention"
                                       f"{', cache' if not base.teacher_forced else ''}")
        field = SETTINGS_KEYS[name]
        if field == "dtype":
            require(value in DTYPES, f"{option} dtype={value} is not accepted; use {', '.join(DTYPES)}")
            changes[field] = value
        elif field == "batch_size":
            number = whole_number(value)
            require(number is not None and 1 <= number <= 256, f"{option} {name}={value} is not accepted; use 1 to 256")
            changes[field] = number
        elif field == "attention":
            require(value in ATTENTIONS, f"{option} attention={value} is not accepted; use {', '.join(ATTENTIONS)}")
            changes[field] = value
        else:
            require(not base.teacher_forced and value in ("on", "off"),
                    f"{option} cache={value} is not accepted; the sampler's cache is on or off (the trainer has none)")
            changes[field] = value == "on"
    return replace(base, **changes)


def _swap(dtype: str) -> str:
    return "float16" if dtype == "bfloat16" else dtype


def log_probs(logits: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """log softmax(logits)[token] per prompt and step, in float64 (prompts x steps)."""
    wide = logits.astype(np.float64)
    largest = wide.max(axis=-1, keepdims=True)
    normaliser = np.log(np.exp(wide - largest).sum(axis=-1)) + largest[..., 0]
    chosen = np.take_along_axis(wide, tokens[..., None], axis=-1)[..., 0]
    return chosen - normaliser


QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "p99.9": 0.999, "max": 1.0}  # of |Δ log-prob| over the tokens


def mismatch(sampler_logp: np.ndarray, trainer_logp: np.ndarray, threshold: float) -> dict[str, Any]:
    """The measures of one pair (see the module docstring), with the distribution of |Δ log-prob|
    over the tokens (QUANTILES) and the share of tokens whose log-probs are bitwise equal."""
    difference = sampler_logp - trainer_logp
    absolute = np.abs(difference)
    ratio = np.exp(trainer_logp - sampler_logp)
    equal = sampler_logp.view(np.uint64) == trainer_logp.view(np.uint64)
    return {"bitwise_equal": bool(equal.all()), "equal_token_share": float(equal.mean()),
            "abs_logprob_diff_quantiles": {name: float(np.quantile(absolute, q)) for name, q in QUANTILES.items()},
            "max_abs_logprob_diff": float(absolute.max()), "p99_abs_logprob_diff": float(np.quantile(absolute, 0.99)),
            "mean_abs_logprob_diff": float(absolute.mean()),
            "sequence_kl_estimate": float(difference.sum(axis=1).mean()),
            "ratio_outside_share": float((np.abs(ratio - 1.0) > threshold).mean()),
            "tokens": int(difference.size)}


def run_sampler_trainer(arch: str | None = None, config: str | None = None, vocab: int | None = None,
                        model: str | None = None, sampler: DecodeSettings = DEFAULT_SAMPLER,
                        trainer: DecodeSettings = DEFAULT_TRAINER, prompts: PromptChoice | None = None,
                        new_tokens: int = 16, seed: int = 0, threads: int | None = None, gpu: str | None = "cpu",
                        timeout_s: float = 1800.0, ratio_threshold: float = DEFAULT_RATIO_THRESHOLD,
                        on_progress: Callable[[str], None] | None = None) -> InferenceMismatchDocument:
    """The sampler-against-trainer comparison and its remedies (see the module docstring), ranked by
    mismatch (max |Δ log-prob|) and then by the time both sides took in their process."""
    require(sampler.dtype in DTYPES and trainer.dtype in DTYPES, "dtypes are float32, bfloat16 or float16")
    require(not sampler.teacher_forced and trainer.teacher_forced,
            "the sampler decodes (teacher_forced False) and the trainer scores (teacher_forced True)")
    require(0 < ratio_threshold < 1, f"--ratio-threshold {ratio_threshold:g} is not accepted; use a number "
                                     f"between 0 and 1")
    prepared = prepare(arch, config, vocab, model, prompts or PromptChoice(), new_tokens, seed, threads, gpu,
                       timeout_s, extra_tokens=0)
    uniforms = tuple(tuple(float(u) for u in row)
                     for row in np.random.default_rng(seed + 1).random((len(prepared.prompts), new_tokens)))
    pairings = remedies(sampler, trainer)
    say = on_progress or (lambda message: None)
    results = []
    built: dict[str, Any] = {}
    version = ""
    with tempfile.TemporaryDirectory(prefix="detprof-infer-mismatch-") as scratch:
        prepared.probe(Path(scratch, "probe"), timeout_s)
        for mode in ("default", "batch-invariant"):
            chosen = [p for p in pairings if p.mode == mode]
            if not chosen:
                continue
            samplers = tuple(dict.fromkeys(p.sampler for p in chosen))
            # one process per mode: the samplers decode, then each trainer scores its sampler's tokens
            settings = (*samplers, *(p.trainer for p in chosen))
            scores = (*([None] * len(samplers)), *(samplers.index(p.sampler) for p in chosen))
            say(f"sample {len(prepared.prompts)} prompts x {new_tokens} tokens under {len(samplers)} sampler "
                f"configuration(s) and score them under {len(chosen)} trainer configuration(s), {mode} mode")
            folder = Path(scratch, mode)
            ran = run_process(prepared.spec(settings=settings, mode=mode, uniforms=uniforms, scores=scores), folder,
                              prepared.gpu_uuid, timeout_s)
            built, version = ran["model"], ran["version"]
            outputs = ran["outputs"]
            for number, pairing in enumerate(chosen):
                sample_out = outputs[samplers.index(pairing.sampler)]
                out = outputs[len(samplers) + number]
                tokens = np.asarray(sample_out["tokens"], dtype=np.int64)
                measures = mismatch(log_probs(np.load(folder / sample_out["logits_file"]), tokens),
                                    log_probs(np.load(folder / out["logits_file"]), tokens), ratio_threshold)
                results.append({"remedy": pairing.name, "mode": mode, "sampler": pairing.sampler.changes(),
                                "trainer": pairing.trainer.changes(), **measures,
                                "sampler_s": sample_out["prefill_s"] + sample_out["decode_s"],
                                "trainer_s": out["prefill_s"] + out["decode_s"]})
    baseline_s = results[0]["sampler_s"] + results[0]["trainer_s"]
    for row in results:
        row["time_ratio"] = (row["sampler_s"] + row["trainer_s"]) / baseline_s if baseline_s else None
    ranked = sorted(results, key=lambda row: (row["max_abs_logprob_diff"], row["time_ratio"] or 0.0))
    return {"document_version": DOCUMENT_VERSION, "workload": prepared.workload(built),
            "device": prepared.device_name, "version": version, "threads": prepared.threads, "seed": seed,
            "prompts": prepared.prompt_summary(), "new_tokens": new_tokens, "temperature": sampler.temperature,
            "ratio_threshold": ratio_threshold, "pairs": results, "ranked": [row["remedy"] for row in ranked],
            "bitwise_remedies": [row["remedy"] for row in ranked if row["bitwise_equal"]]}
