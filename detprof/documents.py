"""The documents detprof hands back, one type each: what every ``--json`` prints (and the Python
API returns), the summary the store keeps of each run, and the result file a job or check process
writes for its parent. Times are in ms unless a key ends in ``_us`` (µs) or ``_s`` (seconds);
memory is in bytes; ratios are treatment over baseline.

Every document carries ``document_version`` (DOCUMENT_VERSION when it was made): a reader that
meets a higher version knows it is reading something newer than itself; a stored summary without
one is from before versions (read as version 0). This module imports nothing heavy: job processes
of every framework import it.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

DOCUMENT_VERSION = 1


class Device(TypedDict):
    kind: str  # cpu | cuda
    name: str


class OverheadDevice(Device):
    gpu_index: int | None
    gpu_uuid: str | None


class ModeObservations(TypedDict, total=False):
    """What an overhead run's mode has only where it was observed."""

    attention_backends: list[str]  # the SDPA backends that ran (absent: the model calls no SDPA)


class ModeFigures(ModeObservations):
    """One mode of an overhead run: step and kernel time in ms per step, memory in bytes."""

    mode: str
    step_ms: float | None
    step_ms_iqr: float | None
    noisy: bool | None
    kernel_ms: float | None
    kernel_ms_reason: str | None
    kernel_coverage: float | None  # kernel time over the profiled steps' wall time
    kernel_jobs: int
    profiler_slowdown: float | None  # the profiled steps' time over the timed steps', within a job
    peak_mem_bytes: int | None
    peak_mem_warmup_bytes: int | None
    peak_mem_kind: str | None
    repeats_ok: int
    repeats_failed: int
    determinism: str
    bitwise_identical_across_repeats: bool | None
    distinct_state_hashes: int
    nondeterministic_ops: list[str]
    nondeterministic_kernels: list[str]
    throttled: bool | None
    toggles: dict[str, Any]


class FailedJob(TypedDict):
    mode: str
    repeat: int
    status: str
    error: str | None


class OverheadDocument(TypedDict):
    """``overhead --json``, and the summary stored with every overhead run."""

    document_version: int
    run_id: int | None
    created_at: str
    partial: bool
    arch: str
    framework: str
    device: OverheadDevice
    workload: dict[str, Any]  # detprof.workload.Workload.as_dict()
    protocol: dict[str, Any]  # detprof.runner.config.Protocol as a dict
    verdict: str
    takeaway: str  # one sentence for a person: the cost as far as the CI resolves it, and what repeated
    part_of: str | None  # the command this run is a step of: "ablation", "advise"; None for a plain comparison
    modes: list[ModeFigures]
    ratio: float | None
    ratio_ci: list[float | None] | None
    ratio_ci_reason: str | None
    ratio_ci_method: str | None
    ratio_pairs: int
    precision: dict[str, Any]  # detprof.runner.launcher.PrecisionOutcome as a dict
    kernel_ratio: float | None
    kernel_ratio_ci: list[float | None] | None
    kernel_ratio_ci_reason: str | None
    kernel_ratio_pairs: int
    kernel_times_reliable: bool | None
    kernel_times_note: str | None
    memory_ratio: float | None
    noisy: bool
    expected_nondeterministic_ops: list[str]
    failed_jobs: list[FailedJob]
    environment: dict[str, Any]
    command: str
    trace_dir: str | None


class AblationDocument(TypedDict):
    """``overhead --ablate --json``: each switch of the deterministic mode against default."""

    document_version: int
    arch: str
    workload: dict[str, Any]
    device: Device
    steps: list[dict[str, Any]]  # mode, changes, run_id, ratio, ratio_ci, ... per measured switch
    skipped: list[dict[str, str]]


class _CheckSideKeys(TypedDict):
    device: str
    threads: int | None
    nondeterministic_ops: list[str]


