"""``detprof advise``: the cheapest configuration that is confirmed bitwise reproducible here.

Each candidate mode is checked (two trainings in fresh processes, compared bit for bit); each one
that passes is measured against default with the paired protocol; the recommendation is the
passing candidate with the smallest measured step-time ratio, with what to put in a training
script to get it. Nothing is assumed: a candidate that should be deterministic but was not is
reported as such, and on a CPU default itself often passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from detprof.backend import backend_for, require_support
from detprof.check.run import DEFAULT_STEPS, run_check
from detprof.documents import DOCUMENT_VERSION, IDENTICAL, AdviseDocument, ratio_bounds
from detprof.errors import require
from detprof.gpus import select_device
from detprof.modes import settings_code, toggles_for
from detprof.overhead import measure_and_store
from detprof.process.results import CheckError
from detprof.runner.config import CPU_THREADS, build_config
from detprof.store import open_store
from detprof.workload import WorkloadRequest


@dataclass(frozen=True)
class Candidate:
    """One configuration advise checks: a mode, whether it can differ from the others only on a GPU,
    and the SDPA backend attention is held to (None: PyTorch's choice)."""

    mode: str
    gpu_only: bool
    sdpa_backend: str | None = None

    @property
    def label(self) -> str:
        """``deterministic``, or ``deterministic, SDPA flash``."""
        return self.mode + (f", SDPA {self.sdpa_backend}" if self.sdpa_backend else "")


# Cheapest first by what they switch on. On a CPU the cuDNN and cuBLAS switches do nothing, so
# deterministic-nofill would repeat deterministic-algorithms there.
CANDIDATES = (Candidate("default", False), Candidate("deterministic-algorithms", False),
              Candidate("deterministic-autotune", True), Candidate("deterministic-nofill", True),
              Candidate("deterministic", False))
# For networks with attention, on a GPU: the deterministic mode with each fused SDPA backend held,
# since which backend the mode leaves PyTorch to pick, and what its backward costs, differ by GPU.
SDPA_CANDIDATES = (Candidate("deterministic", True, "flash"), Candidate("deterministic", True, "efficient"),
                   Candidate("deterministic", True, "cudnn"), Candidate("deterministic", True, "math"))
ATTENTION_FAMILIES = ("transformer", "diffusion")
MEGATRON_TARGET = 1.10  # Megatron-LM: bit-exact training under 10% step overhead
ADVISE_MAX_TIME_S = {"cpu": 30.0, "cuda": 120.0}  # per comparison; the overhead command allows more


def against_target(ratio: float | None, ci: list[float] | None, target: float = MEGATRON_TARGET) -> str:
    """Where a step-time ratio stands against a target ratio: ``under``, ``over`` (the whole 95% CI
    on one side), ``unresolved`` (the CI straddles it) or ``unknown`` (no ratio)."""
    if ratio is None:
        return "unknown"
    low, high = ci if ci else (ratio, ratio)
    if high < target:
        return "under"
    if low > target:
        return "over"
    return "unresolved"


def choose(passing: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The candidate to recommend among those that passed (in CANDIDATES order, fewest switches
    first): the first whose cost is not resolved above the cheapest's, i.e. whose 95% CI overlaps
    the cheapest one's. A point estimate below another's inside the noise does not win."""
    if not passing:
        return None
    cheapest = min(passing, key=lambda row: row["ratio"])
    low, high = ratio_bounds(cheapest)
    return next(row for row in passing if ratio_bounds(row)[0] <= high and ratio_bounds(row)[1] >= low)


def _advice(row: dict[str, Any] | None, cpu_threads: int | None, on_gpu: bool) -> dict[str, Any] | None:
    if row is None:
        return None
    settings = settings_code(toggles_for(row["mode"]), cpu_threads, on_gpu)
    if row.get("sdpa_backend"):
        member = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION",
                  "math": "MATH"}[row["sdpa_backend"]]
        settings["python"].append(f"with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.{member}): "
                                  "...  # around the training step")
    return {**row, "toggles": toggles_for(row["mode"]).as_dict(), "settings": settings}


def _has_attention(request: WorkloadRequest) -> bool:
    """Whether the workload may attend through SDPA: a zoo transformer or diffusion UNet, or a
    user's model or workload (unknown in advance: its candidates fail their check if not)."""
    from detprof.zoo import arch_spec

    if request.model or request.workload:
        return True
    return arch_spec(request.arch or "resnet18").family in ATTENTION_FAMILIES


class Stages:
    """advise's stages as progress: each started one counts as completed work once the next starts."""

    def __init__(self, on_progress: Callable[..., None] | None, total: int) -> None:
        self.on_progress, self.total, self.done = on_progress, total, -1

    def start(self, text: str) -> None:
        self.done += 1
        self.update(text)

    def update(self, text: str) -> None:
        if self.on_progress:
            self.on_progress(text, total=self.total, completed=max(self.done, 0))

    def job_reporter(self, stage: str) -> Callable[[Any], None]:
        """What a measurement calls after each job (a JobOutcome): the stage, with its pair and job."""
        return lambda job: self.update(f"{stage}: pair {job.spec.repeat + 1}, {job.spec.mode} {job.status}")

    def drop(self) -> None:
        """One stage fewer to come (a measurement that a failed check made unnecessary)."""
        self.total -= 1


def run_advise(request: WorkloadRequest | None = None, gpu: str | None = "auto", threads: int | None = None,
               check_steps: int = DEFAULT_STEPS, max_time_s: float | None = None, db: Any = None,
               command: str | None = None, on_progress: Callable[..., None] | None = None,
               framework: str = "pytorch") -> AdviseDocument:
    """For ``request``'s workload: check every candidate mode, measure the ones that pass against default, recommend the
    cheapest. Returns ``candidates`` (mode, bitwise_identical, max_abs_diff, first divergent step,
    and for those measured: run_id, ratio, ratio_ci, memory_ratio, kernel_ratio) and
    ``recommendation`` (None when no candidate passed) with its ``settings`` (environment and
    Python lines) and ``megatron_target`` (under/over/unresolved 10% step overhead).

    ``on_progress(text, total=, completed=)`` is called as each stage starts, and after each job of
    a measurement; ``total`` counts every check, and every measurement still to come (a candidate
    whose check fails takes its measurement off the count)."""
    backend = backend_for(framework)
    require_support(backend, "audit", "advise")
    request = request or WorkloadRequest()
    device = select_device(gpu)
    require(check_steps >= 1, f"--steps {check_steps} is not accepted; use 1 or more")
    require(max_time_s is None or max_time_s > 0, f"--max-time {max_time_s} is not accepted; use seconds > 0")
    cpu_threads = (threads or CPU_THREADS) if device.kind == "cpu" else None
    listed = CANDIDATES + (SDPA_CANDIDATES if request.sdpa_backend in (None, "auto") and _has_attention(request)
                           else ())
    chosen = [c for c in listed if device.kind == "cuda" or not c.gpu_only]
    requests = {c.label: replace(request, sdpa_backend=c.sdpa_backend) if c.sdpa_backend else request
                for c in chosen}
    configs = {c.label: replace(build_config(requests[c.label], device, modes=("default", c.mode), threads=threads,
                                             max_time_s=max_time_s or ADVISE_MAX_TIME_S[device.kind]),
                                part_of="advise")
               for c in chosen if c.mode != "default"}  # every bad value fails here, before anything runs
    with open_store(db, create=True):  # and the database, still before anything runs
        pass
    candidates: list[dict[str, Any]] = []
    stages = Stages(on_progress, len(chosen) + sum(c.mode != "default" for c in chosen))
    for candidate in chosen:
        mode = candidate.mode
        stages.start(f"check {candidate.label}: two trainings of {check_steps} steps")
        try:
            checked = run_check(requests[candidate.label], mode=mode, gpu=gpu, steps=check_steps,
                                gates={"threads": (cpu_threads, cpu_threads)} if cpu_threads else None)
        except CheckError as error:
            if not candidate.sdpa_backend:
                raise
            # a backend this GPU or model cannot run (e.g. no kernel for its head size): not a candidate here
            candidates.append({"mode": mode, "sdpa_backend": candidate.sdpa_backend, "label": candidate.label,
                               "bitwise_identical": False, "max_abs_diff": None, "first_divergent_step": None,
                               "run_id": None, "ratio": None, "ratio_ci": None, "memory_ratio": None,
                               "kernel_ratio": None, "verdict": None, "error": str(error)[:300]})
            stages.drop()
            continue
        if mode != "default" and checked["verdict"] != IDENTICAL:
            stages.drop()  # not measured
        divergence = checked["first_divergence"]
        candidates.append({"mode": mode, **({"sdpa_backend": candidate.sdpa_backend} if candidate.sdpa_backend else {}),
                           # identical only when the check could have seen a difference (check.verdict)
                           "label": candidate.label, "bitwise_identical": checked["verdict"] == IDENTICAL,
                           "check_verdict": checked["verdict"], "check_reasons": checked["verdict_reasons"],
                           "max_abs_diff": checked["max_abs_diff"],
                           "first_divergent_step": divergence["step"] if divergence else None,
                           "run_id": None, "ratio": 1.0 if mode == "default" else None, "ratio_ci": None,
                           "memory_ratio": 1.0 if mode == "default" else None, "kernel_ratio": None,
                           "verdict": None})
    for row in candidates:
        if row["mode"] == "default" or not row["bitwise_identical"]:
            continue
        stage = f"overhead of {row['label']} against default"
        stages.start(stage)
        document = measure_and_store(configs[row["label"]], device, db, command=command,
                                     on_job_done=stages.job_reporter(stage))
        row.update(run_id=document["run_id"], ratio=document["ratio"], ratio_ci=document["ratio_ci"],
                   memory_ratio=document["memory_ratio"], kernel_ratio=document["kernel_ratio"],
                   verdict=document["verdict"])
    for row in candidates:
        row["megatron_target"] = against_target(row["ratio"], row["ratio_ci"]) if row["bitwise_identical"] else None
    passing = [row for row in candidates if row["bitwise_identical"] and row["ratio"] is not None]
    on_gpu = device.kind == "cuda"
    recommendation = _advice(choose(passing), cpu_threads, on_gpu)
    switched_on = _advice(choose([row for row in passing if row["mode"] != "default"]), cpu_threads, on_gpu)
    full = next((row for row in candidates if row["label"] == "deterministic"), None)
    workload = next(iter(configs.values())).workload
    return {"document_version": DOCUMENT_VERSION,
            "workload": workload.as_dict(), "device": {"kind": device.kind, "name": device.name},
            "check_steps": check_steps, "threads": cpu_threads, "candidates": candidates,
            "recommendation": recommendation, "full_deterministic": full,
            "cheapest_with_switches": switched_on if recommendation and recommendation["mode"] == "default" else None,
            "megatron_target_ratio": MEGATRON_TARGET}
