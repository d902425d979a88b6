"""Two decodings of the same prompts compared, bit for bit (numpy only).

Greedy decoding makes the comparison a chain: while two sides chose the same tokens they saw the
same text, so their logits are comparable step by step; at the first token where they part, the
logits that chose it are still comparable, and everything after it is not (the contexts differ).
Equality is of the float32 bits (``view(uint32)``), so a NaN never equals anything by accident
and never hides as "no difference", and -0.0 differs from 0.0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detprof.documents import InferenceCell

BITWISE, LOGITS_DIFFER, TOKENS_DIFFER = "bitwise", "logits differ", "tokens differ"
SEVERITY = (BITWISE, LOGITS_DIFFER, TOKENS_DIFFER)  # a row's verdict is its worst cell's


@dataclass(frozen=True)
class Decoding:
    """One side: ``tokens`` (prompts x new tokens) and the float32 ``logits`` each was chosen from
    (prompts x new tokens x vocabulary)."""

    tokens: np.ndarray
    logits: np.ndarray


def first_divergent_tokens(baseline: Decoding, other: Decoding) -> np.ndarray:
    """Per prompt, the index of the first new token that differs (the token count when none)."""
    differs = baseline.tokens != other.tokens
    steps = baseline.tokens.shape[1]
    return np.where(differs.any(axis=1), differs.argmax(axis=1), steps)


def compare(label: str, changes: dict[str, object], baseline: Decoding, other: Decoding) -> InferenceCell:
    """``other`` against ``baseline`` (see detprof.documents.InferenceCell)."""
    if baseline.tokens.shape != other.tokens.shape or baseline.logits.shape != other.logits.shape:
        raise ValueError(f"{label}: shapes differ ({baseline.logits.shape} vs {other.logits.shape})")
    prompts, steps = baseline.tokens.shape
    first = first_divergent_tokens(baseline, other)
    bitwise_prompts = 0
    equal_before = True
    largest = 0.0
    nonfinite = 0
    flips = 0
    first_difference: dict[str, int] | None = None
    for prompt in range(prompts):
        compared = min(int(first[prompt]) + 1, steps)  # steps up to and including the first divergent one
        a = np.ascontiguousarray(baseline.logits[prompt, :compared], dtype=np.float32)
        b = np.ascontiguousarray(other.logits[prompt, :compared], dtype=np.float32)
        same_bits = a.view(np.uint32) == b.view(np.uint32)
        if same_bits.all():
            bitwise_prompts += 1
        elif first_difference is None:
            first_difference = {"prompt": prompt, "step": int(np.argmax(~same_bits.all(axis=-1)))}
        if first[prompt] < steps and not same_bits[: int(first[prompt])].all():
            equal_before = False
        finite = np.isfinite(a) & np.isfinite(b)
        nonfinite += int((~same_bits & ~finite).sum())
        if finite.any():
            with np.errstate(invalid="ignore", over="ignore"):
                difference = np.abs(a.astype(np.float64) - b.astype(np.float64))
            largest = max(largest, float(difference[finite].max()))
        flips += int((a.argmax(axis=-1) != b.argmax(axis=-1)).sum())
    diverged = first[first < steps]
    identical = int((first == steps).sum())
    verdict = BITWISE if bitwise_prompts == prompts else (LOGITS_DIFFER if identical == prompts else TOKENS_DIFFER)
    return {"label": label, "changes": dict(changes), "prompts": int(prompts), "identical_prompts": identical,
            "bitwise_prompts": bitwise_prompts,
            "first_divergent_token": ({"min": float(diverged.min()), "median": float(np.median(diverged))}
                                      if len(diverged) else None),
            "logits_equal_before_divergence": equal_before if len(diverged) else None,
            "max_abs_logit_diff": largest, "nonfinite_mismatches": nonfinite, "argmax_flips": flips,
            "verdict": verdict, "first_difference": first_difference}


def worst(verdicts: list[str]) -> str:
    """The worst of cell verdicts (bitwise < logits differ < tokens differ)."""
    return max(verdicts, key=SEVERITY.index) if verdicts else BITWISE


def one_ulp_control(reference: Decoding) -> dict[str, object]:
    """The comparison's own sensitivity: the reference against a copy with one logit moved by one
    ulp (the first prompt's first step, its largest logit: the one that chose the token). Caught
    when that cell is not bitwise."""
    nudged = reference.logits.copy()
    vocab_index = int(np.argmax(nudged[0, 0]))
    value = nudged[0, 0, vocab_index]
    nudged[0, 0, vocab_index] = np.nextafter(value, np.float32(np.inf), dtype=np.float32)
    cell = compare("1-ulp control", {}, reference, Decoding(reference.tokens, nudged))
    return {"caught": cell["verdict"] != BITWISE,
            "what": f"one logit (prompt 0, token 0, vocabulary id {vocab_index}) moved by one ulp",
            "max_abs_logit_diff": cell["max_abs_logit_diff"]}
