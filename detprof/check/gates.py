"""The check's gates, declared once: each factor a check can make its two runs differ in.

A gate is one row of ``GATES``: its name (the check document's ``differing_factor`` when its two
values differ), its command-line option and how that option's text parses into a typed pair
(run A's value, run B's), what it needs of the backend (the backend lists the gates it runs in
``Capabilities.gates``), the side spec field each run's value goes in, what the check document
keeps of the pair, how the header names it, and the few options it cannot run beside. The
command line's options, ``check --script``'s and ``--batch-invariance``'s refusals, ``run_check``
and the renderer all read this table; none names a gate of its own.

Adding a gate: a row here and its implementation where the runs read its side field (for
PyTorch, ``detprof.backends.torch.gates``); a document key in ``detprof.documents.CheckDocument``
for what it records. This module imports nothing heavy: the help and the refusals need no framework.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from detprof.check.limits import MAX_BUCKET_CAP_MB, MAX_LOADER_WORKERS, MAX_WORLD_SIZE
from detprof.errors import require
from detprof.parse import whole_number

Pair = tuple[Any, Any]  # run A's value, run B's
MAX_ACCUMULATION = 1024  # micro-batches per optimizer step
LOCATE_OP, COMPILED = "--locate-op", "--compile"  # what a gate may refuse beside it that is not a gate


@dataclass(frozen=True)
class Fit:
    """What a pair is checked against once the workload is known: the steps of each run and the batch size."""

    steps: int
    batch_size: int | None  # None: not built yet (what depends on it is checked again once it is)


@dataclass(frozen=True)
class Gate:
    """One factor a check can vary between its runs (see the module docstring)."""

    name: str  # the differing_factor when the two values differ, and the key of run_check's ``gates``
    option: str  # its command-line option
    help: str  # the option's help text; {cpu_threads} stands for detprof's default thread count
    subject: str  # what it varies, in words, for a refusal: "the DataLoader's worker processes"
    parse: Callable[[str], Pair]  # the option's text as a typed pair; ArgumentError naming the text otherwise
    record: Callable[[Pair, Mapping[str, Pair], list[dict[str, Any]]], dict[str, Any]]  # the document's keys
    describe: Callable[[Mapping[str, Any]], str]  # the header's words for it, from the check document
    side_field: str | None = None  # the side spec field each run's value goes in (None: run_check's own)
    accepted: str = ""  # what the option takes, for a refusal of a typed pair
    fits: Callable[[Pair, Fit], None] | None = None  # refuses a pair the workload or the steps cannot take
    always_varies: bool = False  # restart, compare: one option value makes the runs differ
    excludes: tuple[str, ...] = ()  # gates (by name), LOCATE_OP or COMPILED it cannot run beside, any value
    exclusion: str = ""  # why, for that refusal: "--restart-at compares a straight run with a restarted one"
    implies: tuple[str, Pair] | None = None  # a gate it needs, with that gate's pair when not given
    spell: Callable[[Pair], str] = lambda pair: ",".join(str(value) for value in pair)  # the pair as option text
    setting: Callable[[Mapping[str, Any]], str] | None = None  # the header's words when both runs share a value
    explain: Callable[[Mapping[str, Any]], list[list[str]]] = lambda _d: []  # the check table's rows on what it found

    def varies(self, pair: Pair) -> bool:
        """True when this pair makes the two runs differ."""
        return self.always_varies or pair[0] != pair[1]


def values_of(option: str, text: str, accepted: str) -> tuple[str, str]:
    """``"A,B"`` as ("A", "B"), ``"N"`` as ("N", "N"); ArgumentError naming the text otherwise."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    require(len(parts) in (1, 2), f"{option} {text!r} is not accepted; use one value or two as A,B ({accepted})")
    return (parts[0], parts[-1])