class CheckSide(_CheckSideKeys, total=False):
    """One run of a check; the compile keys are absent in checks stored before --compile."""

    threads_run: list[int]  # the CPU thread counts its steps actually had, read back after each step
    version: str  # the framework that trained it, as it reported itself: "torch 2.13.0+cpu"
    compiled: bool  # trained through torch.compile
    inductor_deterministic: bool | None  # Inductor's deterministic switch; None: not compiled, or no such switch


class StoredVerdict(TypedDict, total=False):
    """What every verdict (check, batch invariance, audit, advise) gains once it is stored: the run
    id it was stored under, or None with ``store_error`` when the store could not take it."""

    run_id: int | None
    store_error: str


# A check's three verdicts (detprof.check.verdict decides; exit codes 0, 1 and 3).
IDENTICAL, NOT_IDENTICAL, INCONCLUSIVE = "identical", "not identical", "inconclusive"


class CheckDocument(StoredVerdict, total=False):
    """``check --json``."""

    document_version: int
    workload: dict[str, Any]
    framework: str
    mode: str
    steps: int
    seed: int | None  # None for a --script, which seeds itself
    differing_factor: str  # none, or the name of the gate that varied (detprof.check.gates.GATES)
    runs: list[CheckSide]
    bitwise_identical: bool  # what the comparison of bits found (the verdict also asks whether it could see)
    verdict: str  # identical | not identical | inconclusive (detprof.check.verdict)
    verdict_reasons: list[str]  # why it is inconclusive; beside a difference, what else did not hold
    max_abs_diff: float
    first_divergence: dict[str, Any] | None  # step, loss_differs, parameter, ...; op with --locate-op
    sensitivity: dict[str, Any] | None  # the control: change, step, parameter, detected (None: not recorded)
    restart_at: int  # check --restart-at: run B was saved after this step and restarted from it
    loader_workers: list[int]  # check --workers: the DataLoader worker processes of runs A and B
    world_sizes: list[int]  # check --world-size: the DDP processes of runs A and B
    bucket_cap_mb: list[float] | None  # check --bucket-cap-mb: DDP's bucket sizes of runs A and B (None: DDP's)
    accumulation: list[int]  # check --accumulate: the micro-batches per optimizer step of runs A and B
    nccl_environment: dict[str, str]  # the NCCL variables set for a GPU run
    gpu_topology: str | None  # nvidia-smi topo -m of a GPU run's machine (None: a CPU run, or no nvidia-smi)
    script: dict[str, Any]  # check --script: path, arguments, steps_taken and ended per run, optimizers, ...


class BatchInvarianceDocument(StoredVerdict, total=False):
    """``check --batch-invariance --json``."""

    document_version: int
    workload: dict[str, Any]
    mode: str
    device: str
    reference_batch_size: int
    rows: list[dict[str, Any]]  # batch_size, examples, bitwise_equal, fraction_equal, max_abs_diff
    batch_invariant: bool


class AuditDocument(StoredVerdict, total=False):
    """``audit --json``."""

    document_version: int
    workload: dict[str, Any]
    device: str
    fully_deterministic: bool  # no op without a deterministic implementation, and the switch never turned off
    steps_audited: int  # training steps the audit ran (an op first taken later is not covered)
    ops_per_step: list[int]
    switched_off: dict[str, Any] | None  # the first op the code under audit ran with determinism off: op, module, step
    nondeterministic_ops: list[dict[str, Any]]  # op, count, dispatched_as, sites, modules, phases, steps
    ops_in_step: int  # the ops of the first audited step
    swapped_kernels: list[dict[str, Any]]  # kernel diff rows, µs
    kernel_diff_available: bool
    version: str  # the framework that ran the audited steps: "torch 2.13.0+cpu"


