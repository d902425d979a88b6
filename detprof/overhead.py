"""The ``overhead`` capability as a Python API: measure a configuration, keep it in the store pair by
pair, and hand back its JSON document. The configuration is built in ``detprof.runner.config``
(``build_config``), the document in ``detprof.documents``, the store's records and trace folders in
``detprof.store.records`` and ``detprof.store.traces``.

    from detprof.overhead import run_overhead
    doc = run_overhead("vgg19", gpu="v100")      # dict, as `detprof overhead --json` prints
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detprof.documents import DOCUMENT_VERSION, AblationDocument, OverheadDocument
from detprof.errors import require
from detprof.gpus import DeviceChoice, select_device
from detprof.modes import AblationStep
from detprof.runner.config import OverheadConfig, build_config
from detprof.store import ResultStore, StoreLike, open_store
from detprof.store.errors import StoreFullError, StoreLockedError
from detprof.store.traces import release_trace_folder, trace_folder
from detprof.workload import DEFAULT_ARCH, WorkloadRequest
from detprof.workload.resolve import SDPA_BACKENDS

if TYPE_CHECKING:  # the measuring modules bring pandas and scipy: not before the values are checked
    from detprof.runner.outcomes import JobOutcome, OverheadResult

API_COMMAND = "Python API: detprof.overhead.run_overhead"


class MeasurementInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a measurement after some of its pairs had finished: they are stored
    as run ``run_id``, marked partial, with the ratio over those ``pairs``."""

    def __init__(self, run_id: int, pairs: int, document: OverheadDocument | None = None) -> None:
        super().__init__(f"interrupted; {pairs} finished pairs stored as run {run_id} (partial)")
        self.run_id = run_id
        self.pairs = pairs
        self.document = document  # the stored partial run's summary document


class PartialRunKeeper:
    """Keeps a measurement in progress in the store, pair by pair: the first finished pair creates
    its run (marked partial), each later one replaces it, and the finished measurement replaces it
    for the last time. So a run stopped by Ctrl-C, SIGTERM, a kill or a timeout keeps every pair
    it finished, and its traces with it."""

    def __init__(self, store: ResultStore, trace_dir: Path) -> None:
        self.store = store
        self.trace_dir = trace_dir
        self.run_id: int | None = None
        self.last: OverheadResult | None = None  # the run as last stored

    def keep(self, result: OverheadResult) -> None:
        """Store the run so far; a database locked by another writer is skipped this time (the
        finished run is stored, or kept as a pending file, as any run is)."""
        from detprof.store.records import run_records

        records = run_records(result)
        try:
            if self.run_id is None:
                self.run_id = self.store.save_run(*records, keep_if_locked=False)
                release_trace_folder(self.trace_dir)  # a stored run refers to these traces now
            else:
                self.store.replace_run(self.run_id, *records, keep_if_locked=False)
        except (StoreLockedError, StoreFullError):
            return  # this pair stays unstored; the finished run (or its pending file) has it
        self.last = result

    def finish(self, result: OverheadResult) -> int:
        """Store the finished measurement (replacing the partial run, if any); returns its run id."""
        from detprof.store.records import run_records, store_result

        if self.run_id is None:
            return store_result(self.store, result)
        self.store.replace_run(self.run_id, *run_records(result))
        return self.run_id