def whole_pair(option: str, low: int, high: int, accepted: str) -> Callable[[str], Pair]:
    """A parser of one or two whole numbers from ``low`` to ``high``; ``accepted`` completes its refusal."""

    def parse(text: str) -> Pair:
        pair = values_of(option, text, accepted)
        numbers = [whole_number(part) for part in pair]
        require(all(n is not None and low <= n <= high for n in numbers),
                f"{option} {text!r} is not accepted; use {accepted}, one or two as A,B")
        return (numbers[0], numbers[1])

    return parse


def _threads(text: str) -> Pair:
    cpus = os.cpu_count() or 1
    return whole_pair("--threads", 1, cpus, f"1 to {cpus} (this machine's CPUs)")(text)


def _devices(text: str) -> Pair:
    pair = values_of("--devices", text, "cpu or cuda, e.g. cpu,cuda")
    require(all(d in ("cpu", "cuda") for d in pair), f"--devices {text!r} is not accepted; use cpu or cuda, one or "
                                                     "two as A,B")
    return pair


COMPARE_COMPILED = "eager,compiled"  # check --compare: run A eager, run B through torch.compile


def _compare(text: str) -> Pair:
    require(text.strip() == COMPARE_COMPILED, f"--compare {text!r} is not accepted; use {COMPARE_COMPILED}")
    return (False, True)


def _restart(text: str) -> Pair:
    step = whole_number(text)
    require(step is not None, f"--restart-at {text!r} is not accepted; use a step number, after which run B is "
                              "saved and restarted")
    return (None, step)


def _restart_fits(pair: Pair, fit: Fit) -> None:
    require(fit.steps >= 2, f"--restart-at needs --steps 2 or more (run B is saved after a step and goes on from it); "
                            f"--steps is {fit.steps}")
    require(1 <= pair[1] < fit.steps, f"--restart-at {pair[1]} is not accepted with --steps {fit.steps}; use a step "
                                      f"from 1 to {fit.steps - 1}, after which run B is saved and restarted")


def _bucket_sizes(text: str) -> Pair:
    pair = values_of("--bucket-cap-mb", text, "DDP bucket sizes in MiB, e.g. 1,25")
    require(all(_size_in_mib(part) for part in pair),
            f"--bucket-cap-mb {text!r} is not accepted; use sizes in MiB above 0, at most {MAX_BUCKET_CAP_MB:,.0f}, "
            "one or two as A,B")
    return (float(pair[0]), float(pair[1]))


def _size_in_mib(text: str) -> bool:
    try:
        return 0 < float(text) <= MAX_BUCKET_CAP_MB
    except ValueError:
        return False


def _shares(option: str, what: str) -> Callable[[Pair, Fit], None]:
    """Refuses a pair whose values do not split the batch into equal shares."""

    def fits(pair: Pair, fit: Fit) -> None:
        if fit.batch_size is None:
            return
        for value in pair:
            require(fit.batch_size % int(value) == 0,
                    f"--batch-size {fit.batch_size} is not accepted with {option} {value}: the global batch must split "
                    f"into equal {what}; use a multiple of {value}")

    return fits


def _listed(key: str, kind: type = int) -> Callable[[Pair, Mapping[str, Pair], list[dict[str, Any]]], dict[str, Any]]:
    """A record of the pair as one document key: ``{key: [A, B]}``."""
    return lambda pair, _gates, _runs: {key: [kind(value) for value in pair]}


def _distributed_record(pair: Pair, gates: Mapping[str, Pair], runs: list[dict[str, Any]]) -> dict[str, Any]:
    buckets = gates.get("bucket-cap")
    return {"world_sizes": [int(size) for size in pair],
            "bucket_cap_mb": [float(b) for b in buckets] if buckets else None,
            "nccl_environment": runs[0].get("nccl_environment") or {}, "gpu_topology": runs[0].get("gpu_topology")}


def _versus(key: str, before: str, after: str = "", number: str = "") -> Callable[[Mapping[str, Any]], str]:
    """The header's words: ``before`` then the document's ``key`` values joined by " vs ", then ``after``."""
    return lambda d: before + " vs ".join(format(value, number) for value in d.get(key) or []) + after


