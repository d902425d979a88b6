"""What an inference process runs (detprof.infer.run starts it through the torch backend): build
the spec's model, then decode its prompts under each of its settings in order, saving each one's
logits as a .npy file beside the result and its tokens in the result itself."""

from __future__ import annotations

import copy
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detprof.backends.torch.compiled import compile_module
from detprof.backends.torch.environment import environment_fingerprint
from detprof.backends.torch.inference.decode import decode, score
from detprof.backends.torch.inference.invariant import BatchInvariantOps
from detprof.backends.torch.inference.locate import ProbeAt, RowProbe
from detprof.backends.torch.inference.models import DTYPES, build_model, describe_model, set_attention
from detprof.backends.torch.switches import apply_toggles, capture_nondeterministic_ops, read_switches, set_tf32
from detprof.documents import DOCUMENT_VERSION, InferenceRunResult, write_json_whole
from detprof.infer.divergence import RECORDS_FILE, ModuleRow, first_divergent_module, save_records
from detprof.infer.spec import DecodeSettings, InferenceSpec
from detprof.modes import toggles_for


def _write(out_path: str, document: InferenceRunResult) -> None:
    write_json_whole(out_path, {"document_version": DOCUMENT_VERSION, **document})


def _versions() -> str:
    """The frameworks that ran, as their packages name themselves (transformers read from its
    metadata: importing it costs seconds a process that builds no Hugging Face model need not pay)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        transformers = version("transformers")
    except PackageNotFoundError:
        transformers = "not installed"
    return f"torch {torch.__version__}, transformers {transformers}"


def _model_for(models: dict[str, torch.nn.Module], base: torch.nn.Module, settings: DecodeSettings) -> torch.nn.Module:
    """The base model cast to the settings' dtype (a copy per dtype, kept) with their attention,
    through torch.compile when the settings say so (one compiled wrapper per dtype, kept, so that
    its graphs are compiled once)."""
    if settings.dtype not in models:
        models[settings.dtype] = copy.deepcopy(base).to(DTYPES[settings.dtype])
    model = models[settings.dtype]
    if settings.compiled:
        key = f"{settings.dtype}, compiled"
        if key not in models:
            models[key] = compile_module(model, dynamic=True)
        model = models[key]
    set_attention(model, settings.attention)
    return model


def _compiled_so_far() -> dict[str, int]:
    """The graphs Dynamo has compiled in this process and the graph breaks it took (its counters)."""
    from torch._dynamo.utils import counters

    return {"graphs": int(counters["stats"]["unique_graphs"]),
            "graph_breaks": int(sum(counters["graph_break"].values()))}


def _switches(mode: str, compiling: bool) -> dict[str, object]:
    """Set the deterministic mode's switches (detprof.modes; Inductor's too when ``compiling``) when
    ``mode`` is deterministic, and return them as torch reads them back; {} in the other modes,
    which leave PyTorch's defaults."""
    if mode != "deterministic":
        return {}
    return apply_toggles(toggles_for("deterministic"), compiled=compiling)


@contextmanager
def _mode(mode: str, replaced: dict[str, int]) -> Iterator[None]:
    """Decode under ``mode``: the batch-invariant ops (their calls added to ``replaced``, by op), or
    PyTorch's own."""
    if mode != "batch-invariant":
        yield
        return
    ops = BatchInvariantOps()
    with ops:
        yield
    for name, count in ops.replaced.items():
        replaced[name] = replaced.get(name, 0) + count


def _set_tf32(settings: DecodeSettings, process_default: tuple[bool, bool]) -> None:
    """TF32 for cuBLAS's float32 products and cuDNN's convolutions as the settings ask, else as the
    process began (PyTorch's defaults); the flags exist, and do nothing, on a CPU."""
    matmul, cudnn = (settings.tf32, settings.tf32) if settings.tf32 is not None else process_default
    set_tf32(matmul=matmul, cudnn=cudnn)


def _probed(spec: InferenceSpec, models: dict[str, torch.nn.Module], base: torch.nn.Module, index: int,
            prompt: int, step: int, device: torch.device, process_tf32: tuple[bool, bool]) -> list[ModuleRow]:
    """Settings ``index`` re-decoded up to ``step`` with a probe on prompt ``prompt``'s token: the rows
    of every module call of that forward (detprof.backends.torch.inference.locate)."""
    settings = spec.settings[index]
    torch.set_num_threads(settings.threads or spec.threads or torch.get_num_threads())
    _set_tf32(settings, process_tf32)
    model = _model_for(models, base, settings)
    probe = RowProbe(getattr(model, "_orig_mod", model), compiled=settings.compiled)
    try:
        with _mode(spec.mode, {}):
            decode(model, spec.prompts, step + 1, settings, spec.pad_token, device, spec.uniforms,
                   ProbeAt(probe, prompt, step), spec.shared_prefix)
    finally:
        probe.remove()
    return probe.records