def measure_and_store(config: OverheadConfig, device: DeviceChoice, db: StoreLike = None,
                      on_job_done: Callable[[JobOutcome], None] | None = None,
                      command: str | None = None) -> OverheadDocument:
    """Run a validated config, store it (traces beside the database) and return its summary document.

    ``command`` is what the stored run records as its origin (the command line passes its own;
    from Python it is API_COMMAND). The run is stored as soon as its first pair has finished and
    updated after each pair, so that Ctrl-C (or SIGTERM, which the command line turns into the
    same) keeps the finished pairs as a partial run and raises MeasurementInterrupted naming it.
    A measurement stopped before its first pair finished leaves nothing behind; one killed
    outright is cleaned up by the next measurement into the same store. When the database stays
    locked, the measurement is kept as a pending file (StoreLockedError says where).
    """
    from detprof.runner.launcher import measure_overhead
    from detprof.runner.summary import summary_document

    with open_store(db, create=True) as store:
        store.store_pending()
        with trace_folder(store) as trace_dir:
            keeper = PartialRunKeeper(store, trace_dir)
            try:
                result = measure_overhead(config, device.kind, device.name, str(trace_dir),
                                          command=command or API_COMMAND, on_job_done=on_job_done,
                                          on_pair_done=keeper.keep)
            except KeyboardInterrupt as stop:
                if keeper.run_id is None or keeper.last is None or isinstance(stop, MeasurementInterrupted):
                    raise
                document = summary_document(keeper.last, keeper.run_id)
                raise MeasurementInterrupted(keeper.run_id, document["ratio_pairs"], document) from stop
        try:
            run_id = keeper.finish(result)
        except (StoreLockedError, StoreFullError) as unstored:
            # Traces stay when something refers to them: a pending file, or the partial run stored
            # before; otherwise nothing ever will, and they go now rather than filling the disk.
            if unstored.kept is not None or keeper.run_id is not None:
                release_trace_folder(trace_dir)
            else:
                shutil.rmtree(trace_dir, ignore_errors=True)
            raise
        release_trace_folder(trace_dir)
    return summary_document(result, run_id)


def _request(workload: WorkloadRequest | str | None) -> WorkloadRequest:
    """A request from what was given: a WorkloadRequest, a zoo arch's name, or None (the default arch)."""
    if isinstance(workload, WorkloadRequest):
        return workload
    return WorkloadRequest(arch=workload or DEFAULT_ARCH)


def run_overhead(workload: WorkloadRequest | str | None = None, gpu: str | None = None, db: StoreLike = None,
                 on_job_done: Callable[[JobOutcome], None] | None = None, command: str | None = None,
                 **options: Any) -> OverheadDocument:
    """Measure, store and return the summary document of one overhead comparison (times in ms,
    memory in bytes). ``workload`` is a WorkloadRequest, or a zoo arch's name; ``options`` are
    build_config's keyword arguments (modes, timed_steps, precision, framework, ...).
    """
    device = select_device(gpu)
    return measure_and_store(build_config(_request(workload), device, **options), device, db, on_job_done, command)


def ablation_configs(request: WorkloadRequest, device: DeviceChoice, only: list[str] | None = None,
                     **options: Any) -> tuple[list[tuple[Any, OverheadConfig]], list[Any]]:
    """The configs of ``overhead --ablate``: each ablation step (detprof.modes.ABLATION) against
    default, validated before anything runs. Returns (steps to measure with their configs, steps
    skipped because they cannot change anything on this device: cuDNN, cuBLAS and TF32 on a CPU).
    ``only`` limits the steps to those modes."""
    from detprof.modes import ABLATION

    known = [step.mode for step in ABLATION]
    for mode in only or []:
        require(mode in known, f"--ablate-modes {mode!r} is not accepted; use any of {', '.join(known)}")
    require("modes" not in options, "--ablate measures every step against default; drop --modes")
    chosen = [step for step in ABLATION if not only or step.mode in only]
    compiled = bool(request.compiled)
    measured = [step for step in chosen if step.skip_reason(device.kind == "cuda", compiled) is None]
    skipped = [step for step in chosen if step not in measured]
    require(bool(measured), "--ablate-modes names only switches that change nothing here (GPU switches on a CPU, or "
                            "Inductor's without --compile)")
    return [(step, replace(build_config(request, device, modes=("default", step.mode), **options), part_of="ablation"))
            for step in measured], skipped