def _shared(key: str, template: str) -> Callable[[Mapping[str, Any]], str]:
    """The header's words for a value both runs had: ``template`` with run A's value of the document's
    ``key``; "" when the document has no such key (the gate was not given)."""
    return lambda d: template.format(d[key][0]) if d.get(key) else ""


def _restart_explained(d: Mapping[str, Any]) -> list[list[str]]:
    """Where a restarted run parted from the straight one, and what that says of the checkpoint."""
    restart, divergence = d.get("restart_at"), d["first_divergence"]
    if restart is None or not divergence:
        return []
    step = divergence["step"]
    return [["restart", f"step {restart + 1}, the first after the restart, differs first: the checkpoint does not "
                        "restore everything the training depends on" if step == restart + 1
             else f"the runs parted at step {step}, "
                  + ("before the restart: the training itself is not reproducible here"
                     if step <= restart else "after the first step past the restart")]]


def _split_explained(label: str, split: str, reduced: str) -> Callable[[Mapping[str, Any]], list[str]]:
    """Why runs that split one batch in other shares differ: in buffers (BatchNorm's statistics over
    each share: another computation), or in parameters only (gradients summed in another order)."""

    def explained(d: Mapping[str, Any]) -> list[str]:
        buffer = (d["first_divergence"] or {}).get("buffer")
        return [label, f"buffers differ ({buffer} first): each {split} computes them over its own share of the "
                       "batch (BatchNorm's statistics, say), a different computation, not only another order of "
                       "summation" if buffer else
                f"only parameters differ: {reduced} in another order; the max |weight difference| measured is "
                f"{d['max_abs_diff']:.3g}"]

    return explained


_DISTRIBUTED = _split_explained("distributed", "process", "the all-reduce sums the gradients")
_ACCUMULATED = _split_explained("accumulation", "micro-batch", "the micro-batches' gradients add up")


def _distributed_explained(d: Mapping[str, Any]) -> list[list[str]]:
    if d["differing_factor"] in ("world-size", "bucket-cap") and not d["bitwise_identical"]:
        return [_DISTRIBUTED(d)]
    if d["differing_factor"] == "none" and d.get("world_sizes"):
        return [["distributed", f"DDP over {d['world_sizes'][0]} processes, run to run"]]
    return []


def _workers_explained(d: Mapping[str, Any]) -> list[list[str]]:
    if d["differing_factor"] != "workers" or d["bitwise_identical"]:
        return []
    return [["data loading", "the batches depend on the number of worker processes: the dataset draws from a "
                             "generator each worker seeds its own way (numpy's or random's global one, say); seed "
                             "it from the example's index instead"]]


def _accumulation_explained(d: Mapping[str, Any]) -> list[list[str]]:
    return [_ACCUMULATED(d)] if d["differing_factor"] == "accumulate" and not d["bitwise_identical"] else []


def _threads_run(side: Mapping[str, Any]) -> str:
    """The thread counts a run's steps had (several joined by /, when its code changed them)."""
    seen = side.get("threads_run") or ([side["threads"]] if side.get("threads") is not None else [])
    return "/".join(map(str, seen)) or "default"


