"""A record of greedy decoding (``detprof infer --record FILE``): the decode ``detprof infer`` takes
as its reference (each prompt alone, unpadded, KV cache on, SDPA, float32), kept as a record
(detprof.records.format) so that ``detprof compare`` sets it beside one made on another machine,
torch version, device or mode.

The record's steps are the new tokens, its "parameters" the prompts: after each token, a digest of
each prompt's float32 logits and the token chosen, and a sketch of all prompts' logits, so that a
comparison names the first token and prompt whose logits differ and how far apart they grew.
Its 1-ulp control moves the first prompt's chosen logit at the first token. The decoding runs in a
fresh process (detprof.infer.run); the parent digests the logits it wrote.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from detprof.check.limits import RUN_TIMEOUT_S
from detprof.errors import require
from detprof.infer.compare import Decoding
from detprof.infer.rows import REFERENCE
from detprof.infer.run import PromptChoice, prepare, read_decodings, run_process
from detprof.infer.spec import INFERENCE_MODES
from detprof.records.format import Record, array_sketch, new_record, sign_pattern

LOGITS_SCHEME = "logits-blake2b"  # each prompt's float32 logits at a token, hashed by BLAKE2b (128 bits)
INFERENCE_KIND = "inference"


def logits_digest(row: np.ndarray) -> str:
    """``float32(V)#<32 hex digits>``: a BLAKE2b digest of one prompt's logits at one token."""
    contiguous = np.ascontiguousarray(row, dtype=np.float32)
    return f"float32{contiguous.shape}#{hashlib.blake2b(contiguous.tobytes(), digest_size=16).hexdigest()}"


def decoding_steps(decoding: Decoding) -> list[dict[str, Any]]:
    """Per new token: each prompt's logits digest (``params``), the tokens chosen, and the sketch of
    every prompt's logits at that token."""
    pattern = sign_pattern()
    prompts, tokens = decoding.tokens.shape
    return [{"params": [logits_digest(decoding.logits[p, k]) for p in range(prompts)],
             "tokens": [int(t) for t in decoding.tokens[:, k]], "buffers": [], "nonfinite":
             [f"prompt {p}" for p in range(prompts) if not np.isfinite(decoding.logits[p, k]).all()],
             "sketch": array_sketch(decoding.logits[:, k], pattern)} for k in range(tokens)]


def ulp_control(decoding: Decoding) -> dict[str, Any]:
    """The first token's digests with the first prompt's chosen logit moved by one ulp."""
    row = decoding.logits[0, 0].copy()
    chosen = int(np.argmax(row))
    row[chosen] = np.nextafter(row[chosen], np.float32(np.inf), dtype=np.float32)
    first = [logits_digest(decoding.logits[p, 0]) for p in range(decoding.logits.shape[0])]
    return {"parameter": "prompt 0", "index": 0, "params": [logits_digest(row), *first[1:]]}


def make_inference_record(arch: str | None = None, config: str | None = None, vocab: int | None = None,
                          model: str | None = None, prompts: PromptChoice | None = None, new_tokens: int = 16,
                          seed: int = 0, threads: int | None = None, gpu: str | None = "cpu",
                          timeout_s: float = RUN_TIMEOUT_S, mode: str = "default",
                          on_progress: Callable[[str], None] | None = None) -> Record:
    """Decode the prompts greedily under ``detprof infer``'s reference settings in a fresh process
    and return the record (see the module docstring). The model, prompts, tokens, seed, threads,
    device and mode are ``run_inference_grid``'s; bad values raise ArgumentError before anything runs."""
    require(mode in INFERENCE_MODES, f"--mode {mode!r} is not accepted; use one of {', '.join(INFERENCE_MODES)}")
    prepared = prepare(arch, config, vocab, model, prompts or PromptChoice(), new_tokens, seed, threads, gpu,
                       timeout_s, extra_tokens=0)
    spec = prepared.spec((REFERENCE,), mode=mode, fingerprint=True)
    with tempfile.TemporaryDirectory(prefix="detprof-record-") as scratch:
        prepared.probe(Path(scratch, "probe"), timeout_s)
        if on_progress:
            on_progress(f"decode {len(spec.prompts)} prompts x {new_tokens} tokens ({prepared.source.describe()}, "
                        f"{mode} mode)")
        result = run_process(spec, Path(scratch, "decode"), prepared.gpu_uuid, timeout_s)
        decoding = read_decodings(result, Path(scratch, "decode"))[REFERENCE.key()]
    ids = hashlib.blake2b(repr(prepared.prompts).encode(), digest_size=16).hexdigest()
    environment = result.get("environment") or {}
    configuration: dict[str, Any] = {"mode": mode, "seed": seed, "steps": new_tokens, "learning_rate": None,
                     "learning_rate_given": False, "device": "cuda" if prepared.gpu_uuid else "cpu",
                     "device_name": prepared.device_name, "threads": environment.get("threads", spec.threads),
                     "compiled": False, "ops_at": [], "settings": REFERENCE.label(),
                     "prompts": {**prepared.prompt_summary(), "ids_blake2b": ids}}
    return new_record(framework="pytorch", workload={**prepared.workload(result["model"]), "kind": INFERENCE_KIND},
                      configuration=configuration, digest_scheme=LOGITS_SCHEME,
                      parameters=[f"prompt {p}" for p in range(len(prepared.prompts))], buffers=[], initial=None,
                      steps=decoding_steps(decoding), ops={}, ulp_control=ulp_control(decoding),
                      nondeterministic_ops=result.get("nondeterministic_ops") or [], environment=environment)
