"""The first run of detprof on a GPU machine, as ONE command that fits its time budget.

    python benchmarks/gpu_campaign.py [--out DIR] [--budget SECONDS] [--dry-run] [--plan]

(``bash benchmarks/gpu_campaign.sh`` runs this file; the device call is written in that file's header.)

Steps run in order of value, and the order is never broken: when the (recalibrated) estimate of a
step no longer fits in what is left of the budget, that step and every step after it are dropped;
the tail goes, never the middle. An overhead step may still start when one pair of its processes
fits: it is then cut short by SIGTERM at the budget, and detprof keeps its finished pairs as a run
marked partial. The first measurement (vgg19) always runs. ``RESERVE_S`` seconds are always kept
for the summary and the report.

Estimates follow from each step's work: the fresh processes it starts times what a process costs
(start-up: fork, CUDA context, cuDNN and cuBLAS handles, the model built and moved; then its
warm-up, timed and profiled steps; a profiled pass adds the profiler's start, the trace's export
and its parse). The per-step times below are planning guesses, not measurements: after every step
the measured time per process replaces them, as one factor applied to every later estimate.

Everything goes to ``--out`` (default ``$OUT``, else ./campaign-out), at most 8 files: campaign.log,
environment.txt, results.tar.gz (one JSON per step, the SQLite store, steps.txt; packed again after
every step, so a run cut off still returns what it measured), traces.tar.gz, summary.md,
report.html, pytest_gpu.txt. ``--dry-run`` runs the same pipeline on the CPU at tiny sizes.
Only the standard library is imported here (the GPU machine has no network).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BUDGET_S = 540  # 9 minutes: a 570 s device call holds it, and 15 minutes of device time then
# leave the machine's start-up and a short second call
RESERVE_S = 30  # always kept for the summary, the report and the last packing
TERM_GRACE_S = 20  # after SIGTERM, a step has this long to store what it finished before SIGKILL
MAX_FILES = 8  # what the device tool brings back


@dataclass(frozen=True)
class CostModel:
    """What work costs on one kind of machine, in seconds: the planning guesses that the first
    measured steps replace (see ``Calibration``)."""

    python_start_s: float  # a new interpreter running the detprof command line (torch imported)
    process_start_s: float  # one fresh job process: fork, CUDA context and handles, before its model
    per_100m_params_s: float  # building and moving a model, per 100 M parameters
    autotune_s: float  # cuDNN's autotuning in the first steps of a mode that keeps cudnn.benchmark on
    profiled_pass_s: float  # a profiled pass beyond its steps: profiler start, trace export, gzip, parse
    step_s: dict[str, float]  # one training step in the default mode, by network
    deterministic_factor: float  # a deterministic step against a default one (a planning margin)
    check_step_factor: float  # a recorded step of check --locate-op against a plain one
    hash_s_per_100m: float  # hashing every op's tensors in one recorded step, per 100 M parameters
    stability_run_s: float  # one stability training (digits, small CNN)
    pytest_s: float  # the few fast GPU tests
    transformers_import_s: float = 2.0  # an inference process importing Hugging Face transformers
    decode_step_s: float = 0.012  # one greedy decoding step of the inference row's model, default mode
    invariant_decode_factor: float = 4.0  # a step under detprof's batch-invariant mode against a default one


# Parameter counts (kernels_db and the zoo's tests): what building a model costs scales with them.
PARAMS_M = {"vgg19": 143.7, "resnet50": 25.6, "mobilenet": 4.2, "mobilenet-v2": 3.5, "densenet121": 8.0,
            "medium-cnn": 1.0, "small-cnn": 0.1, "gpt2-small": 124.4, "vit-b16": 86.6, "tiny-qwen2": 0.1}

GPU_COST = CostModel(
    python_start_s=3.0, process_start_s=2.2, per_100m_params_s=1.5, autotune_s=0.3, profiled_pass_s=1.5,
    # 224x224, batch 64, float32 with PyTorch's TF32 defaults: guesses for an H100/H200 class GPU.
    step_s={"vgg19": 0.065, "resnet50": 0.055, "mobilenet": 0.02, "mobilenet-v2": 0.03, "densenet121": 0.07,
            "medium-cnn-k1": 0.012, "medium-cnn-k3": 0.025, "medium-cnn-k5": 0.04, "medium-cnn-k7": 0.06,
            # each network's own GPU defaults: gpt2-small 8 x 1,024 tokens, vit-b16 224 px, batch 64
            "gpt2-small": 0.07, "vit-b16": 0.06},
    deterministic_factor=1.6, check_step_factor=4.0, hash_s_per_100m=0.2, stability_run_s=6.0, pytest_s=15.0)
CPU_COST = CostModel(  # the dry run's tiny sizes on the 2-core CPU machine, from its measured dry runs
    python_start_s=2.5, process_start_s=0.5, per_100m_params_s=3.5, autotune_s=0.0, profiled_pass_s=0.5,
    step_s={"vgg19": 0.25, "resnet50": 0.06, "mobilenet": 0.02, "mobilenet-v2": 0.03, "densenet121": 0.08,
            "medium-cnn-k1": 0.01, "medium-cnn-k3": 0.02, "medium-cnn-k5": 0.04, "medium-cnn-k7": 0.06,
            "gpt2-small": 0.1, "vit-b16": 0.05, "small-cnn": 0.005},
    deterministic_factor=1.2, check_step_factor=4.0, hash_s_per_100m=12.0, stability_run_s=4.0, pytest_s=5.0,
    # the dry run decodes a tiny Qwen2 config; transformers' import measured at 3.1 s beyond torch's here
    transformers_import_s=3.1, decode_step_s=0.002, invariant_decode_factor=3.0)


def whole_run_document(path: Path) -> bool:
    """Whether ``path`` starts with a run's whole document (a run id, not partial)."""
    try:
        document, _ = json.JSONDecoder().raw_decode(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and "run_id" in document and document.get("partial") is False


@dataclass(frozen=True)
class Sizes:
    """The measurement sizes of a campaign: the paper's setting on a GPU, tiny ones in a dry run."""

    workload: list[str]  # batch and image size for overhead runs
    warmup: int
    steps: int
    profile_steps: int
    pairs: int
    check: list[str]  # batch and image size for check and audit
    check_steps: int
    stability: list[str]
    device: list[str]


GPU_SIZES = Sizes(["--batch-size", "64", "--image-size", "224"], warmup=2, steps=10, profile_steps=2, pairs=3,
                  check=["--batch-size", "16", "--image-size", "224"], check_steps=4, stability=[],
                  device=["--gpu", "auto"])
# The dry run checks code paths, not figures: two pairs a comparison (three for vgg19, whose kernel
# ratio gets its CI), so that it stays a few minutes on a 2-core CPU.
DRY_SIZES = Sizes(["--batch-size", "2", "--image-size", "32"], warmup=1, steps=2, profile_steps=1, pairs=2,
                  check=["--batch-size", "2", "--image-size", "32"], check_steps=2, stability=["--epochs", "1"],
                  device=["--gpu", "cpu"])


@dataclass
class Step:
    """One step of the campaign: a detprof (or helper) command, what it is estimated to cost, and
    what it produced."""

    name: str
    argv: list[str]
    estimate_s: float
    processes: int  # fresh Python processes it starts (the unit of calibration)
    result: str | None = None  # file under results/ that receives its stdout (JSON); None: the log
    pair_s: float | None = None  # overhead steps: one pair's cost (it may start when only that fits)
    always: bool = False  # runs whatever its estimate (the first measurement)
    ok_codes: tuple[int, ...] = (0,)  # check and audit exit 1 for "not reproducible": a finding, not a failure
    to_out: bool = False  # its stdout is one of the returned files (pytest_gpu.txt), not a result
    extra: bool = False  # after the plan that must fit: runs only in the time the machine's speed leaves
    status: str = "planned"
    wall_s: float | None = None


@dataclass
class Calibration:
    """Measured against planned seconds per process, over the steps done so far."""

    planned: float = 0.0
    measured: float = 0.0
    history: list[tuple[str, float]] = field(default_factory=list)

    @property
    def factor(self) -> float:
        """What every later estimate is multiplied by (1 before anything was measured)."""
        return self.measured / self.planned if self.planned > 0 else 1.0

    def add(self, step: Step) -> None:
        if step.wall_s is None or step.processes <= 0 or not step.status.startswith("ok"):
            return
        self.planned += step.estimate_s
        self.measured += step.wall_s
        self.history.append((step.name, step.wall_s / step.estimate_s))


def overhead_cost(cost: CostModel, arch: str, sizes: Sizes, modes: tuple[str, str], pairs: int,
                  profile_steps: int, key: str | None = None) -> tuple[float, float]:
    """(whole run, one pair) in seconds for an overhead comparison of ``pairs`` pairs."""
    step = cost.step_s[key or arch]
    build = PARAMS_M.get(arch.split("-k")[0], 1.0) / 100 * cost.per_100m_params_s

    def process(mode: str, profiled: bool) -> float:
        fast = mode.startswith(("default", "tf32-off"))  # cudnn.benchmark on: autotuned, no deterministic kernels
        factor = 1.0 if fast else cost.deterministic_factor
        work = (sizes.warmup + sizes.steps) * step * factor + (cost.autotune_s if fast else 0.0)
        profiled_s = (cost.profiled_pass_s + (1 + profile_steps) * step * factor) if profiled else 0.0
        return cost.process_start_s + build + work + profiled_s

    profiled_pairs = min(pairs, 3) if profile_steps > 0 else 0
    pair_profiled = sum(process(m, True) for m in modes)
    pair_plain = sum(process(m, False) for m in modes)
    total = cost.python_start_s + profiled_pairs * pair_profiled + (pairs - profiled_pairs) * pair_plain
    return total, cost.python_start_s + (pair_profiled if profiled_pairs else pair_plain)


# The transformers' sizes in the dry run (on a GPU, none: each network's own defaults).
TRANSFORMERS = {"gpt2-small": ["--seq-len", "16", "--batch-size", "2", "--num-classes", "512"],  # a small vocabulary
                "vit-b16": ["--image-size", "32", "--batch-size", "2"]}


def plan(dry_run: bool, db: Path, results: Path) -> list[Step]:
    """Every step of the campaign, in order of value, with its estimate."""
    cost, sizes = (CPU_COST, DRY_SIZES) if dry_run else (GPU_COST, GPU_SIZES)
    python = sys.executable
    detprof = [python, "-m", "detprof.cli"]
    steps: list[Step] = []

    def overhead(name: str, arch: str, modes: tuple[str, str] = ("default", "deterministic"), pairs: int | None = None,
                 profile: bool = True, extra: list[str] | None = None, key: str | None = None,
                 optional: bool = False) -> None:
        n = sizes.pairs if pairs is None else pairs
        profile_steps = sizes.profile_steps if profile else 0
        total, one = overhead_cost(cost, arch, sizes, modes, n, profile_steps, key)
        workload = sizes.workload
        if dry_run and arch == "medium-cnn":  # its five poolings need 64x64 at least
            workload = [*workload[:-1], "64"]
        if arch in TRANSFORMERS:  # each at its own GPU defaults (sequence, batch), tiny in the dry run
            workload = TRANSFORMERS[arch] if dry_run else []
        argv = [*detprof, "overhead", "--arch", arch, *(extra or []), *sizes.device, "--db", str(db), "--json",
                "--modes", ",".join(modes), *workload, "--warmup", str(sizes.warmup), "--steps",
                str(sizes.steps), "--profile-steps", str(profile_steps), "--repeats", str(n)]
        first = not any(s.pair_s is not None for s in steps)  # the first measurement always runs
        steps.append(Step(name, argv, total, 1 + 2 * n, result=f"{name}.json", pair_s=one, always=first,
                          extra=optional))

    def command(name: str, argv: list[str], estimate: float, processes: int, result: str | None = None,
                finding: bool = False, optional: bool = False) -> None:
        steps.append(Step(name, argv, estimate, processes, result=result, ok_codes=(0, 1) if finding else (0,),
                          to_out=name.startswith("pytest"), extra=optional))

    helper = [python, str(REPO / "benchmarks" / "campaign_checks.py")]
    # 1. The paper's two exact V100 figures, with the kernels behind the first and the like-with-like
    #    comparison beside each (the paper's TensorFlow 2.4 had no NaN fill of fresh memory).
    overhead("vgg19", "vgg19", pairs=3)
    # Its kernels: the fast trace scan against the full parse on this torch's traces, and the top 20 per mode.
    command("vgg19 kernels", [*helper, "vgg19-kernels", str(db), str(results)], cost.python_start_s + 4, 1)
    # The dry run measures vgg19 once; its other comparisons run on small-cnn there (the same code
    # paths, without building vgg19's 143 M parameters in every process: 40 s of a dry run otherwise).
    stand_in = "small-cnn" if dry_run else "vgg19"
    overhead("vgg19-nofill", stand_in, ("default", "deterministic-nofill"))
    overhead("mobilenet", "mobilenet")
    # 2. The ends of Figure 9b (its middle, kernel sizes 3 and 5, among the extras).
    for k in (1, 7):
        overhead(f"medium-cnn-k{k}", "medium-cnn", extra=["--kernel-size", str(k)], key=f"medium-cnn-k{k}")
    # 3. The other networks of the paper, and the A/A after today's networks.
    overhead("resnet50", "resnet50")
    overhead("densenet121", "densenet121")
    # 4. After the paper's rows, today's networks at the sizes people train them with.
    # (The dry run trains them for one pair: their code paths, not their figures, are what it checks.)
    overhead("gpt2-small", "gpt2-small", pairs=1 if dry_run else None)
    overhead("vit-b16", "vit-b16", pairs=1 if dry_run else None)
    overhead("aa-resnet50", "resnet50", ("default", "default"), profile=False)
    # 4b. Inference: is greedy decoding of gpt2-small batch invariant on this GPU (the batch, position
    #     and padding rows, and TF32 against the default, the first differing module of each), and what
    #     detprof's batch-invariant mode costs at batch 8 (three pairs). The dry run decodes a tiny
    #     Qwen2 config instead.
    model = (["--config", str(REPO / "tests" / "data" / "inference" / "tiny-qwen2")] if dry_run
             else ["--arch", "gpt2-small"])
    built = PARAMS_M["tiny-qwen2" if dry_run else "gpt2-small"] / 100 * cost.per_100m_params_s
    infer_process = cost.process_start_s + cost.transformers_import_s + built
    prompts, tokens = 8, 16
    # the reference and TF32 (each prompt alone), batches of 4 and 8, the batch reversed, two paddings:
    # 5 x 8 + 2 + 1 + 2 (a CPU dry run leaves the TF32 row out)
    grid_steps = (5 * prompts + 5) * tokens
    command("infer gpt2-small batch", [*detprof, "infer", *model, "--rows", "batch,position,padding,tf32",
                                       "--locate-op", "--prompts", str(prompts), "--new-tokens", str(tokens),
                                       *sizes.device, "--db", str(db), "--json"],
            cost.python_start_s + 2 * infer_process + grid_steps * cost.decode_step_s, 2,
            result="infer-gpt2-small-batch.json", finding=True)
    cost_pairs = 2 if dry_run else 3  # the dry run's two pairs give ratios without an interval (exit 3)
    cost_steps = 2 * tokens * cost_pairs * (1 + cost.invariant_decode_factor)  # warm-up and timed, both modes
    steps.append(Step("infer gpt2-small cost", [*detprof, "infer", *model, "--cost", "--batch-sizes", "8",
                                                "--pairs", str(cost_pairs), "--new-tokens", str(tokens),
                                                *sizes.device, "--db", str(db), "--json"],
                      cost.python_start_s + 2 * cost_pairs * infer_process + cost_steps * cost.decode_step_s,
                      2 * cost_pairs, result="infer-gpt2-small-cost.json", ok_codes=(0, 3)))
    # 5. Bitwise checks, the audit, a short stability run, a few GPU tests.
    # The dry run checks small-cnn: the same code paths, without hashing vgg19's 143 M parameters
    # at every recorded op on a 2-core CPU (87 s of a dry run otherwise).
    checked = "small-cnn" if dry_run else "vgg19"
    check_arch = ["--arch", checked]
    step = cost.step_s["vgg19"] * 0.25 if not dry_run else 0.01  # batch 16 against 64
    build = PARAMS_M[checked] / 100 * cost.per_100m_params_s
    check_cost = cost.python_start_s + 2 * (cost.process_start_s + build + sizes.check_steps * step)
    # Op location trains both sides again up to the first divergent step and records that step.
    locate_cost = check_cost + 2 * (cost.process_start_s + build + sizes.check_steps * step * cost.check_step_factor
                                    + PARAMS_M[checked] / 100 * cost.hash_s_per_100m)
    check = [*detprof, "check", *check_arch, *sizes.device, *sizes.check, "--steps", str(sizes.check_steps), "--json"]
    # In the dry run a model whose result depends on the thread count by construction, at two thread
    # counts, makes the trainings differ on any CPU, so that op location runs (small-cnn at 1 vs 2
    # threads stays bitwise identical on some CPUs).
    located = (["--model", str(REPO / "tests" / "data" / "models" / "check_models.py") + ":thread_split_net",
                "--threads", "1,2"] if dry_run else [])
    command("check vgg19 default", [*(c for c in check if c not in check_arch), *(located or check_arch),
                                    "--mode", "default", "--locate-op"], locate_cost, 5,
            result="check-vgg19-default.json", finding=True)
    # Repeatability as a DDP training over one process (NCCL, its variables and the topology
    # recorded), and the restart gate: the second run saved halfway and resumed in a new process.
    command("check vgg19 world-size 1", [*check, "--mode", "deterministic", "--world-size", "1"],
            check_cost + 2 * cost.process_start_s, 3, result="check-vgg19-world-size-1.json", finding=True)
    restart_at = str(sizes.check_steps // 2)
    command("check vgg19 restart", [*check, "--mode", "deterministic", "--restart-at", restart_at],
            check_cost + cost.process_start_s + build, 4, result="check-vgg19-restart.json", finding=True)
    # The dry run audits a model with max_unpool2d (no deterministic CPU implementation): the catch path.
    audit_model = (["--model", str(REPO / "tests" / "data" / "models" / "check_models.py") + ":unpool_net"]
                   if dry_run else check_arch)
    command("audit vgg19", [*detprof, "audit", *audit_model, *sizes.device, *sizes.check, "--json"],
            check_cost + cost.process_start_s + build, 4, result="audit-vgg19.json", finding=True)
    # 6. Extras, in the time a machine faster than planned leaves: mobilenet's like-with-like
    #    comparison, TF32's share (one pair, both modes without TF32), a short stability run, and a
    #    few GPU tests.
    overhead("mobilenet-nofill", "mobilenet", ("default", "deterministic-nofill"), optional=True)
    for k in (3, 5):
        overhead(f"medium-cnn-k{k}", "medium-cnn", extra=["--kernel-size", str(k)], key=f"medium-cnn-k{k}",
                 optional=True)
    overhead("vgg19-tf32-off", stand_in, ("tf32-off", "deterministic-tf32-off"), pairs=1, optional=True)
    command("stability algo+impl", [*detprof, "stability", "--task", "digits", "--variant", "algo+impl", "--runs", "2",
                                    *sizes.stability, *sizes.device, "--db", str(db), "--json"],
            cost.python_start_s + 2 * (cost.process_start_s + cost.stability_run_s), 3,
            result="stability-algo+impl.json", optional=True)
    command("pytest -m gpu (fast)", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu",
                                     "tests/test_gpu.py", "-k", FAST_GPU_TESTS], cost.pytest_s, 4, optional=True)
    return steps


# The GPU tests that take one or two short processes each (tests/test_gpu.py), not all ~33.
FAST_GPU_TESTS = "nvml or overhead_on_cuda or tf32_row"


class Campaign:
    """Runs the planned steps within the budget, packing what they produced after each."""

    def __init__(self, out: Path, budget_s: float, dry_run: bool) -> None:
        self.out = out
        self.budget_s = budget_s
        self.dry_run = dry_run
        self.work = Path(tempfile.mkdtemp(prefix="detprof-campaign-"))
        self.results = self.work / "results"
        self.results.mkdir()
        self.db = self.results / "campaign.sqlite"
        self.log = out / "campaign.log"
        self.started = time.monotonic()
        self.calibration = Calibration()
        self.env = dict(os.environ, PYTHONUNBUFFERED="1",
                        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        """Seconds of the budget left for steps (the reserve excluded)."""
        return self.budget_s - RESERVE_S - self.elapsed()

    def say(self, message: str) -> None:
        line = f"[{self.elapsed():.0f}s] {message}"
        print(line, file=sys.stderr, flush=True)
        with self.log.open("a") as log:
            log.write(line + "\n")

    def record(self, line: str) -> None:
        with (self.results / "steps.txt").open("a") as steps:
            steps.write(line + "\n")

    def carry_plotly(self) -> None:
        """Install the pure-Python wheels carried in .whl/ (plotly) where the steps will find them."""
        wheels = sorted((REPO / ".whl").glob("*.whl"))
        if wheels:
            site = self.work / "site"
            done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                                   "--no-compile", "--target", str(site), *map(str, wheels)],
                                  capture_output=True, text=True)
            with self.log.open("a") as log:
                log.write(done.stdout + done.stderr)
            if done.returncode == 0:
                self.env["PYTHONPATH"] += os.pathsep + str(site)
        probe = subprocess.run([sys.executable, "-c", "import plotly"], env=self.env, capture_output=True)
        if probe.returncode != 0:
            banner = "!" * 78
            self.say(f"{banner}\nWARNING: plotly is missing, so report.html will NOT be written. Put plotly's wheel in "
                     f".whl/ and name it in the device call's carry (see gpu_campaign.sh).\n{banner}")

    def environment(self) -> None:
        """nvidia-smi (persistence mode included), versions (click among them), CUDA, cuDNN, TF32, GPUs."""
        commands = [("date", ["date", "-u"]), ("nvidia-smi", ["nvidia-smi"]),
                    ("persistence mode", ["nvidia-smi", "--query-gpu=index,name,persistence_mode,compute_mode",
                                          "--format=csv"]),
                    ("nvidia-smi -q (clocks, power, performance)",
                     ["nvidia-smi", "-q", "-d", "CLOCK,POWER,PERFORMANCE"]),
                    ("python, packages, CUDA, cuDNN, TF32",
                     [sys.executable, str(REPO / "benchmarks" / "campaign_checks.py"), "environment"]),
                    ("detprof gpus", [sys.executable, "-m", "detprof.cli", "gpus"])]
        with (self.out / "environment.txt").open("w") as record:
            for title, argv in commands:
                record.write(f"== {title}\n")
                record.flush()
                try:
                    done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=60)
                    record.write(done.stdout + done.stderr)
                except (OSError, subprocess.TimeoutExpired) as error:
                    record.write(f"not available: {error}\n")
        self.say("environment recorded")

    def run_step(self, step: Step, limit_s: float) -> None:
        """Run one step under ``limit_s``: SIGTERM at the limit (detprof keeps finished pairs), SIGKILL
        TERM_GRACE_S later; its stdout goes to its result file, its stderr to the log."""
        target = (self.out / "pytest_gpu.txt" if step.to_out else
                  self.results / step.result if step.result else None)
        newest = self.newest_run()
        self.say(f"START {step.name} (estimate {step.estimate_s * self.calibration.factor:.0f}s, limit {limit_s:.0f}s)")
        started = time.monotonic()
        with self.log.open("a") as log, (target.open("w") if target else open(os.devnull, "w")) as stdout:
            process = subprocess.Popen(step.argv, stdout=stdout if target else log, stderr=log, env=self.env,
                                       cwd=REPO, start_new_session=True)
            try:
                code = process.wait(timeout=max(limit_s, 1))
                cut = False
            except subprocess.TimeoutExpired:
                cut = True
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    code = process.wait(timeout=TERM_GRACE_S)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    code = process.wait()
        step.wall_s = time.monotonic() - started
        # A step that printed its whole run document just as the budget ran out finished: the
        # SIGTERM met a process already on its way out.
        finished_at_limit = cut and target is not None and whole_run_document(target)
        cut = cut and not finished_at_limit
        if target is not None and step.pair_s is not None:
            self.keep_partial(target, newest)
        step.status = ("cut short (budget)" if cut else "ok (finished at the budget)" if finished_at_limit else
                       "ok" if code == 0 else f"ok (exit {code}: a finding)" if code in step.ok_codes else
                       f"failed (exit {code})")
        self.say(f"END {step.name}: {step.status} in {step.wall_s:.0f}s")
        self.record(f"{step.name}: {step.status}, exit {code} in {step.wall_s:.0f}s")
        self.calibration.add(step)

    def newest_run(self) -> int:
        if not self.db.exists():
            return 0
        import sqlite3

        # Closed each time (sqlite3's `with` only commits): the read-only connections this left open
        # made a later read-only open of the WAL store fail as "malformed" in the dry run, every time,
        # once the inference steps had written to it. No step runs now, so a read-write one is safe.
        connection = sqlite3.connect(self.db)
        try:
            row = connection.execute("SELECT MAX(id) FROM runs").fetchone()
        finally:
            connection.close()
        return int(row[0] or 0)

    def keep_partial(self, target: Path, before: int) -> None:
        """An overhead step stopped early printed no run document (nothing, or an error document):
        take its partial run from the store."""
        try:
            if "run_id" in json.loads(target.read_text()):
                return
        except (ValueError, TypeError):
            pass
        newest = self.newest_run()
        if newest <= before:
            return
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))
        from detprof.store import ResultStore

        with ResultStore(self.db) as store:
            target.write_text(json.dumps(store.run_summary(newest), indent=1))

    def pack(self) -> None:
        """results.tar.gz: everything measured so far (traces apart: size), replaced atomically."""
        partial = self.out / "results.tar.gz.tmp"
        with tarfile.open(partial, "w:gz") as archive:
            archive.add(self.results, arcname="results", filter=lambda m: None if "/traces" in m.name else m)
        partial.replace(self.out / "results.tar.gz")

    def pack_traces(self) -> None:
        """traces.tar.gz: the profiled passes' traces; vgg19's alone when all of them pass 15 MiB."""
        traces = self.results / "traces"
        if not traces.is_dir():
            return
        target = self.out / "traces.tar.gz"
        with tarfile.open(target, "w:gz") as archive:
            archive.add(traces, arcname="traces")
        if target.stat().st_size > 15 * 1024 * 1024:
            try:
                vgg19 = Path(json.loads((self.results / "vgg19.json").read_text())["trace_dir"])
            except (OSError, ValueError, KeyError, TypeError):
                target.unlink()
                return
            with tarfile.open(target, "w:gz") as archive:
                archive.add(vgg19, arcname=f"traces/{vgg19.name}")
            self.say("traces.tar.gz holds vgg19's traces only (all of them pass 15 MiB)")

    def run(self, steps: list[Step]) -> int:
        self.say(f"detprof GPU campaign: out={self.out} budget={self.budget_s:.0f}s reserve={RESERVE_S}s "
                 f"dry_run={int(self.dry_run)}")
        self.carry_plotly()
        self.environment()
        dropped = False
        for step in steps:
            estimate = step.estimate_s * self.calibration.factor
            pair = (step.pair_s or 0.0) * self.calibration.factor
            left = self.left()
            if dropped:
                step.status = "dropped (budget)"
            elif step.always or estimate <= left:
                # A hung step must not eat the rest: three times its estimate, within what is left.
                self.run_step(step, left if step.always else min(left, 3 * estimate + 20))
            elif step.pair_s is not None and pair <= left:
                self.run_step(step, left)  # cut at the budget; its finished pairs are kept
                dropped = True
            else:
                dropped = True
                step.status = "dropped (budget)"
            if step.status.startswith("dropped"):
                self.say(f"DROPPED {step.name}: needs about {estimate:.0f}s, {max(left, 0):.0f}s left")
                self.record(f"{step.name}: dropped (budget), needs about {estimate:.0f}s")
            else:
                self.pack()  # what the step measured, returned even if the device call ends now
        self.finish()
        return 0

    def finish(self) -> None:
        """The summary and the report (inside the reserve), the traces, the last packing."""
        helper = [sys.executable, str(REPO / "benchmarks" / "campaign_checks.py")]
        summary = [*helper, "summary", str(self.results), "--out", str(self.out / "summary.md"),
                   "--calibration", json.dumps(self.calibration.history)]
        written = subprocess.run(summary, env=self.env, stdout=subprocess.DEVNULL, stderr=self.log.open("a"),
                                 timeout=60)
        if written.returncode != 0:  # still say what ran: the steps, and where the helper's error is
            steps = self.results / "steps.txt"
            (self.out / "summary.md").write_text(
                "# detprof GPU campaign: summary\n\nThe summary could not be written (exit "
                f"{written.returncode}; the traceback is in campaign.log).\n\n## Steps\n\n```\n"
                f"{steps.read_text().strip() if steps.exists() else ''}\n```\n")
        self.record(f"summary: exit {written.returncode}")
        report = [sys.executable, "-m", "detprof.cli", "report", "--db", str(self.db), "--out",
                  str(self.out / "report.html")]
        vgg19 = self.results / "vgg19.json"
        try:
            report += ["--kernels-run", str(json.loads(vgg19.read_text())["run_id"])]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        with self.log.open("a") as log:
            done = subprocess.run(report, env=self.env, stdout=log, stderr=log, timeout=max(self.budget_s -
                                  self.elapsed(), 20))
        self.record(f"report: exit {done.returncode}")
        self.pack()
        self.pack_traces()
        names = sorted(p.name for p in self.out.iterdir())
        self.say(f"done in {self.elapsed():.0f}s; {len(names)} files in {self.out}: {', '.join(names)}")
        if len(names) > MAX_FILES:
            self.say(f"WARNING: more than {MAX_FILES} files: the device tool brings back only {MAX_FILES}")
        shutil.rmtree(self.work, ignore_errors=True)