GATES: tuple[Gate, ...] = (
    Gate("threads", "--threads", "CPU intra-op threads: N for both runs, or A,B to make the runs differ in that alone "
                                 "(default: {cpu_threads} for both; with --script, what the script sets, set before it "
                                 "starts). The verdict states the counts each run's steps really had.",
         "the CPU threads", _threads, lambda pair, _gates, _runs: {},
         lambda d: f"threads {_threads_run(d['runs'][0])} vs {_threads_run(d['runs'][1])} (as run)",
         side_field="threads", accepted="1 to this machine's CPUs"),
    Gate("device", "--devices", "cpu,cuda: run A on the CPU, run B on the GPU.", "the device", _devices,
         lambda pair, _gates, _runs: {},
         lambda d: f"device {d['runs'][0]['device']} vs {d['runs'][1]['device']}", accepted="cpu or cuda"),
    Gate("compile", "--compare", "eager,compiled: run A eager, run B through torch.compile, the same seeds and mode "
                                 "(low bits may legitimately differ).", "eager against compiled", _compare,
         lambda pair, _gates, _runs: {},
         lambda d: f"eager vs compiled ({d['runs'][0]['device']}, {_threads_run(d['runs'][0])} thread(s))",
         always_varies=True, excludes=(LOCATE_OP,), spell=lambda _pair: COMPARE_COMPILED,
         exclusion="--locate-op records the eager ops of a step, which compiled code replaces with Inductor's "
                   "kernels"),
    Gate("restart", "--restart-at", "Restart gate: run B trains K steps, saves a checkpoint, and goes on from it in a "
                                    "new process; compared with run A straight through (a --workload's own save and "
                                    "load are what is tested).", "a straight run against a restarted one", _restart,
         lambda pair, _gates, _runs: {"restart_at": int(pair[1])},
         lambda d: f"straight vs restarted from a checkpoint after step {d.get('restart_at')}",
         accepted="a step from 1 to --steps - 1", fits=_restart_fits, always_varies=True,
         spell=lambda pair: str(pair[1]),
         explain=_restart_explained, excludes=(LOCATE_OP, "compile", "device"),
         exclusion="--restart-at compares a straight run with a restarted one"),
    Gate("workers", "--workers", "Data-loading gate: A,B DataLoader worker processes (shuffling, seeded generator "
                                 "and worker_init_fn, a new batch every step).", "the DataLoader's worker processes",
         whole_pair("--workers", 0, MAX_LOADER_WORKERS, f"0 to {MAX_LOADER_WORKERS} worker processes"),
         _listed("loader_workers"), _versus("loader_workers", "DataLoader workers "), side_field="loader_workers",
         setting=_shared("loader_workers", "a DataLoader with {} worker(s)"), explain=_workers_explained,
         accepted=f"0 to {MAX_LOADER_WORKERS} worker processes", excludes=("compile", "device", "restart"),
         exclusion="--workers feeds both runs from a DataLoader, which a compiled, cross-device or restarted "
                   "comparison does not"),
    Gate("world-size", "--world-size", "Distributed gate: A,B DDP processes on this machine (gloo on CPUs, NCCL on "
                                       "GPUs), the same global batch; one value: run to run at that size.",
         "how one training is distributed",
         whole_pair("--world-size", 1, MAX_WORLD_SIZE, f"1 to {MAX_WORLD_SIZE} processes"), _distributed_record,
         _versus("world_sizes", "DDP world size "), side_field="world_size", explain=_distributed_explained,
         accepted=f"1 to {MAX_WORLD_SIZE} processes", fits=_shares("--world-size", "shares"),
         excludes=(LOCATE_OP, COMPILED, "compile", "device", "restart", "workers"),
         exclusion="--world-size and --bucket-cap-mb change how one training is distributed"),
    Gate("bucket-cap", "--bucket-cap-mb", "DDP's gradient bucket size in MiB, A,B to vary it (with --world-size; "
                                          "default 2 processes).", "DDP's gradient buckets", _bucket_sizes,
         lambda pair, _gates, _runs: {}, _versus("bucket_cap_mb", "DDP buckets of ", " MiB", "g"),
         side_field="bucket_cap_mb", accepted=f"sizes in MiB above 0, at most {MAX_BUCKET_CAP_MB:,.0f}",
         implies=("world-size", (2, 2))),  # buckets exist where gradients are reduced across processes
    Gate("accumulate", "--accumulate", "Gradient-accumulation gate: A,B micro-batches per optimizer step, the same "
                                       "global batch (each micro-batch's loss scaled by 1/count).",
         "the micro-batches of one optimizer step",
         whole_pair("--accumulate", 1, MAX_ACCUMULATION, f"1 to {MAX_ACCUMULATION} micro-batches"),
         _listed("accumulation"), _versus("accumulation", "micro-batches per step "), side_field="accumulation",
         setting=_shared("accumulation", "{} micro-batch(es) per step"), explain=_accumulation_explained,
         accepted=f"1 to {MAX_ACCUMULATION} micro-batches", fits=_shares("--accumulate", "micro-batches"),
         excludes=(LOCATE_OP, "world-size"),
         exclusion="--accumulate splits each step's batch, which --world-size splits too and --locate-op's "
                   "recording of one step does not"),
)
GATE_BY_NAME = {gate.name: gate for gate in GATES}
GATE_BY_OPTION = {gate.option: gate for gate in GATES}