def _locate(spec: InferenceSpec, models: dict[str, torch.nn.Module], base: torch.nn.Module,
            item: tuple[int, int, int, int], device: torch.device,
            process_tf32: tuple[bool, bool]) -> dict[str, Any]:
    """Both settings of ``item`` probed (``_probed``); the first module whose row differs
    (detprof.infer.divergence), or None. A compiled side is probed with a graph break at every
    module (the finding says so)."""
    first, second, prompt, step = item
    sides = [_probed(spec, models, base, index, prompt, step, device, process_tf32) for index in (first, second)]
    found = first_divergent_module(sides[0], sides[1])
    if found is not None and (spec.settings[first].compiled or spec.settings[second].compiled):
        found["probed"] = ("compiled with a graph break at every module: Inductor fused ops within a module only; "
                           "the ops named are the eager side's")
    return {"baseline": first, "other": second, "prompt": prompt, "step": step,
            "modules_compared": len(sides[0]), "op": found}


def decode_settings(raw: dict[str, Any], out_path: str) -> int:
    """The process's entry: decode the spec's prompts under each settings (see the module docstring);
    ``{"error": ...}`` instead of a traceback when something fails, ``status: oom`` when memory
    ran out."""
    try:
        spec = InferenceSpec.from_json(raw)
        device = torch.device(spec.device)
        compiling = any(s.compiled for s in spec.settings)
        switches = _switches(spec.mode, compiling)
        if spec.threads:
            torch.set_num_threads(spec.threads)
        base = build_model(spec.source, spec.seed, "sdpa").to(device)
        models: dict[str, torch.nn.Module] = {"float32": base}
        outputs = []
        tokens: list[tuple[tuple[int, ...], ...]] = []  # each settings' tokens, for a teacher-forced one to score
        replaced: dict[str, int] = {}
        warned = ExitStack()  # the ops that warned they have no deterministic implementation (deterministic mode)
        nondeterministic = warned.enter_context(capture_nondeterministic_ops()) if switches else set()
        process_tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        locating = bool(spec.locate) or spec.record is not None
        for index, settings in enumerate(spec.settings if not locating else ()):  # locating decodes its own
            torch.set_num_threads(settings.threads or spec.threads or torch.get_num_threads())
            _set_tf32(settings, process_tf32)
            model = _model_for(models, base, settings)
            with _mode(spec.mode, replaced):
                if settings.teacher_forced:
                    source = spec.scores[index]
                    if source is None or not 0 <= source < index:
                        raise ValueError(f"settings {index} is teacher-forced but scores no earlier settings")
                    decoded = score(model, spec.prompts, tokens[source], settings, spec.pad_token, device)
                else:
                    if spec.warmup:
                        decode(model, spec.prompts, spec.new_tokens, settings, spec.pad_token, device, spec.uniforms,
                               prefix=spec.shared_prefix)
                    decoded = decode(model, spec.prompts, spec.new_tokens, settings, spec.pad_token, device,
                                     spec.uniforms, prefix=spec.shared_prefix)
            compiled = _compiled_so_far() if settings.compiled else None
            if compiled is not None and not compiled["graphs"]:
                raise RuntimeError("torch.compile compiled no graph of the model (Dynamo ran it eagerly), so the "
                                   "compiled decoding could not differ from the eager one; drop the compile row")
            tokens.append(tuple(tuple(int(t) for t in row) for row in decoded.tokens))
            name = f"logits-{index}.npy" if spec.keep_logits else None
            if name:
                np.save(Path(out_path).parent / name, decoded.logits)
            outputs.append({"key": settings.key(), "tokens": decoded.tokens.tolist(), "logits_file": name,
                            "prefill_s": decoded.prefill_s, "decode_s": decoded.decode_s, "step_s": decoded.step_s,
                            "prompt_tokens": [len(p) for p in spec.prompts], "compiled": compiled})
        located = [_locate(spec, models, base, item, device, process_tf32) for item in spec.locate]
        recorded = save_records(_probed(spec, models, base, *spec.record, device, process_tf32),
                                Path(out_path).parent / RECORDS_FILE) if spec.record is not None else []
        warned.close()
        if switches:
            switches = read_switches(compiled=compiling)  # after decoding: did they hold?
        result: InferenceRunResult = {
            "outputs": outputs, "model": describe_model(base), "version": _versions(), "threads": spec.threads,
            "mode": spec.mode, "replaced_ops": replaced, "located": located, "switches": switches,
            "nondeterministic_ops": sorted(nondeterministic), "recorded": recorded}
        if spec.fingerprint:  # what a record keeps of where it decoded (detprof.records), read after decoding
            result["environment"] = environment_fingerprint(device, read_switches(compiled=compiling))
        _write(out_path, result)
        return 0
    except torch.OutOfMemoryError as error:
        _write(out_path, {"error": f"out of memory: {error}"[:2000], "status": "oom"})
        return 1
    except Exception as error:
        _write(out_path, {"error": f"{type(error).__name__}: {error}"[:2000],
                          "traceback": traceback.format_exc()[-4000:]})
        return 1
