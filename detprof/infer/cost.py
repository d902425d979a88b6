"""What batch invariance costs (``detprof infer --cost``): the overhead protocol for decoding.

For each batch size, rounds of fresh processes decode the same batch of prompts, one in the
baseline mode (default) and one in each treatment (batch-invariant, and deterministic when asked),
the order rotated each round (A B, B A; or A B C, B C A, C A B) so that a drift of the machine falls
on every mode; each process decodes the batch once to warm up and once timed, step by step. Per
treatment, the ratio of the median decode step time (treatment over baseline) and of the prefill
time, with a paired Student-t interval on the log ratios over the rounds
(detprof.stats.paired_ratio), is the cost; its throughput loss is 1 - 1/ratio. Beside it, the
published costs of batch-invariant inference in serving systems (kernels_db/inference_reference.json),
GPU figures of other systems, never detprof's.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from detprof.documents import DOCUMENT_VERSION, InferenceCostDocument
from detprof.errors import require
from detprof.infer.prompts import MAX_PROMPTS
from detprof.infer.run import PromptChoice, prepare, run_process
from detprof.infer.spec import INFERENCE_MODES, DecodeSettings
from detprof.stats import MIN_PAIRS_FOR_CI, paired_ratio

DEFAULT_COST_BATCH_SIZES = (1, 8)
DEFAULT_PAIRS = 5
MAX_PAIRS = 100
MODES = ("default", "batch-invariant")  # baseline, treatment


def published_anchors() -> list[dict[str, Any]]:
    """The published costs of batch-invariant inference (kernels_db/inference_reference.json)."""
    from detprof.kernels.catalog import catalog_path

    path = catalog_path().parent / "inference_reference.json"
    anchors: list[dict[str, Any]] = json.loads(path.read_text())["anchors"]
    return anchors


def _side(result: dict[str, Any], batch: int) -> dict[str, Any]:
    output = result["outputs"][0]
    steps_ms = [1000.0 * s for s in output["step_s"]]
    prompt_tokens = sum(output["prompt_tokens"])
    return {"steps_ms": steps_ms, "prefill_ms": 1000.0 * output["prefill_s"], "prompt_tokens": prompt_tokens,
            "batch_size": batch}


def _figures(sides: list[dict[str, Any]]) -> dict[str, float]:
    """Median over processes of each process's median decode step (ms) and prefill (ms), and the
    tokens per second they make."""
    import numpy as np

    step_ms = float(np.median([np.median(side["steps_ms"]) for side in sides]))
    prefill_ms = float(np.median([side["prefill_ms"] for side in sides]))
    batch = sides[0]["batch_size"]
    return {"decode_ms_per_step": step_ms, "decode_tokens_per_s": 1000.0 * batch / step_ms,
            "prefill_ms": prefill_ms, "prefill_tokens_per_s": 1000.0 * sides[0]["prompt_tokens"] / prefill_ms}


def run_inference_cost(arch: str | None = None, config: str | None = None, vocab: int | None = None,
                       model: str | None = None, batch_sizes: Sequence[int] = DEFAULT_COST_BATCH_SIZES,
                       pairs: int = DEFAULT_PAIRS, prompts: PromptChoice | None = None, new_tokens: int = 32,
                       seed: int = 0, threads: int | None = None, gpu: str | None = "cpu",
                       timeout_s: float = 1800.0, modes: Sequence[str] = MODES,
                       on_progress: Callable[[str], None] | None = None) -> InferenceCostDocument:
    """The cost of each treatment mode against the baseline (``modes``: the baseline first, default
    against batch-invariant unless given; see the module docstring), per batch size: each mode's
    decode ms per step and tokens/s, prefill ms and tokens/s (medians over its processes), and one
    row per treatment with the ratios and their 95% CIs. ``pairs``: rounds (each runs every mode
    once). ``prompts``' count is not used: each batch size decodes that many prompts (drawn with
    ``prompts``' lengths, or the file's first ones)."""
    require(not isinstance(modes, str), "modes must be mode names (a sequence), not one text")
    require(len(modes) >= 2 and len(set(modes)) == len(modes) and all(m in INFERENCE_MODES for m in modes),
            f"modes {','.join(modes)!r} are not accepted; use the baseline then one or more others of "
            f"{', '.join(INFERENCE_MODES)}, each once")
    require(not isinstance(batch_sizes, str), "batch_sizes must be whole numbers (a sequence), not one text")
    require(bool(batch_sizes) and all(1 <= b <= MAX_PROMPTS for b in batch_sizes),
            f"--batch-sizes {','.join(map(str, batch_sizes))} is not accepted; use sizes from 1 to {MAX_PROMPTS}")
    require(2 <= pairs <= MAX_PAIRS, f"--pairs {pairs} is not accepted; use 2 to {MAX_PAIRS} (a CI needs "
                                     f"{MIN_PAIRS_FOR_CI})")
    largest = max(batch_sizes)
    choice = prompts or PromptChoice()
    prepared = prepare(arch, config, vocab, model, replace(choice, count=largest), new_tokens, seed, threads, gpu,
                       timeout_s, extra_tokens=0)
    require(len(prepared.prompts) >= largest, f"--batch-sizes {largest} needs {largest} prompts; the prompts file "
                                              f"has {len(prepared.prompts)}")
    say = on_progress or (lambda message: None)
    rows = []
    built: dict[str, Any] = {}
    version = ""
    with tempfile.TemporaryDirectory(prefix="detprof-infer-cost-") as scratch:
        prepared.probe(Path(scratch, "probe"), timeout_s)
        for batch in batch_sizes:
            measured: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
            for pair in range(pairs):
                turn = pair % len(modes)
                order = [*modes[turn:], *modes[:turn]]
                for mode in order:
                    say(f"batch {batch}: round {pair + 1} of {pairs}, {mode}")
                    spec = prepared.spec(settings=(DecodeSettings(batch_size=batch),), mode=mode,
                                         prompts=prepared.prompts[:batch], warmup=True, keep_logits=False)
                    folder = Path(scratch, f"b{batch}-p{pair}-{mode}")
                    result = run_process(spec, folder, prepared.gpu_uuid, timeout_s)
                    built, version = result["model"], result["version"]
                    measured[mode].append(_side(result, batch))
            figures = {mode: _figures(sides) for mode, sides in measured.items()}
            baseline = measured[modes[0]]
            for treatment in modes[1:]:
                treated = measured[treatment]
                decode = paired_ratio([(a["steps_ms"], b["steps_ms"]) for a, b in zip(baseline, treated, strict=True)])
                prefill = paired_ratio([([a["prefill_ms"]], [b["prefill_ms"]])
                                        for a, b in zip(baseline, treated, strict=True)])
                rows.append({"batch_size": batch, "pairs": pairs, "treatment": treatment, "modes": figures,
                             "decode_ratio": decode.ratio, "decode_ci": [decode.low, decode.high],
                             "prefill_ratio": prefill.ratio, "prefill_ci": [prefill.low, prefill.high],
                             "decode_throughput_cost_percent": 100.0 * (1.0 - 1.0 / decode.ratio)})
    return {"document_version": DOCUMENT_VERSION, "workload": prepared.workload(built), "device": prepared.device_name,
            "version": version,
            "threads": prepared.threads, "seed": seed, "modes": list(modes), "new_tokens": new_tokens,
            "prompts": prepared.prompt_summary(largest), "rows": rows, "anchors": published_anchors()}
