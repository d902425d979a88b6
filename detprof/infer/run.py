"""``detprof infer`` as a Python API: the invariance grid of greedy decoding.

The same prompts are decoded greedily under a reference configuration (each prompt alone,
unpadded, KV cache on, one prefill, SDPA, float32, detprof's CPU threads) and under each row's
configurations (detprof.infer.rows), in one fresh process; the run-to-run row decodes the
reference again in a second fresh process. Each configuration is compared with its row's
baseline bit for bit (detprof.infer.compare), and the comparison is shown able to see a 1-ulp
change in one logit. The decoding runs in the framework's backend (PyTorch only).
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detprof.backend import backend_for, require_support
from detprof.check.limits import RUN_TIMEOUT_S
from detprof.check.run import require_timeout
from detprof.documents import DOCUMENT_VERSION, InferenceCell, InferenceGridDocument, InferenceRow
from detprof.errors import ArgumentError, DetprofError, require
from detprof.gpus import select_device
from detprof.infer.compare import Decoding, compare, one_ulp_control, worst
from detprof.infer.divergence import RECORDS_FILE, first_divergent_module, load_records
from detprof.infer.prompts import (
    MAX_PROMPT_TOKENS,
    MAX_PROMPTS,
    TOKENIZER_FILE,
    random_prefix,
    random_prompts,
    read_prompts,
)
from detprof.infer.rows import DEFAULT_ROWS, REFERENCE, ROW_BY_NAME, ROW_NAMES, ROWS, GridOptions, Row
from detprof.infer.spec import (
    ATTENTIONS,
    DTYPES,
    INFERENCE_MODES,
    DecodeSettings,
    InferenceSpec,
    ModelSource,
)
from detprof.runner.config import CPU_THREADS

DEFAULT_ARCH = "gpt2-small"
MAX_NEW_TOKENS = 1024
INSTALL_HINT = "pip install 'detprof[transformers]'"


class InferenceError(DetprofError):
    """An inference process that failed, timed out or wrote nothing usable, in one line."""


@dataclass(frozen=True)
class PromptChoice:
    """Which prompts: ``count`` seeded random prompts of ``shortest`` to ``longest`` tokens, or the
    token ids or text of ``file`` (then the others are not used), text tokenized by ``tokenizer`` (a
    tokenizer.json or a folder holding one; default a --config folder's own)."""

    count: int = 8
    shortest: int = 8
    longest: int = 32
    file: str | None = None
    tokenizer: str | None = None


def model_source(arch: str | None, config: str | None, vocab: int | None,
                 model: str | None = None) -> tuple[ModelSource, int, int | None]:
    """(the source, its vocabulary, its longest sequence or None when unknown) of ``--arch``,
    ``--config`` or ``--model``; ArgumentError for an arch that cannot be decoded, a missing config,
    one that needs remote code, a vocabulary given with a config or missing with a model. Reads
    config.json, imports no framework and runs no user code."""
    from detprof.usercode import parse_reference
    from detprof.zoo import arch_spec, canonical_arch

    require(sum(given is not None for given in (arch, config, model)) <= 1,
            "--arch, --config and --model are alternatives; give one")
    if model is not None:
        require(vocab is not None and vocab >= 2, "--model needs --num-classes: the vocabulary its FUNCTION(vocab) "
                                                  "builds and the prompts are drawn from")
        module, function = parse_reference(model, "--model")
        module = str(Path(module).resolve()) if module.endswith(".py") else module
        return ModelSource(model=f"{module}:{function}", vocab=vocab), int(vocab or 0), None
    if config is None:
        name = canonical_arch(arch or DEFAULT_ARCH)
        spec = arch_spec(name)
        decodable = ", ".join(n for n, s in _zoo().items() if s.decodes)
        require(spec.decodes, f"--arch {arch!r} is not a causal language model detprof can decode; use {decodable}, "
                              f"or --config with a Hugging Face config")
        require(vocab is None or 2 <= vocab <= spec.num_classes,
                f"--num-classes {vocab} is not accepted for {name}; use 2 to {spec.num_classes:,} (its vocabulary)")
        return ModelSource(arch=name, vocab=vocab), vocab or spec.num_classes, spec.max_sequence_length
    require(vocab is None, "--num-classes is not accepted with --config; the config's vocab_size is used")
    given = Path(config).expanduser()
    file = given / "config.json" if given.is_dir() else given
    require(given.exists(), f"--config {config!r} does not exist; give a config.json or a folder holding one")
    require(file.is_file(), f"--config {config!r} holds no config.json")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArgumentError(f"--config {config!r}: {file.name} is not JSON ({error})") from None
    require(isinstance(data, dict) and isinstance(data.get("model_type"), str),
            f"--config {config!r}: {file.name} has no model_type; a Hugging Face config names its model type")
    if "auto_map" in data:
        raise ArgumentError(f"--config {config!r} needs remote code (its auto_map names "
                            f"{', '.join(sorted(data['auto_map']))}); detprof runs no code from a model folder: "
                            f"use a model type transformers ships")
    vocab_size = data.get("vocab_size")
    require(type(vocab_size) is int and vocab_size >= 2, f"--config {config!r}: vocab_size is {vocab_size!r}; "
                                                         f"a causal language model's config gives it")
    longest = next((data[key] for key in ("max_position_embeddings", "n_positions") if type(data.get(key)) is int),
                   None)
    return ModelSource(config=str(given.resolve())), int(vocab_size), longest


def _zoo() -> dict[str, Any]:
    from detprof.zoo import ARCHS

    return ARCHS


def _require_rows(rows: Sequence[str]) -> tuple[Row, ...]:
    require(not isinstance(rows, str), "rows must be row names (a sequence), not one text")
    if tuple(rows) == ("all",):
        return ROWS
    unknown = [name for name in rows if name not in ROW_BY_NAME]
    require(not unknown and bool(rows),
            f"--rows {','.join(rows)!r} is not accepted; use some of {', '.join(ROW_NAMES)}, or all")
    return tuple(row for row in ROWS if row.name in rows)


def _require_options(options: GridOptions, rows: tuple[Row, ...]) -> None:
    names = {row.name for row in rows}
    if names & {"batch", "position"}:
        require(bool(options.batch_sizes) and all(2 <= b <= MAX_PROMPTS for b in options.batch_sizes),
                f"--batch-sizes {','.join(map(str, options.batch_sizes))} is not accepted; use sizes from 2 to "
                f"{MAX_PROMPTS} (each compared with a prompt alone)")
    if "padding" in names:
        require(1 <= options.padding <= MAX_PROMPT_TOKENS,
                f"--padding {options.padding} is not accepted; use 1 to {MAX_PROMPT_TOKENS} pad tokens")
    if "prefix-reuse" in names:
        require(1 <= options.shared_prefix <= MAX_PROMPT_TOKENS,
                f"--shared-prefix {options.shared_prefix} is not accepted; use 1 to {MAX_PROMPT_TOKENS} tokens")
    if "chunked-prefill" in names:
        require(1 <= options.prefill_chunk <= MAX_PROMPT_TOKENS,
                f"--prefill-chunk {options.prefill_chunk} is not accepted; use 1 to {MAX_PROMPT_TOKENS} tokens")
    bad_dtype = next((d for d in options.dtypes if d not in DTYPES or d == "float32"), None)
    require(bad_dtype is None, f"--dtypes {','.join(options.dtypes)!r} is not accepted; use some of bfloat16, float16 "
                               f"(each compared with float32)")
    bad_attention = next((a for a in options.attentions if a not in ATTENTIONS or a == "sdpa"), None)
    require(bad_attention is None, f"--attention {','.join(options.attentions)!r} is not accepted; use eager "
                                   f"(compared with sdpa)")


def _require_prompts(prompts: PromptChoice) -> None:
    if prompts.file is not None:
        return
    require(1 <= prompts.count <= MAX_PROMPTS, f"--prompts {prompts.count} is not accepted; use 1 to {MAX_PROMPTS}")
    require(1 <= prompts.shortest <= prompts.longest <= MAX_PROMPT_TOKENS,
            f"--prompt-tokens {prompts.shortest},{prompts.longest} is not accepted; use MIN,MAX with "
            f"1 <= MIN <= MAX <= {MAX_PROMPT_TOKENS}")


def _unique(settings: list[DecodeSettings]) -> tuple[DecodeSettings, ...]:
    return tuple(dict.fromkeys(settings))


def read_decodings(result: dict[str, Any], folder: Path) -> dict[str, Decoding]:
    """Each settings key's Decoding, the logits read from the files the process wrote."""
    return {output["key"]: Decoding(np.asarray(output["tokens"], dtype=np.int64),
                                    np.load(folder / output["logits_file"]))
            for output in result["outputs"]}


def run_process(spec: InferenceSpec, folder: Path, gpu_uuid: str | None, timeout_s: float) -> dict[str, Any]:
    from detprof.process.child import Ending
    from detprof.process.results import last_line

    folder.mkdir(parents=True, exist_ok=True)
    ended = backend_for("pytorch").run_inference(spec, folder, gpu_uuid, timeout_s)
    if ended.ending is Ending.TIMEOUT:
        raise InferenceError(f"an inference process exceeded {timeout_s:g} s and was killed; give --timeout more")
    if ended.document is None:
        tail = last_line(ended.log_tail)
        raise InferenceError(f"an inference process ended without a result ({ended.how})"
                             + (f"; its last output: {tail}" if tail else ""))
    if ended.error is not None:
        raise InferenceError(f"decoding {spec.source.describe()} failed: {ended.error.splitlines()[0][:300]}")
    return ended.document


@dataclass(frozen=True)
class Prepared:
    """What the grid and the cost share once every value is checked: the model's source and its
    vocabulary, the prompts (token ids) and where they came from, the tokens to decode, the seed,
    the reference's CPU threads (None on a GPU) and the other count of the threads row, the device."""

    source: ModelSource
    vocab: int
    prompts: tuple[tuple[int, ...], ...]
    prompt_source: str
    new_tokens: int
    seed: int
    threads: int | None
    other_threads: int | None
    device: str  # "cpu" or "cuda:0"
    device_name: str
    gpu_uuid: str | None

    def spec(self, settings: tuple[DecodeSettings, ...], **changes: Any) -> InferenceSpec:
        """The InferenceSpec decoding these prompts under ``settings`` (``changes``: its other fields)."""
        return InferenceSpec(source=self.source, prompts=self.prompts, new_tokens=self.new_tokens, settings=settings,
                             seed=self.seed, threads=self.threads, device=self.device).but(**changes)

    def prompt_summary(self, count: int | None = None) -> dict[str, Any]:
        """The prompts (the first ``count``) in a document: count, shortest, longest, where from."""
        lengths = [len(p) for p in self.prompts[:count]]
        return {"count": len(lengths), "min_tokens": min(lengths), "max_tokens": max(lengths),
                "source": self.prompt_source}

    def probe(self, folder: Path, timeout_s: float) -> None:
        """Build a user's model or config once in a child before anything is measured, so that a
        mistake is one line (InferenceError); nothing for a zoo arch."""
        if not self.source.arch:
            run_process(self.spec(settings=()), folder, self.gpu_uuid, timeout_s)

    def workload(self, built: dict[str, Any]) -> dict[str, Any]:
        """The model in a document: its name, source and what the process built (class, parameters)."""
        return {"arch": self.source.arch or built.get("model_type") or "config", "source": self.source.describe(),
                **built}


def _own_tokenizer(source: ModelSource) -> str | None:
    """A --config folder's own tokenizer.json, when it has one."""
    if source.config is None:
        return None
    folder = Path(source.config) if Path(source.config).is_dir() else Path(source.config).parent
    return str(folder) if (folder / TOKENIZER_FILE).is_file() else None


def prepare(arch: str | None, config: str | None, vocab: int | None, model: str | None, prompts: PromptChoice,
            new_tokens: int, seed: int, threads: int | None, gpu: str | None, timeout_s: float,
            extra_tokens: int) -> Prepared:
    """Check the values the grid and the cost share (ArgumentError naming the first bad one), draw or
    read the prompts, and choose the device; ``extra_tokens``: pad tokens a configuration may add
    (counted against the model's positions)."""
    require_support(backend_for("pytorch"), "inference", "detprof infer")
    source, vocab_size, longest = model_source(arch, config, vocab, model)
    require(1 <= new_tokens <= MAX_NEW_TOKENS, f"--new-tokens {new_tokens} is not accepted; use 1 to {MAX_NEW_TOKENS}")
    require_timeout(timeout_s)
    cpus = os.cpu_count() or 1
    require(threads is None or 1 <= threads <= cpus, f"--threads {threads} is not accepted; use 1 to {cpus}")
    _require_prompts(prompts)
    if prompts.file:
        tokenizer = prompts.tokenizer or _own_tokenizer(source)
        read = read_prompts(prompts.file, vocab_size, tokenizer)
        token_ids, prompt_source = read.ids, read.describe(prompts.file)
    else:
        require(prompts.tokenizer is None, "--tokenizer is an option of --prompts-file (text prompts)")
        token_ids = random_prompts(prompts.count, prompts.shortest, prompts.longest, vocab_size, seed)
        prompt_source = f"random token ids, seed {seed}"
    widest = max(len(p) for p in token_ids) + extra_tokens
    require(longest is None or widest + new_tokens <= longest,
            f"prompts of up to {widest} tokens (padding included) and {new_tokens} new tokens exceed the model's "
            f"{longest} positions; use shorter prompts or fewer --new-tokens")
    if importlib.util.find_spec("transformers") is None:
        raise ArgumentError(f"detprof infer builds Hugging Face models; transformers is not installed ({INSTALL_HINT})")
    device = select_device(gpu)
    on_gpu = device.gpu is not None
    reference_threads = threads or CPU_THREADS
    return Prepared(source=source, vocab=vocab_size, prompts=token_ids, prompt_source=prompt_source,
                    new_tokens=new_tokens, seed=seed, threads=None if on_gpu else reference_threads,
                    other_threads=None if on_gpu else next((n for n in (2, 1) if n != reference_threads
                                                            and n <= cpus), None),
                    device="cuda:0" if on_gpu else "cpu", device_name=device.name,
                    gpu_uuid=device.gpu.uuid if device.gpu else None)


def _locate(spec: InferenceSpec, grid: list[InferenceRow], rows: tuple[Row, ...], options: GridOptions,
            folder: Path, uuid: str | None, timeout_s: float, say: Callable[[str], None]) -> None:
    """Name the first differing module of each differing cell (sets its ``op``): a one-process row's
    two settings are probed in one more process; a fresh-process row's (the run row) are recorded
    in two new processes and compared here. When those two recorded the token alike, the
    difference did not recur, and the cell says so (``not_located``)."""
    wanted: list[tuple[InferenceCell, DecodeSettings, DecodeSettings]] = []
    for row, document_row in zip(rows, grid, strict=True):
        for settings, cell in zip(row.configurations(options), document_row["cells"], strict=True):
            if not cell.get("first_difference"):
                continue
            if row.fresh_process:
                _locate_across_processes(spec, cell, settings, folder, uuid, timeout_s, say)
            else:
                wanted.append((cell, row.baseline(options), settings))
    if not wanted:
        return
    needed = _unique([s for _, baseline, other in wanted for s in (baseline, other)])
    index = {s.key(): i for i, s in enumerate(needed)}
    items = tuple((index[baseline.key()], index[other.key()], cell["first_difference"]["prompt"],  # type: ignore[index]
                   cell["first_difference"]["step"]) for cell, baseline, other in wanted)  # type: ignore[index]
    say(f"locate the first differing op of {len(items)} configuration(s)")
    located = run_process(spec.but(settings=needed, locate=items, keep_logits=False), folder, uuid, timeout_s)
    for (cell, _, _), finding in zip(wanted, located["located"], strict=True):
        cell["op"] = finding["op"]


def _locate_across_processes(spec: InferenceSpec, cell: InferenceCell, settings: DecodeSettings, folder: Path,
                             uuid: str | None, timeout_s: float, say: Callable[[str], None]) -> None:
    """The run row's cell: its first differing token recorded in two new processes, then compared."""
    first = cell["first_difference"] or {}
    say(f"record prompt {first['prompt']}'s token {first['step']} in two new processes (the run row)")
    recordings = []
    for side in ("a", "b"):
        place = folder / f"record-{side}"
        ran = run_process(spec.but(settings=(settings,), record=(0, first["prompt"], first["step"]), locate=(),
                                   keep_logits=False), place, uuid, timeout_s)
        recordings.append(load_records(ran["recorded"], place / RECORDS_FILE))
    found = first_divergent_module(*recordings)
    if found is None:
        cell["not_located"] = ("two new processes recorded that token bit for bit alike: the run-to-run difference "
                               "did not recur")
    else:
        cell["op"] = {**found, "probed": "recorded in two new processes, where the difference recurred"}


def run_inference_grid(arch: str | None = None, config: str | None = None, vocab: int | None = None,
                       model: str | None = None, rows: Sequence[str] | None = None,
                       options: GridOptions | None = None,
                       prompts: PromptChoice | None = None, new_tokens: int = 16, seed: int = 0,
                       threads: int | None = None, gpu: str | None = "cpu", timeout_s: float = RUN_TIMEOUT_S,
                       mode: str = "default", locate_op: bool = False,
                       on_progress: Callable[[str], None] | None = None) -> InferenceGridDocument:
    """The invariance grid (see the module docstring) of ``arch`` (a zoo causal LM, default
    gpt2-small, with ``vocab`` tokens), ``config`` (a Hugging Face config.json or model folder) or
    ``model`` (MODULE:FUNCTION: FUNCTION(vocab) returns a causal LM that takes input ids, an
    attention mask, position ids and a Hugging Face cache, and returns ``logits``):
    per row, per configuration, the prompts that kept every token, the bitwise-equal logits, the
    first divergent token, the largest |logit difference| and the argmax flips. ``rows``: row
    names (detprof.infer.rows), or ("all",); by default every row but compile whose factor exists
    on this kind of device (a row named that does not is left out, and the document says so). Every value is
    checked before a process starts (ArgumentError); ``threads`` is the reference's CPU thread
    count (default detprof's), the threads row compares it with the other of 1 and 2. ``mode``:
    default, or batch-invariant (every configuration decoded under detprof's fixed-order ops).
    ``locate_op``: for each differing configuration of a one-process row, a third process decodes
    its first differing prompt again with both settings up to the first step whose logits differ,
    and names the first module whose row for that token differs (its ``op``)."""
    require(mode in INFERENCE_MODES, f"--mode {mode!r} is not accepted; use one of {', '.join(INFERENCE_MODES)}")
    chosen_rows = _require_rows(rows if rows is not None else DEFAULT_ROWS)
    names = {row.name for row in chosen_rows}
    given_options = options or GridOptions()
    extra_tokens = (given_options.padding if "padding" in names else 0) + \
        (given_options.shared_prefix if "prefix-reuse" in names else 0)
    prepared = prepare(arch, config, vocab, model, prompts or PromptChoice(), new_tokens, seed, threads, gpu,
                       timeout_s, extra_tokens=extra_tokens)
    options = GridOptions(**{**asdict(given_options), "threads": prepared.other_threads})
    _require_options(options, chosen_rows)
    require(not {"batch", "position"} & names or max(options.batch_sizes) <= len(prepared.prompts),
            f"--batch-sizes {','.join(map(str, options.batch_sizes))} is not accepted with {len(prepared.prompts)} "
            f"prompts; a batch cannot hold more prompts than there are (give more --prompts)")
    left_out = {row.name: f"its factor exists on a {row.device.upper()} only"
                for row in chosen_rows if not row.runs_on(prepared.gpu_uuid is not None) and row.device}
    chosen_rows = tuple(row for row in chosen_rows if row.name not in left_out)
    if rows is None:  # the default rows of this kind of device: none was asked for and left out
        left_out = {}
    require(bool(chosen_rows), f"--rows {','.join(left_out)} cannot run on {prepared.device_name}: "
                               f"{'; '.join(f'{name}: {why}' for name, why in left_out.items())}")

    same_process = [s for row in chosen_rows if not row.fresh_process
                    for s in [row.baseline(options), *row.configurations(options)]]
    shared_prefix = random_prefix(options.shared_prefix, prepared.vocab, seed) if "prefix-reuse" in names else ()
    spec = prepared.spec(_unique([REFERENCE, *same_process]), mode=mode, shared_prefix=shared_prefix)
    uuid = prepared.gpu_uuid
    say = on_progress or (lambda message: None)
    with tempfile.TemporaryDirectory(prefix="detprof-infer-") as scratch:
        prepared.probe(Path(scratch, "probe"), timeout_s)
        say(f"decode {len(spec.prompts)} prompts x {new_tokens} tokens under {len(spec.settings)} configurations "
            f"({prepared.source.describe()})")
        first = run_process(spec, Path(scratch, "first"), uuid, timeout_s)
        sides = {"first": read_decodings(first, Path(scratch, "first"))}
        compiled = {output["key"]: output["compiled"] for output in first["outputs"] if output.get("compiled")}
        timings = [{"label": s.label(), "process": "first", "prefill_s": o["prefill_s"], "decode_s": o["decode_s"]}
                   for s, o in zip(spec.settings, first["outputs"], strict=True)]
        if any(row.fresh_process for row in chosen_rows):
            say("decode the reference again in a new process (the run row)")
            second = run_process(spec.but(settings=(REFERENCE,)), Path(scratch, "second"), uuid, timeout_s)
            sides["second"] = read_decodings(second, Path(scratch, "second"))
            timings.append({"label": REFERENCE.label(), "process": "second",
                            "prefill_s": second["outputs"][0]["prefill_s"],
                            "decode_s": second["outputs"][0]["decode_s"]})
        reference = sides["first"][REFERENCE.key()]
        grid: list[InferenceRow] = []
        for row in chosen_rows:
            baseline = row.baseline(options)
            side = sides["second" if row.fresh_process else "first"]
            cells = [compare(settings.label() if not row.fresh_process else "a new process", settings.changes(),
                             sides["first"][baseline.key()], side[settings.key()])
                     for settings in row.configurations(options)]
            for settings, cell in zip(row.configurations(options), cells, strict=True):
                if settings.compiled:
                    cell["compiled"] = compiled[settings.key()]
            grid.append({"row": row.name, "question": row.question, "baseline": baseline.label(), "cells": cells,
                         "verdict": worst([cell["verdict"] for cell in cells])})
        if locate_op:
            _locate(spec, grid, chosen_rows, options, Path(scratch, "locate"), uuid, timeout_s, say)
        control = one_ulp_control(reference)
    differing = [row["row"] for row in grid if row["verdict"] != "bitwise"]
    return {"document_version": DOCUMENT_VERSION, "workload": prepared.workload(first["model"]),
            "device": prepared.device_name, "mode": mode, "replaced_ops": first.get("replaced_ops") or {},
            "switches": first.get("switches") or {}, "nondeterministic_ops": first.get("nondeterministic_ops") or [],
            "version": first["version"], "threads": spec.threads, "seed": seed,
            "prompts": {**prepared.prompt_summary(), "shared_prefix_tokens": len(shared_prefix)},
            "new_tokens": new_tokens, "reference": asdict(REFERENCE),
            "rows": grid, "rows_left_out": left_out, "differing_rows": differing, "sensitivity": control,
            "invariant": not differing and bool(control["caught"]), "timings": timings}