class InferenceCell(TypedDict):
    """One configuration of an inference grid's row against the row's baseline: how many prompts
    kept every token, whose logits stayed bitwise equal over the steps compared (every step up to
    and including the first divergent token: after it the two sides see different text), where the
    first divergent token came (0-based, min and median over the prompts that diverged), whether
    the logits before it were bitwise equal in every diverging prompt, the largest finite |logit
    difference|, the argmax flips, and the positions where one side is not finite and the bits
    differ (a NaN never reads as equal or as no difference)."""

    label: str
    changes: dict[str, Any]  # the DecodeSettings fields that differ from the reference
    prompts: int
    identical_prompts: int
    bitwise_prompts: int
    first_divergent_token: dict[str, float] | None  # {min, median}; None when no prompt diverged
    logits_equal_before_divergence: bool | None  # None when no prompt diverged
    max_abs_logit_diff: float
    nonfinite_mismatches: int
    argmax_flips: int
    verdict: str  # bitwise | logits differ | tokens differ
    first_difference: NotRequired[dict[str, int] | None]  # the first prompt whose logits differ, and its step
    op: NotRequired[dict[str, Any] | None]  # --locate-op: the first module whose row differs (module, ops, kind)
    compiled: NotRequired[dict[str, int]]  # a compiled configuration: graphs compiled, graph breaks taken
    not_located: NotRequired[str]  # --locate-op: why this differing configuration could not be located


class InferenceRow(TypedDict):
    """One factor of the grid: its name, the question it asks, its baseline's label, its cells,
    and its verdict (the worst of its cells')."""

    row: str
    question: str
    baseline: str
    cells: list[InferenceCell]
    verdict: str


class InferenceRun(StoredVerdict, total=False):
    """What every ``infer`` document says of its run: the model (arch or the config's model type,
    source, class, parameters, vocabulary), the device, the framework versions, the reference's CPU
    threads, the seed, the prompts (count, shortest, longest, where from) and the tokens decoded."""

    document_version: int
    workload: dict[str, Any]
    device: str
    version: str  # "torch 2.13.0+cpu, transformers 5.25.0"
    threads: int | None
    seed: int
    prompts: dict[str, Any]  # count, min_tokens, max_tokens, source
    new_tokens: int


class InferenceGridDocument(InferenceRun, total=False):
    """``infer --json``: greedy decoding of the same prompts under each row's configurations, each
    compared bitwise with the row's baseline; the 1-ulp control of the comparison itself."""

    mode: str  # default | deterministic | batch-invariant
    switches: dict[str, Any]  # deterministic mode: the switches as torch read them after decoding
    nondeterministic_ops: list[str]  # deterministic mode: the ops that warned they have no deterministic kernel
    replaced_ops: dict[str, int]  # batch-invariant mode: the calls it took over in the first process, by op
    reference: dict[str, Any]  # the reference DecodeSettings
    rows: list[InferenceRow]
    rows_left_out: dict[str, str]  # rows asked for whose factor does not exist on this device, and why
    differing_rows: list[str]
    sensitivity: dict[str, Any]  # caught (bool) and what was changed
    invariant: bool  # every row bitwise, and the control caught its change
    timings: list[dict[str, Any]]  # per configuration: label, prefill_s, decode_s, process


class InferenceCostDocument(InferenceRun, total=False):
    """``infer --cost --json``: per batch size, each mode's decode ms per step and tokens/s, prefill ms
    and tokens/s (medians over its processes); per treatment, its ratios to the baseline of decode
    step time and prefill time with their 95% paired CIs, and the decode throughput lost; the
    published anchors."""

    modes: list[str]  # the baseline, then each treatment
    # per batch size and treatment: batch_size, pairs (rounds), treatment, modes {mode: figures}, decode_ratio,
    # decode_ci, prefill_ratio, prefill_ci, decode_throughput_cost_percent
    rows: list[dict[str, Any]]
    anchors: list[dict[str, Any]]  # kernels_db/inference_reference.json: other systems' GPU figures