def run_ablation(workload: WorkloadRequest | str | None = None, gpu: str | None = None, db: StoreLike = None,
                 only: list[str] | None = None,
                 on_step: Callable[[Any, int, int], None] | None = None,
                 on_job_done: Callable[[JobOutcome], None] | None = None, command: str | None = None,
                 **options: Any) -> AblationDocument:
    """Each switch of the deterministic mode on its own against default (``overhead --ablate``),
    every comparison an adaptive paired measurement stored as its own run. Returns ``steps``: one
    row per measured step (mode, what it changes, run_id, ratio and 95% CI of step time, kernel
    ratio, peak memory of both sides in bytes, memory ratio, verdict) and ``skipped``.
    ``on_step(step, number, total)`` is called as each comparison starts."""
    device = select_device(gpu)
    request = _request(workload)
    plans, skipped = ablation_configs(request, device, only, **options)
    rows = []
    sdpa_skip: dict[str, Any] | None = None
    for number, (step, config) in enumerate(plans, start=1):
        if on_step:
            on_step(step, number, len(plans))
        document = measure_and_store(config, device, db, on_job_done, command)
        rows.append(_ablation_row(step.mode, step.changes, document))
        if step.mode == "deterministic":
            held, why_not = _sdpa_held_step(document)
            if held is None:
                sdpa_skip = {"mode": SDPA_HELD, "changes": SDPA_HELD_CHANGES, "reason": why_not}
                continue
            if on_step:
                on_step(AblationStep(SDPA_HELD, f"{SDPA_HELD_CHANGES} ({held})", gpu_only=False), number, len(plans))
            held_config = replace(build_config(replace(request, sdpa_backend=held), device,
                                               modes=("default", "deterministic"), **options), part_of="ablation")
            rows.append({**_ablation_row(SDPA_HELD, f"{SDPA_HELD_CHANGES} ({held})",
                                         measure_and_store(held_config, device, db, on_job_done, command)),
                         "sdpa_backend": held})
    built = plans[0][1].workload
    return {"document_version": DOCUMENT_VERSION,
            "arch": built.arch, "workload": built.as_dict(), "device": {"kind": device.kind, "name": device.name},
            "steps": rows, "skipped": [{"mode": s.mode, "changes": s.changes,
                                        "reason": s.skip_reason(device.kind == "cuda", bool(built.compiled))}
                                       for s in skipped] + ([sdpa_skip] if sdpa_skip else [])}


SDPA_HELD = "deterministic, SDPA held"
SDPA_HELD_CHANGES = "every determinism switch, attention held on the SDPA backend default ran"


def _sdpa_held_step(document: OverheadDocument) -> tuple[str | None, str | None]:
    """(the SDPA backend to hold the deterministic mode to, None) when the two modes ran different
    ones: default's, which separates the cost of the backend the mode switched to; else (None, why
    there is nothing to separate)."""
    ran = [list(mode.get("attention_backends") or []) for mode in document["modes"]]
    if not any(ran):
        return None, "no scaled-dot-product attention ran in this network"
    if ran[0] == ran[1]:
        return None, (f"the deterministic mode ran the same SDPA backend as default ({', '.join(ran[0])}): no "
                      "switch to separate")
    if len(ran[0]) != 1:
        return None, f"default ran several SDPA backends ({', '.join(ran[0])}): there is no one backend to hold"
    if ran[0][0] not in SDPA_BACKENDS:
        return None, f"default ran the {ran[0][0]} SDPA backend, which --sdpa-backend cannot choose"
    return str(ran[0][0]), None


def _ablation_row(mode: str, changes: str, document: OverheadDocument) -> dict[str, Any]:
    """One measured row of ``overhead --ablate``: ``mode`` against default, from its stored document."""
    return {"mode": mode, "changes": changes, "run_id": document["run_id"],
                     "ratio": document["ratio"], "ratio_ci": document["ratio_ci"],
                     "ratio_pairs": document["ratio_pairs"], "verdict": document["verdict"],
                     "kernel_ratio": document["kernel_ratio"], "memory_ratio": document["memory_ratio"],
                     "kernel_times_reliable": document["kernel_times_reliable"],
                     "peak_mem_bytes": [m["peak_mem_bytes"] for m in document["modes"]],
                     "step_ms": [m["step_ms"] for m in document["modes"]],
                     "determinism": document["modes"][1]["determinism"],
                     "failed_jobs": len(document["failed_jobs"])}