def print_plan(steps: list[Step], budget_s: float) -> int:
    """Each step with its estimate and the cumulative time; exit 1 when the plan (its extras aside)
    does not fit."""
    available = budget_s - RESERVE_S
    total = 0.0
    print(f"budget {budget_s:.0f}s: {available:.0f}s for steps, {RESERVE_S}s kept for the summary and the report")
    print(f"{'#':>2}  {'step':<34} {'processes':>9} {'estimate':>9} {'cumulative':>11}")
    required = 0.0
    for number, step in enumerate(steps, start=1):
        total += step.estimate_s
        required += 0.0 if step.extra else step.estimate_s
        mark = "" if total <= available else \
            "  (extra: runs if a faster machine leaves the time)" if step.extra else \
            "  (over the budget: dropped unless the machine is faster)"
        print(f"{number:>2}  {step.name:<34} {step.processes:>9} {step.estimate_s:>8.0f}s {total:>10.0f}s{mark}")
    total = required
    fits = total <= available
    print(f"plan: {total:.0f}s of steps + {RESERVE_S}s reserve = {total + RESERVE_S:.0f}s; "
          + ("fits the budget" if fits else "does NOT fit: the tail will be dropped"))
    return 0 if fits else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT") or "campaign-out")
    parser.add_argument("--budget", type=int, default=DEFAULT_BUDGET_S, help="seconds for the whole campaign")
    parser.add_argument("--dry-run", action="store_true", help="the same pipeline on the CPU at tiny sizes")
    parser.add_argument("--plan", action="store_true", help="print the steps with their estimates and stop")
    args = parser.parse_args(argv)
    if args.budget <= RESERVE_S:
        parser.error(f"--budget {args.budget} is not accepted; use more than the {RESERVE_S} s reserve")
    if args.plan:
        scratch = Path(tempfile.gettempdir()) / "campaign-plan"
        return print_plan(plan(args.dry_run, scratch / "campaign.sqlite", scratch), args.budget)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "campaign.log").write_text("")
    campaign = Campaign(out, args.budget, args.dry_run)
    return campaign.run(plan(args.dry_run, campaign.db, campaign.results))


if __name__ == "__main__":
    sys.exit(main())