class InferenceMismatchDocument(InferenceRun, total=False):
    """``infer --compare sampler,trainer --json``: per pair of a sampler and a trainer configuration
    (the one given, then each remedy), the log-prob mismatch on the sampler's tokens; the remedies
    ranked by mismatch, then time."""

    temperature: float
    ratio_threshold: float  # an importance ratio outside 1 ± this counts
    # per pair: remedy, mode, sampler and trainer (their changes from the reference), bitwise_equal,
    # equal_token_share, abs_logprob_diff_quantiles (p50, p90, p99, p99.9, max),
    # max/p99/mean_abs_logprob_diff, sequence_kl_estimate, ratio_outside_share, tokens, sampler_s,
    # trainer_s (one process's time each), time_ratio (both sides' time over the first pair's)
    pairs: list[dict[str, Any]]
    ranked: list[str]  # the remedies, least mismatch first (then least time)
    bitwise_remedies: list[str]  # those whose log-probs are bitwise equal


class InferenceRunResult(TypedDict, total=False):
    """The result file of one inference process (detprof.backends.torch.inference.entry): per
    settings, in the spec's order, the tokens chosen and the file of the logits they were chosen
    from (a .npy beside the result), with the time spent; or ``error``."""

    document_version: int
    error: str
    traceback: str
    status: str  # "oom" when the framework ran out of memory
    # per settings: key, tokens, logits_file (None: not kept), prefill_s, decode_s, step_s, prompt_tokens,
    # compiled (torch.compile's settings: the graphs compiled and graph breaks taken so far; else None)
    outputs: list[dict[str, Any]]
    model: dict[str, Any]  # class, parameters, vocab, model_type
    version: str
    threads: int | None
    mode: str  # the mode it decoded under, as the process read it
    replaced_ops: dict[str, int]  # batch-invariant mode: the calls it took over, by op ({} in the default mode)
    located: list[dict[str, Any]]  # --locate-op: baseline, other, prompt, step, modules_compared, op (or None)
    switches: dict[str, Any]  # deterministic mode: the switches as torch read them after decoding ({} otherwise)
    nondeterministic_ops: list[str]  # deterministic mode: the ops that warned they have no deterministic kernel
    recorded: list[dict[str, Any]]  # a spec's record: each module call's name, kind, ops (rows in records.npz)
    environment: dict[str, Any]  # the environment fingerprint (detprof.backends.torch.environment), for records


class AdviseDocument(StoredVerdict, total=False):
    """``advise --json``."""

    document_version: int
    workload: dict[str, Any]
    device: Device
    check_steps: int
    threads: int | None
    candidates: list[dict[str, Any]]
    recommendation: dict[str, Any] | None
    full_deterministic: dict[str, Any] | None
    cheapest_with_switches: dict[str, Any] | None
    megatron_target_ratio: float


class TraceKernelsDocument(TypedDict):
    """``kernels --trace FILE --json``: µs summed over the whole trace."""

    document_version: int
    trace: str
    kind: str  # gpu | cpu
    device: str | None
    scope: str
    top: int
    parser: str
    total_us: float
    events: int
    kernels: list[dict[str, Any]]
    categories: list[dict[str, Any]]


class RunKernelsDocument(TypedDict):
    """``kernels --json``: µs over the run's profiled steps."""

    document_version: int
    run_id: int
    arch: str
    device: dict[str, Any]
    mode: str
    top: int
    profile_steps: int | None
    kernel_ms_total: float
    kernel_ms_per_step: float | None
    kernels: list[dict[str, Any]]
    diff: list[dict[str, Any]]
    diff_modes: list[str] | None
    kernel_times_note: str | None  # why this run's kernel times do not stand for its timed steps (None: they do)


class DiffDocument(TypedDict):
    """``diff A B --json``: µs over each side's profiled steps or whole trace."""

    document_version: int
    a: str
    b: str
    total_us_a: float
    total_us_b: float
    counts: dict[str, int]  # added, removed, changed
    diff: list[dict[str, Any]]


class RunsDocument(TypedDict):
    """``runs --json``."""

    document_version: int
    runs: list[dict[str, Any]]
    skipped: list[str]


class GpusDocument(TypedDict):
    """``gpus --json``."""

    document_version: int
    gpus: list[dict[str, Any]]