def parse_gates(texts: Mapping[str, str | None]) -> dict[str, Pair]:
    """The gates given on a command line (``texts``: option name such as "--workers" to its text, None
    when not given) as typed pairs by gate name; ArgumentError naming the first bad value."""
    return {GATE_BY_OPTION[option].name: GATE_BY_OPTION[option].parse(text)
            for option, text in texts.items() if text is not None}


def given_options(gates: Mapping[str, Pair], allowed: tuple[str, ...] = ()) -> list[str]:
    """The options of the gates in ``gates`` other than those named in ``allowed``, in table order."""
    return [gate.option for gate in GATES if gate.name in gates and gate.name not in allowed]


def settle_gates(gates: Mapping[str, Pair], locate_op: bool = False, compiled: bool = False) -> dict[str, Pair]:
    """``gates`` (by name, typed pairs) completed with what they imply, after refusing an unknown
    name, a combination the table excludes, and more than one gate that varies."""
    unknown = [name for name in gates if name not in GATE_BY_NAME]
    require(not unknown, f"no gate {unknown[0]!r}; gates: {', '.join(GATE_BY_NAME)}" if unknown else "")
    settled = dict(gates)
    for name in gates:
        implied = GATE_BY_NAME[name].implies
        if implied and implied[0] not in settled:
            settled[implied[0]] = implied[1]
    present = {**{name: True for name in settled}, LOCATE_OP: locate_op, COMPILED: compiled}
    for gate in GATES:
        if gate.name not in gates:
            continue
        clashing = [GATE_BY_NAME[other].option if other in GATE_BY_NAME else other
                    for other in gate.excludes if present.get(other)]
        require(not clashing, f"{gate.exclusion}; drop {', '.join(clashing)}")
    # a typed pair (the API's) is checked as its option text would be, by the same parser
    settled = {name: GATE_BY_NAME[name].parse(GATE_BY_NAME[name].spell(pair)) for name, pair in settled.items()}
    varying = [gate for gate in GATES if gate.name in settled and gate.varies(settled[gate.name])]
    if len(varying) > 1:  # named by the later row, the more particular gate (threads is the first)
        named, other = varying[-1], varying[0]
        require(False, f"{named.option} changes one factor, {named.subject}; give {other.option} one value or drop it")
    return settled


def require_fit(gates: Mapping[str, Pair], fit: Fit) -> None:
    """Raise ArgumentError naming the first gate whose values ``fit``'s steps or batch cannot take."""
    for name, pair in gates.items():
        fits = GATE_BY_NAME[name].fits
        if fits:
            fits(pair, fit)


def differing_factor(gates: Mapping[str, Pair]) -> str:
    """The name of the gate whose two values differ (settle_gates allows one at most), else "none"."""
    return next((gate.name for gate in GATES if gate.name in gates and gate.varies(gates[gate.name])), "none")


def describe_factor(document: Mapping[str, Any]) -> str:
    """The check header's words for what its two runs differed in (the table's, or the same configuration)."""
    gate = GATE_BY_NAME.get(document["differing_factor"])
    if gate:
        return gate.describe(document)
    sides = document["runs"]
    threads = [_threads_run(side) for side in sides]
    shared = [words for gate in GATES if gate.setting and (words := gate.setting(document))]
    return (f"same configuration ({sides[0]['device']}, {threads[0]} thread(s)"
            + (f" vs {threads[1]}" if threads[1] != threads[0] else "") + "".join(f", {s}" for s in shared) + ")")