class ZooRow(TypedDict, total=False):
    """One row of ``zoo --json`` (a list: one row per arch and framework)."""

    document_version: int
    arch: str
    framework: str
    family: str
    params: int
    trainable_params: int  # Keras rows only
    input: list[int]
    num_classes: int
    options: list[str]
    notes: str
    keras: str  # Keras rows only


class MergeDocument(TypedDict):
    """``db merge --json``: what came in and what was already here."""

    document_version: int
    runs_added: int
    runs_present: int
    sweep_jobs_added: int
    sweep_jobs_completed: int
    stability_added: int
    stability_present: int
    stability_skipped: int
    files_copied: int
    paths_dropped: int
    dropped: list[str]


class ReportDocument(TypedDict):
    """``report --json``."""

    document_version: int
    out: str
    bytes: int
    runs: list[int]
    sections: dict[str, str]
    skipped: list[str]


class SweepDocument(TypedDict):
    """``sweep --json`` and ``sweep --status --json``."""

    document_version: int
    sweep: str
    spec: str
    store: str
    cluster: str
    jobs: list[dict[str, Any]]
    counts: dict[str, int]  # done, failed, running, left, ran_now


class ProbeDocument(TypedDict):
    """``sweep --probe --json``."""

    document_version: int
    probes: list[dict[str, Any]]


class ImportDocument(TypedDict):
    """``import TRACE --json``: the summary the imported trace is stored with, its run id and kernels."""

    document_version: int
    created_at: str
    arch: str
    framework: str
    device: Device
    source_trace: str
    scope: str
    protocol: dict[str, Any]  # profile_steps, steps_known
    modes: list[dict[str, Any]]  # one: the label, kernel_ms
    ratio: None
    ratio_ci: None
    kernel_ratio: None
    command: str
    run_id: int
    kernels: int


class StabilityDocument(TypedDict, total=False):
    """``stability --json``: the experiment, and its measures once two runs or more are stored
    (accuracy in [0, 1], churn as a fraction of test examples, L2 between unit-normalised weights)."""

    document_version: int
    task: str
    variant: str
    mode: str
    fixed: list[str]
    description: str
    recipe: dict[str, Any]
    experiment: str
    runs: int
    accuracies: list[float]  # one per stored run
    accuracy_mean: float
    accuracy_mean_ci: list[float] | None
    accuracy_std: float
    churn: float | None
    churn_ci: list[float] | None
    l2: float
    l2_ci: list[float] | None
    per_class_std: list[float] | None  # per class, std over runs
    per_class_std_max: float
    per_class_std_ratio_max: float | None
    subgroups: list[dict[str, Any]]
    device: str
    threads: int | None
    target: str | None
    training_counts: list[dict[str, Any]] | None
    paired_with: dict[str, Any] | None
    requested_runs: int
    failed: list[dict[str, Any]]
    nondeterministic_ops: list[str]
    test_examples: int


class ErrorDocument(TypedDict):
    """What ``--json`` prints on stdout when a command fails: the one line, and the exit code."""

    document_version: int
    error: dict[str, Any]  # message, exit_code


class JobResult(TypedDict, total=False):
    """The result file of one overhead job process (PyTorch's or TensorFlow's), read by the launcher:
    step times in ms, memory in bytes, wall time in seconds."""

    document_version: int
    status: str  # ok | failed | oom
    error: str
    traceback: str
    step_ms: list[float]
    profiled_step_ms: list[float]  # the profiled steps' wall times, as the profiler slowed them
    peak_mem_bytes: int
    peak_mem_warmup_bytes: int
    peak_mem_kind: str
    peak_mem_since_warmup: bool
    nondeterministic_ops: list[str]
    applied_toggles: dict[str, Any]
    switches_changed: list[str]  # "name set -> found" for each switch the workload changed (read after its last step)
    environment: dict[str, Any]
    gpu_monitor: dict[str, Any] | None
    trace_path: str
    wall_s: float
    state_sha256: str
    steps_trained: int
    attention_backends: list[str]  # SDPA backends seen in the first warm-up step; [] when no attention


class CheckRunResult(TypedDict, total=False):
    """The result file of one check process (either backend's ``trainer``), read by its backend's
    ``run_check_side``: a training's steps (each loss's exact bits and parameter digests), one step's
    recorded ops, a batch-invariance table, or an audit's findings; or ``error``."""

    document_version: int
    error: str
    traceback: str
    parameters: list[str]
    buffers: list[str]  # names of the model's buffers, hashed per step beside the parameters
    initial: dict[str, Any] | None  # the digests before the first step (params, buffers, nonfinite, threads)
    steps: list[dict[str, Any]]  # per step: loss, params, buffers, nonfinite, threads, switches_changed
    switches_set: dict[str, Any]  # the determinism switches as the mode left them, before the user's code
    switch_calls: list[dict[str, Any]]  # calls the user's code made to change a switch or the threads: step, call
    state_names: list[str]  # TensorFlow: the weights' names, in the order of the saved arrays
    threads: int | None
    device: str
    torch: str
    version: str  # the framework that trained, as it names itself: "torch 2.13.0+cpu"
    framework: str
    compiled: bool
    inductor_deterministic: bool | None
    ulp_control: dict[str, Any] | None  # step 1's parameter digests with one element moved by one ulp
    world_size: int
    bucket_cap_mb: float | None
    nccl_environment: dict[str, str]
    gpu_topology: str | None  # nvidia-smi topo -m of a GPU run's machine (None: a CPU run, or none)
    torch_loaded: bool
    nondeterministic_ops: list[str]
    wall_s: float
    step: int
    ops: Any  # the recorded ops (op recording) or their count (audit)
    reference_batch_size: int
    rows: list[dict[str, Any]]
    nondeterministic: list[dict[str, Any]]
    switched_off: dict[str, Any] | None  # audit: the first op run with deterministic algorithms turned off
    ops_per_step: list[int]  # audit: the ops each audited step dispatched
    environment: dict[str, Any]  # a record's run: what could change its bits (backends' environment fingerprint)
    learning_rate: list[float]  # a record's run: each parameter group's learning rate, as it trained


# A comparison of records (detprof.records.compare): its verdicts and their exit codes.
RECORDS_EQUAL, RECORDS_DIFFER, RECORDS_INCONCLUSIVE = "equal", "differ", "inconclusive"
COMPARISON_EXIT_CODES = {RECORDS_EQUAL: 0, RECORDS_DIFFER: 1, RECORDS_INCONCLUSIVE: 3}


class RecordRunDocument(TypedDict, total=False):
    """``record --json``, and the summary a record is stored under (kind record): the record whole
    (detprof.records.format), with the fields every stored run carries."""

    document_version: int
    workload: dict[str, Any]
    framework: str
    mode: str
    device: dict[str, str]  # kind, name
    steps: int
    file: str | None  # where it was written; None from the API
    record: dict[str, Any]  # detprof.records.format.Record
    golden: dict[str, Any]  # --golden: file, action (compared, written, refreshed), comparison
    run_id: int | None
    store_error: str


class ComparisonDocument(TypedDict, total=False):
    """``compare --json``, and the summary it is stored under (kind compare)."""

    document_version: int
    labels: list[str]  # how A and B were named: their files, or run:ID
    verdict: str  # equal, differ or inconclusive
    subject: str  # training (steps and parameters) or decoding (tokens and prompts)
    verdict_reasons: list[str]
    workload: dict[str, Any]
    framework: str
    steps_compared: int
    first_divergence: dict[str, Any] | None  # step, parameter, parameters_differing, loss_differs, op, ...
    op_note: str | None  # why no op is named at the first divergent step
    sensitivity: dict[str, Any] | None  # record A's 1-ulp control, and whether it was detected
    growth: list[dict[str, Any]]  # per step from the first divergent one: parameters differing, losses, distance
    configuration_differences: list[dict[str, Any]]  # field, a, b
    environment_differences: list[dict[str, Any]]  # factor, path, a, b, why, relevant; most likely cause first
    records: list[dict[str, Any]]  # per record: created_at, detprof, configuration, torch, device, steps
    device: dict[str, str]
    modes: list[str]
    run_id: int | None
    store_error: str


class WatchRecord(TypedDict, total=False):
    """One JSON line a watched script's run writes (detprof.backends.torch.script), by kind:
    ``started`` (time, threads, torch, the switches set), ``child_step`` (a step taken in a child
    process: its pid), ``initial`` (the digests before a stepper's first step), a step (``step``
    with its stepper's ``key``, names, digests, loss bits, non-finite tensors, threads, switches
    changed, and at step 1 the 1-ulp control), or ``ended`` (how, steps, error, exit code, detail,
    the switch calls the script made)."""

    started: float
    threads: int
    torch: str
    switches_set: dict[str, Any] | None  # None: the script's own switches (as-is)
    child_step: int
    initial: str
    params: list[str]
    buffers: list[str]
    step: int
    key: str
    names: list[str]
    buffer_names: list[str]
    scheme: str
    device: str
    loss: str | None
    nonfinite: list[str]
    switches_changed: Any
    ulp_control: Any
    ended: str
    steps: int
    error: str | None
    exit_code: int | None
    detail: Any
    switch_calls: list[Any]
    sketch: str  # a record's run: the stepper's weight sketch after the step (detprof.records.format)
    environment: dict[str, Any]  # a record's run, in the ended record: the environment fingerprint


class ProbeResult(TypedDict, total=False):
    """The result file of a probe of the user's code in a child (detprof.usercode.probe_in_child):
    ``ok``, with what the probe found (a --workload's parameter count, batch, device and loss
    shape), or ``error``, one line."""

    ok: bool
    error: str
    parameters: int
    batch: Any  # the batch's structure in words (detprof.backends.torch.user_workload.describe_batch)
    checked_on: str
    loss_shape: list[int]


class StabilityRunSpec(TypedDict):
    """What one stability training run is given (detprof.stability.experiment → the backend's
    training child): the task and recipe, the seed of each noise source, the mode's toggles, and
    where and with how many CPU threads it trains."""

    task: str
    data_dir: str | None
    target: str | None
    recipe: dict[str, Any]
    seeds: dict[str, int]
    toggles: dict[str, Any]
    device: str
    gpu_uuid: str | None
    threads: int | None


class StabilityRunResult(TypedDict):
    """The result file of one stability training run, written last beside its predictions and
    weights: test accuracy (a fraction), the switches applied, the nondeterministic ops seen, the
    threads, framework version and device it trained on, its optimizer steps, and the GPU it was
    given (None on a CPU)."""

    accuracy: float
    applied_toggles: dict[str, Any]
    nondeterministic_ops: list[str]
    threads: int
    torch: str
    device: str
    steps: int
    cuda_visible_devices: str | None


def ratio_bounds(row: Any) -> tuple[float, float]:
    """(low, high) of a measured ratio in a document row (an advise candidate): its 95% CI, or the
    ratio itself at both ends when it has none."""
    return (row["ratio_ci"][0], row["ratio_ci"][1]) if row.get("ratio_ci") else (row["ratio"], row["ratio"])


def write_json_whole(path: str | Any, document: Any) -> None:
    """Write a child process's result file whole: a partial file beside it, renamed into place, so
    that a parent never reads half a document from a child killed while writing."""
    import json
    from pathlib import Path

    partial = Path(str(path) + ".partial")
    partial.write_text(json.dumps(document))
    partial.replace(path)


def write_result(path: str, document: CheckRunResult) -> None:
    """Write a check process's result file whole (see write_json_whole), versioned."""
    write_json_whole(path, {"document_version": DOCUMENT_VERSION, **document})
