"""The ``detprof`` command line: parses, calls the Python API, prints. No measurement logic here.

Every command takes ``--json`` (one JSON document on stdout, nothing else there); human output
goes through rich. A user mistake exits 2 with one line on stderr.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich import box
from rich.console import Console, ConsoleDimensions, Group, RenderableType
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from detprof.errors import DetprofError, require
from detprof.gpus import list_gpus
from detprof.kernels.trace import DEFAULT_MAX_TRACE_MB
from detprof.modes import ABLATION, MODES
from detprof.runner.config import CPU_DEFAULTS, CPU_IMAGE_SIZE, CPU_THREADS, GPU_DEFAULTS
from detprof.stats import plus_minus
from detprof.store import ResultStore, StoreError

PIPE_WIDTH = 10_000


class PipeAwareConsole(Console):
    """Standard output or error: the terminal's width on a terminal or when $COLUMNS says; otherwise
    (a pipe, a CI log) a width no table or line reaches, so that rich never wraps a mode or kernel name that a reader
    needs whole. Tables take only the width their content needs. Decided at each print, as the
    stream and the environment may change between commands run in one process."""

    @property  # type: ignore[misc]  # rich's size has a setter; a width set explicitly still wins
    def size(self) -> ConsoleDimensions:
        dimensions = super().size
        if self._width is None and not self.file.isatty() and not os.environ.get("COLUMNS"):
            return ConsoleDimensions(PIPE_WIDTH, dimensions.height)
        return dimensions


out = PipeAwareConsole()
err = PipeAwareConsole(stderr=True)
INTERRUPTED = 130  # the shell's exit status for Ctrl-C (128 + SIGINT)
TERMINATED = 143  # and for SIGTERM (128 + 15), which `timeout` and schedulers send


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the job in progress stops and what is finished stays stored."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def _stop_chain(error: BaseException) -> list[BaseException]:
    """The exceptions behind an abort, outermost first (the parser wraps Ctrl-C in its own)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def interrupted_line(chain: list[BaseException]) -> str:
    """What detprof says when Ctrl-C or SIGTERM stopped it: which signal, and what was kept."""
    from detprof.overhead import MeasurementInterrupted

    how = "terminated (SIGTERM)" if any(isinstance(e, Terminated) for e in chain) else "interrupted"
    partial = next((e for e in chain if isinstance(e, MeasurementInterrupted)), None)
    if partial is not None:
        return (f"detprof: {how}: the job in progress was stopped; the {partial.pairs} finished pairs are stored as "
                f"run {partial.run_id}, marked partial (`detprof runs`); finished sweep jobs and stability runs stay "
                "stored")
    return (f"detprof: {how}: the job in progress was stopped and is not stored; finished sweep jobs and stability "
            "runs stay stored; run the same command again to resume a sweep")
# The parser's exception classes: typer re-exports BadParameter and Abort only, and carries its own
# copy of click since 0.2x, so the others are found among BadParameter's bases.
UsageError: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
ClickException: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _wants_json() -> bool:
    """True when the command being run was given --json (its one document goes to stdout)."""
    return "--json" in OneLineErrors.invocation


def _json_error(message: str, exit_code: int) -> None:
    """Under --json, an error is a document on stdout too: {"error": {"message", "exit_code"}}."""
    if _wants_json():
        sys.stdout.write(json.dumps({"error": {"message": message, "exit_code": exit_code}}) + "\n")
        sys.stdout.flush()


def _error_line(message: str, exit_code: int = 2) -> None:
    err.print(f"detprof: error: {message}", highlight=False, markup=False, soft_wrap=True)
    _json_error(message, exit_code)


# What a value must look like, by the parser's validation error type.
EXPECTED_TYPES = {"int_parsing": "an integer", "int_from_float": "a whole number", "float_parsing": "a number",
                  "bool_parsing": "true or false"}


def usage_message(error: Exception) -> str:
    """One line for a parser error: the option and the bad value with what is accepted, or the
    command it concerns."""
    message = " ".join(str(getattr(error, "format_message", lambda: error)()).split())
    param = getattr(error, "param", None)
    options = getattr(param, "opts", None) or []
    cause = error.__cause__
    problems = cause.errors() if cause is not None and hasattr(cause, "errors") else []
    if isinstance(error, typer.BadParameter) and options and problems and "input" in problems[0]:
        expected = EXPECTED_TYPES.get(problems[0].get("type", ""))
        value = problems[0]["input"]
        option = max(options, key=len)
        return f"{option} {value!r} is not accepted; use {expected}" if expected else \
            f"{option} {value!r} is not accepted: {message}"
    ctx = getattr(error, "ctx", None)
    message = f"{message[:1].lower()}{message[1:]}"
    words: list[str] = []  # the command's words below the program: "db merge"
    while ctx is not None and ctx.parent is not None:
        words.insert(0, ctx.info_name)
        ctx = ctx.parent
    return f"detprof {' '.join(words)}: {message}" if words else message


def empty_value(arguments: list[str]) -> str | None:
    """The error for an empty value among the arguments (``--arch ''``, ``--out=``, a positional
    ``''``), or None. An empty string once ran resnet18 for ``--arch ''`` and wrote the default
    path for ``report --out ''``."""
    for index, argument in enumerate(arguments):
        if argument.startswith("--") and argument.endswith("=") and len(argument) > 3:
            return f"{argument[:-1]} '' is not accepted; give a value"
        if argument.strip():
            continue
        before = arguments[index - 1] if index else ""
        if before.startswith("-") and "=" not in before:
            return f"{before} {argument!r} is not accepted; give a value"
        return f"an empty argument ({argument!r}, argument {index + 1}) is not accepted; give a value"
    return None


class OneLineErrors(TyperGroup):
    """Every usage error in one line, in the same form as detprof's own errors (the parser's default
    is a four-line block without the bad value), and a line on Ctrl-C."""

    invocation: list[str] = []  # the arguments of the command being run, for invoked_command()
    stop_chain: list[BaseException] = []  # what stopped the command, when Ctrl-C or SIGTERM did

    def invoke(self, ctx: Any) -> Any:
        # The parser turns Ctrl-C into an exit status and drops the exception: note what it was first.
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as error:
            OneLineErrors.stop_chain = _stop_chain(error)
            raise

    def main(self, args: Any = None, prog_name: str | None = None,  # type: ignore[override]  # click's own
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:  # is overloaded
        OneLineErrors.invocation = [str(a) for a in (sys.argv[1:] if args is None else args)]
        empty = empty_value(OneLineErrors.invocation)
        if empty:  # '' never means anything: refused before the parser can take it for "the default"
            _error_line(empty)
            sys.exit(2)
        # SIGTERM stops detprof as Ctrl-C does (unless whoever started it chose to ignore it).
        previous = signal.getsignal(signal.SIGTERM)
        handle_term = previous == signal.SIG_DFL and threading.current_thread() is threading.main_thread()
        if handle_term:
            signal.signal(signal.SIGTERM, _on_sigterm)
        OneLineErrors.stop_chain = []
        try:
            result = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False,
                                  **extra)
        except typer.Abort:
            result = INTERRUPTED
        except KeyboardInterrupt as error:  # raised outside the parser's own handling
            OneLineErrors.stop_chain = _stop_chain(error)
            result = INTERRUPTED
        except UsageError as error:
            message = usage_message(error)
            if "no such command" in message:
                group = getattr(getattr(error, "ctx", None), "command", None)
                message += f" Commands: {', '.join(sorted(getattr(group, 'commands', None) or self.commands))}."
            _error_line(message)
            sys.exit(2)
        except ClickException as error:
            _error_line(" ".join(error.format_message().split()), error.exit_code)
            sys.exit(error.exit_code)
        finally:
            if handle_term:
                signal.signal(signal.SIGTERM, previous)
        chain = OneLineErrors.stop_chain
        if result == INTERRUPTED and any(isinstance(e, Terminated) for e in chain):
            result = TERMINATED
        if result in (INTERRUPTED, TERMINATED):  # Ctrl-C (the parser turns it into this status) or SIGTERM
            from detprof.overhead import MeasurementInterrupted

            line = interrupted_line(chain)
            err.print(line, highlight=False, markup=False, soft_wrap=True)
            partial = next((e for e in chain if isinstance(e, MeasurementInterrupted) and e.document), None)
            if partial is not None and _wants_json():  # the one document: the partial run that was kept
                print_json({**(partial.document or {}), "interrupted": line.removeprefix("detprof: ")})
            else:
                _json_error(line.removeprefix("detprof: "), result)
        sys.exit(result if isinstance(result, int) and not isinstance(result, bool) else 0)


app = typer.Typer(cls=OneLineErrors, add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Measure what deterministic training costs: step time, kernel time and memory, "
                       "default vs deterministic mode, per network and GPU.")

# Only detprof's own errors are user mistakes; anything else is a bug and keeps its traceback.
USER_ERRORS = (DetprofError,)
STABILITY_TASKS = "digits, cifar10, cifar100, celeba"
JSON_HELP = "Print one JSON document on stdout instead of tables."
MODEL_HELP = ("Your own model instead of --arch: MODULE:FUNCTION, where MODULE is importable or a path to a .py file "
              "and FUNCTION(num_classes) returns an nn.Module. This runs your code.")
INPUT_SHAPE_HELP = "Input shape C,H,W of one example for --model (default 3 x the image size)."
FRAMEWORK_HELP = ("pytorch, or tf: the Keras model of --arch in TensorFlow's default and op-deterministic modes, "
                  "each job a new interpreter (needs pip install 'detprof[tf]').")


def parse_shape(text: str | None) -> tuple[int, int, int] | None:
    """``"3,224,224"`` as (3, 224, 224); raises ArgumentError naming the value otherwise."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    require(len(parts) == 3 and all(p.isdigit() and int(p) > 0 for p in parts),
            f"--input-shape {text!r} is not accepted; use C,H,W with positive integers, such as 3,224,224")
    return (int(parts[0]), int(parts[1]), int(parts[2]))


DB_HELP = "Results database (default: $DETPROF_DB or ./.detprof/results.sqlite)."


def _defaults(key: str) -> str:
    return f"default: {GPU_DEFAULTS[key]:g} on GPU, {CPU_DEFAULTS[key]:g} on CPU"


def fail(message: str) -> NoReturn:
    """Report a user mistake in one line on stderr and exit 2."""
    _error_line(message)
    raise typer.Exit(2)


@contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except USER_ERRORS as error:
        fail(str(error))


def invoked_command() -> str:
    """The command line as the user typed it, recorded with what it stores."""
    return shlex.join(["detprof", *OneLineErrors.invocation])


def progress_bar() -> Any:
    """The progress display of long commands, on stderr, gone when done. rich.progress is imported
    here, not at start-up, so that quick commands do not pay for it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # Off when stderr is not a terminal (a pipe, a CI log): there the bar only left a blank line
    # before the one line of an error.
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True, disable=not err.is_terminal)


@contextmanager
def progress_once_valid(description: str) -> Iterator[Callable[..., None]]:
    """A progress bar that appears only when the work starts: the API calls the ``show(text, **fields)``
    this yields once every value has been checked, so a bad value is reported alone, never after
    a bar (on a terminal, too)."""
    bar = progress_bar()
    task: list[Any] = []

    def show(text: str | None = None, **fields: Any) -> None:
        if not task:
            bar.start()
            task.append(bar.add_task(description, total=None))
        bar.update(task[0], description=text or description, **fields)

    try:
        yield show
    finally:
        if task:
            bar.stop()


def printable(text: str) -> str:
    """A name from a trace or a model, safe to print in a terminal table: control and bidirectional
    formatting characters (U+202E would reverse what follows it on screen) shown as ``\\uXXXX``,
    and rich's markup brackets escaped, so that ``[/x]`` in a kernel name is text, not a style."""
    import unicodedata

    from rich.markup import escape

    shown = "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf") else c for c in str(text))
    return escape(shown)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(_clean(document), indent=2) + "\n")


def emit(document: Any, json_output: bool, show: Callable[[Any], None]) -> None:
    """Print ``document`` as JSON, or hand it to ``show`` for the human form."""
    if json_output:
        print_json(document)
    else:
        show(document)


def _fmt(value: float | None, digits: int = 2, suffix: str = "", grouped: bool = False) -> str:
    """A number with ``digits`` decimals (thousands separated when ``grouped``), or — when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:{',' if grouped else ''}.{digits}f}{suffix}"


def _bytes(value: int | None) -> str:
    if value is None:
        return "—"
    return f"{value / 2**20:,.0f} MiB"


@app.command()
def overhead(
    arch: str | None = typer.Option(None, help="Network from `detprof zoo` (default resnet18; e.g. vgg19, resnet50, "
                                               "medium-cnn)."),
    model: str | None = typer.Option(None, help=MODEL_HELP),
    input_shape: str | None = typer.Option(None, help=INPUT_SHAPE_HELP),
    num_classes: int | None = typer.Option(None, help="Classes of the output layer (default: the arch's; 1000 for "
                                                      "--model)."),
    framework: str = typer.Option("pytorch", help=FRAMEWORK_HELP),
    gpu: str = typer.Option("auto", help="GPU alias (v100, a100, h100, ...), index, `cpu`, or `auto` "
                                         "(first GPU, else CPU)."),
    modes: str | None = typer.Option(None, help="Two modes A,B; the ratio is B/A (default: default,deterministic). "
                                                f"Known: {', '.join(MODES)}. `default,default` is the A/A test."),
    ablate: bool = typer.Option(False, "--ablate", help="Measure each switch of the deterministic mode on its own "
                                                        "against default, one stored run per switch (GPU-only "
                                                        "switches are skipped on a CPU)."),
    ablate_modes: str | None = typer.Option(None, help="With --ablate: only these steps, as M,M,... Steps: "
                                                       f"{', '.join(step.mode for step in ABLATION)}."),
    kernel_size: int | None = typer.Option(None, help="Convolution kernel size of medium-cnn, 1 to 7 (default 3); "
                                                      "other networks have none to choose."),
    bn: bool | None = typer.Option(None, "--bn/--no-bn", help="BatchNorm in small-cnn (the only network where it is "
                                                              "optional)."),
    batch_size: int | None = typer.Option(None, help=f"Batch size ({_defaults('batch_size')})."),
    image_size: int | None = typer.Option(None, help=f"Input side in pixels (default: the arch's own on GPU, "
                                                     f"{CPU_IMAGE_SIZE} or the arch's minimum on CPU)."),
    warmup: int | None = typer.Option(None, help=f"Warm-up steps, excluded ({_defaults('warmup_steps')})."),
    steps: int | None = typer.Option(None, help=f"Timed steps per job ({_defaults('timed_steps')})."),
    profile_steps: int | None = typer.Option(None, help=f"Profiled steps per mode, 0 to skip "
                                                        f"({_defaults('profile_steps')})."),
    repeats: int | None = typer.Option(None, help="Pairs of fresh processes (one per mode, balanced order AB, BA, "
                                                  f"...) that always run ({_defaults('repeats')}). Given without "
                                                  "--precision: exactly this many."),
    precision: float | None = typer.Option(None, help="Target half-width of the ratio's 95% CI as a fraction "
                                                      "(0.02 = ±2%): pairs are added until it is reached or "
                                                      f"--max-time is spent ({_defaults('precision')}); 0 runs "
                                                      "exactly --repeats pairs."),
    max_time: float | None = typer.Option(None, help="Seconds the adaptive protocol may spend measuring; no pair "
                                                     f"starts that would overrun it ({_defaults('max_time_s')})."),
    threads: int | None = typer.Option(None, help=f"CPU intra-op threads per job (default: {CPU_THREADS})."),
    seed: int = typer.Option(0, help="Seed for weights and synthetic data (same for every job)."),
    job_timeout: float = typer.Option(1800.0, help="Seconds before a job is killed and recorded as timed out."),
    db: str | None = typer.Option(None, help=DB_HELP),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Default vs deterministic: step time, kernel time, memory, and the ratio with a 95% CI."""
    from detprof.gpus import select_device
    from detprof.overhead import measure_and_store
    from detprof.runner.config import build_config

    measurement: dict[str, Any] = dict(
                       kernel_size=kernel_size, batch_norm=bn, batch_size=batch_size, image_size=image_size,
                       warmup_steps=warmup, timed_steps=steps, profile_steps=profile_steps, repeats=repeats,
                       threads=threads, seed=seed, job_timeout_s=job_timeout, precision=precision,
                       max_time_s=max_time, model=model, num_classes=num_classes, framework=framework)
    if ablate or ablate_modes:
        with user_errors():
            require(modes is None, "--ablate measures every step against default; drop --modes")
            measurement["input_shape"] = parse_shape(input_shape)
        _overhead_ablation(arch, gpu, db, json_output, ablate_modes, measurement)
        return
    with user_errors():
        options = {**measurement, "modes": modes or "default,deterministic", "input_shape": parse_shape(input_shape)}
        device = select_device(gpu)
        config = build_config(arch, device, **options)  # validate before any process starts
        ResultStore(db, create=True).close()  # and the database too, before the plan says what will run
    if not json_output:
        _print_plan(config, device)
    protocol = config.protocol
    # Adaptive runs have no known total: the bar counts toward the minimum, then toward the cap.
    total = protocol.repeats * 2
    with progress_bar() as progress:
        task = progress.add_task(f"{config.workload.arch}: jobs", total=total)

        def advance(job: Any) -> None:
            done = job.spec.index + 1
            budget = f" (adaptive, up to {protocol.max_time_s:g} s)" if protocol.adaptive else ""
            progress.update(task, completed=done, total=max(total, done + (done % 2)),
                            description=f"{config.workload.arch}: pair {job.spec.repeat + 1} {job.spec.mode} "
                                        f"{job.status}{budget}")

        with user_errors():
            document = measure_and_store(config, device, db=db, on_job_done=advance, command=invoked_command())
    if json_output:
        print_json(document)
    else:
        print_overhead(document)
    if document["ratio"] is None:
        err.print(f"detprof: run {document['run_id']} stored, but no ratio: every job of at least one mode failed")
        raise typer.Exit(1)


def _overhead_ablation(arch: str | None, gpu: str, db: str | None, json_output: bool, only: str | None,
                       options: dict[str, Any]) -> None:
    from detprof.gpus import select_device
    from detprof.overhead import ablation_configs, run_ablation

    with user_errors():
        chosen = [m.strip() for m in only.split(",") if m.strip()] if only else None
        device = select_device(gpu)
        plans, skipped = ablation_configs(None if options["model"] else arch, device, chosen, **options)
        ResultStore(db, create=True).close()
    if not json_output:
        _print_plan(plans[0][1], device)
        err.print(f"ablation: {len(plans)} comparisons against default, one after the other"
                  + (f"; {len(skipped)} GPU-only switches skipped on this CPU" if skipped else ""), highlight=False)
    with progress_bar() as progress:
        bar = progress.add_task("ablation", total=len(plans))

        def started(step: Any, number: int, total: int) -> None:
            progress.update(bar, completed=number - 1, description=f"ablation {number}/{total}: {step.mode}")

        with user_errors():
            document = run_ablation(arch, gpu, db, chosen, on_step=started, command=invoked_command(), **options)
    emit(document, json_output, _print_ablation)


def _print_ablation(d: dict[str, Any]) -> None:
    rows = []
    for r in d["steps"]:
        ci = r["ratio_ci"]
        rows.append([r["mode"], _fmt(r["ratio"], 3), f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "—",
                     _kernel_cell(r["kernel_ratio"], r.get("kernel_times_reliable")), _fmt(r["memory_ratio"], 3),
                     _bytes(r["peak_mem_bytes"][1]),
                     str(r["run_id"])])
    out.print(grid(f"ablation: {d['arch']} on {d['device']['name']}, each mode against default in paired processes",
                   ["mode", "step time ratio", "95% CI", "kernel ratio", "memory ratio", "peak memory", "run"],
                   rows))
    for r in d["steps"]:
        out.print(f"{r['mode']} ({r['changes']}): {r['verdict']}", highlight=False)
    if d["skipped"]:
        out.print("not measured on a CPU (cuDNN, cuBLAS and TF32 exist only on a GPU): "
                  + ", ".join(s["mode"] for s in d["skipped"]), highlight=False)


def _print_plan(config: Any, device: Any) -> None:
    w, p = config.workload, config.protocol
    pairs = (f"at least {p.repeats} pairs of processes, more until the ratio's CI is within ±{100 * p.precision:g}% "
             f"or {p.max_time_s:g} s are spent" if p.adaptive else f"{p.repeats} pairs of processes")
    line = (f"{w.describe()}; {p.warmup_steps} warm-up + {p.timed_steps} timed steps per process, {pairs}; "
            f"{p.profile_steps} profiled steps")
    if device.kind == "cpu":
        line += (f"; CPU, {p.cpu_threads or 'default'} thread(s). CPU defaults are smaller than the paper's GPU "
                 "setting (224x224, batch 64, 100 steps)")
    else:
        line += f"; GPU {device.gpu.index} ({device.name}, {device.gpu.uuid or 'no UUID'})"
        if device.gpu.source != "nvml":
            line += ". NVML is unavailable: clocks, temperature and throttling are not monitored"
    err.print(line, highlight=False)


def grid(title: str, headers: list[str], rows: list[list[str]], text: set[int] | None = None) -> RenderableType:
    """A table whose numbers are never cut: numeric columns (all but ``text``) keep their widest value
    on one line, and text columns wrap (fold) rather than end in an ellipsis. Off a terminal the title
    is its own line above the table, as rich would wrap it to the table's width."""
    text = {0} if text is None else text
    # Light rules and no outer padding: two characters between columns instead of three, so that
    # the tables fit 80 columns without rich having to cut anything.
    table = Table(title=None if out.width >= PIPE_WIDTH else title, box=box.SIMPLE_HEAD, pad_edge=False,
                  show_edge=False, collapse_padding=True)
    for index, header in enumerate(headers):
        if index in text:  # wraps, but never below the width of its header's longest word (or 12)
            table.add_column(header, overflow="fold", min_width=min(12, max(len(word) for word in header.split())))
        else:  # a header wider than the numbers goes on one line per word, as the numbers never wrap
            longest_value = max([len(row[index]) for row in rows] + [0])
            widest = max(longest_value, max(len(word) for word in header.split()))
            label = "\n".join(header.split()) if len(header) > longest_value else header
            table.add_column(label, justify="right", no_wrap=True, min_width=widest)
    for row in rows:
        table.add_row(*row)
    if out.width >= PIPE_WIDTH:
        return Group(Text(title), table)
    return table


def _bitwise(mode: dict[str, Any]) -> str:
    """How the repeats' parameter fingerprints compared, e.g. "identical (5)" or "3 distinct of 5"."""
    distinct, runs = mode.get("distinct_state_hashes") or 0, mode["repeats_ok"]
    if runs < 2 or not distinct:
        return "—"
    return f"identical ({runs})" if distinct == 1 else f"{distinct} distinct of {runs}"


def _kernel_cell(ratio: float | None, reliable: bool | None) -> str:
    """A kernel-time ratio in a table: not stated when the run's kernel times are unreliable."""
    if ratio is None or ratio != ratio:
        return "—"
    return "unreliable" if reliable is False else f"{ratio:.3f}"


def kernel_ratio_phrase(doc: dict[str, Any]) -> str:
    """The kernel-time ratio as far as the data support it: with its paired CI, without a CI when
    too few pairs were profiled, and not at all when the kernel times do not stand for the timed
    steps (``kernel_times_note`` then says why)."""
    ratio = doc.get("kernel_ratio")
    if ratio is None:
        return "kernel time not measured"
    if doc.get("kernel_times_reliable") is False:
        return "kernel time ratio not stated (kernel times unreliable, below)"
    ci = doc.get("kernel_ratio_ci")
    pairs = doc.get("kernel_ratio_pairs", 0)
    interval = f"95% CI {ci[0]:.3f}-{ci[1]:.3f}" if ci else f"no CI: {pairs} profiled pair{'s' * (pairs != 1)}"
    return f"kernel time x{ratio:.3f} ({interval})"


def print_overhead(doc: dict[str, Any]) -> None:
    out.print(doc["verdict"], highlight=False)
    rows = []
    for m in doc["modes"]:
        noisy = " (noisy)" if m["noisy"] else ""
        rows.append([m["mode"], _fmt(m["step_ms"]) + noisy, _fmt(m["step_ms_iqr"]), _fmt(m["kernel_ms"]),
                     _fmt(None if m["kernel_coverage"] is None else 100 * m["kernel_coverage"], 0, "%"),
                     _bytes(m["peak_mem_bytes"]), f"{m['repeats_ok']}/{m['repeats_ok'] + m['repeats_failed']}",
                     _bitwise(m)])
    table = grid(f"run {doc['run_id']}: {doc['arch']} on {doc['device']['name']}",
                 ["mode", "step ms (median)", "IQR ms", "kernel ms/step", "coverage", "peak memory", "repeats ok",
                  "final weights"], rows, text={0, 7})
    out.print(table)
    for m in doc["modes"]:
        ops = m["nondeterministic_ops"]
        out.print(f"determinism of {m['mode']}: {m['determinism']}" + (f" ({', '.join(ops)} warned)" if ops else ""),
                  highlight=False)
    names = [m["mode"] for m in doc["modes"]]
    if doc["ratio"] is not None:
        ci = doc["ratio_ci"]
        interval = f"95% CI {ci[0]:.3f}-{ci[1]:.3f}" if ci else doc["ratio_ci_reason"]
        memory = f", peak memory x{doc['memory_ratio']:.3f}" if doc.get("memory_ratio") is not None else ""
        out.print(f"{names[1]} / {names[0]}: step time x{doc['ratio']:.3f} ({interval}; {doc['ratio_pairs']} pairs), "
                  f"{kernel_ratio_phrase(doc)}{memory}", highlight=False)
    if doc.get("partial"):
        out.print(f"[yellow]partial: the measurement was stopped before it finished; these are its "
                  f"{doc['ratio_pairs']} finished pairs[/]", highlight=False)
    if doc.get("kernel_times_note"):
        out.print(f"[yellow]{doc['kernel_times_note']}[/]", highlight=False)
    precision = doc.get("precision") or {}
    if precision.get("target"):
        achieved = precision["achieved"]
        shown = "none" if achieved is None else plus_minus(achieved)
        state = "reached" if precision["reached"] else f"not reached (stopped by {precision['stopped_by']})"
        line = (f"precision: target ±{100 * precision['target']:g}% {state}; achieved {shown} with "
                f"{precision['pairs']} pairs in {precision['elapsed_s']:.0f} s (± is the 95% CI's half-width over "
                "the ratio)")
        if precision.get("pairs_needed"):
            line += (f"; at the spread measured, about {precision['pairs_needed']:,} pairs (~"
                     f"{_duration(precision['seconds_needed'])}) would reach the target: raise --max-time for that")
        out.print(line, highlight=False)
    for m in doc["modes"]:
        if m.get("kernel_ms_reason") and m["kernel_ms"] is None and m["repeats_ok"]:
            out.print(f"[yellow]{m['mode']}: no kernel time:[/] {m['kernel_ms_reason']}", highlight=False)
    for failure in doc["failed_jobs"]:
        out.print(f"[yellow]job {failure['mode']} r{failure['repeat']} {failure['status']}:[/] "
                  f"{(failure['error'] or '')[:300]}", highlight=False)
    if doc["noisy"]:
        out.print("[yellow]noisy: step times vary by more than 10% (IQR/median) within at least one mode; the CI "
                  "above accounts for it, and more --steps per process narrow it[/]")


MAX_TRACE_MB_OPTION = typer.Option(
    float(DEFAULT_MAX_TRACE_MB), "--max-trace-mb",
    help="Refuse a trace whose file or JSON text (after gunzip) is larger than this, in MB (2^20 bytes), before "
         "parsing it.")
def _duration(seconds: float) -> str:
    """A projected time for a person: seconds, minutes or hours, whichever reads best."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


SCOPE_HELP = ("Which GPU events of a trace count: `steps` (launched within the profiled steps, as Holistic "
              "Trace Analysis counts them) or `all`.")


def _check_top(top: int) -> None:
    if top < 1:
        fail(f"--top {top} is not accepted; use an integer >= 1")


def _check_scope(scope: str) -> None:
    from detprof.kernels import SCOPES

    if scope not in SCOPES:
        fail(f"--scope {scope!r} is not accepted; use one of {', '.join(SCOPES)}")


@app.command()
def kernels(
    top: int = typer.Option(20, help="Kernels to list before the (others) row."),
    run: int | None = typer.Option(None, help="Run id (default: the latest run)."),
    mode: str | None = typer.Option(None, help="Mode to list (default: the run's second mode, e.g. deterministic, "
                                               "or its only mode with kernels)."),
    trace: str | None = typer.Option(None, help="Analyse this profiler trace instead of a stored run: PyTorch's "
                                                "(.json or .json.gz) or TensorFlow's (.xplane.pb)."),
    framework: str | None = typer.Option(None, help="Without --run: the newest run of this framework (pytorch or "
                                                    "tf)."),
    scope: str = typer.Option("steps", help=SCOPE_HELP),
    cpu_ops: bool = typer.Option(False, "--cpu-ops", help="With --trace: list the CPU ops (self time) of a GPU "
                                                          "program's trace that holds no GPU kernel events."),
    db: str | None = typer.Option(None, help=DB_HELP),
    stats: bool = typer.Option(False, "--stats", help="Also show each kernel's median, min, max and std (µs)."),
    max_trace_mb: float = MAX_TRACE_MB_OPTION,
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Where the time goes, per kernel, and what changed between the run's two modes (or in any trace)."""
    from detprof.views import kernel_report, trace_report

    _check_top(top)
    _check_scope(scope)
    if trace is not None:
        ignored = [name for name, value in (("--run", run), ("--mode", mode), ("--framework", framework))
                   if value is not None]
        if ignored:  # silently reading the file instead of the run asked for would mislead
            fail(f"{ignored[0]} does not apply with --trace FILE (a trace is read from its file, not from a run); "
                 f"give --trace or {ignored[0]}, not both")
        with user_errors():
            emit(trace_report(trace, top, scope, cpu_ops, max_trace_mb), json_output,
                 lambda r: _print_trace_report(r, stats))
        return
    if cpu_ops:
        fail("--cpu-ops applies to --trace FILE only")
    with user_errors():
        require(framework is None or run is None, "give --run or --framework, not both")
        if framework is not None:
            with ResultStore(db) as store:
                run = store.latest_run_id(framework)
        report = kernel_report(db, run, mode, top)
    emit(report, json_output, lambda r: _print_kernel_report(r, stats))


def _kernel_rows_table(title: str, rows: list[dict[str, Any]]) -> RenderableType:
    """Kernels with calls, total, share and mean, in µs throughout (one time unit per table)."""
    from detprof.kernels.names import signature

    cells = [[printable(signature(k["name"])) + (" *" if k["nondeterministic"] else ""), k["category"],
              f"{k['calls']:,}",
              _fmt(k["total_us"], 1, grouped=True), _fmt(100 * k["share"], 1, "%"), _fmt(k["mean_us"], 1, grouped=True)]
             for k in rows]
    return grid(title, ["kernel", "category", "calls", "total µs", "share", "mean µs"], cells, text={0, 1})


def _kernel_stats_table(rows: list[dict[str, Any]]) -> RenderableType:
    """The per-kernel statistics asked for with --stats: median, min, max and std of one call, in µs."""
    from detprof.kernels.names import signature

    cells = [[printable(signature(k["name"])), f"{k['calls']:,}", *(_fmt(k[key], 1, grouped=True) for key in
                                                             ("median_us", "min_us", "max_us", "std_us"))]
             for k in rows]
    return grid("per call (µs)", ["kernel", "calls", "median µs", "min µs", "max µs", "std µs"], cells)


def _print_kernels(title: str, rows: list[dict[str, Any]], stats: bool) -> None:
    out.print(_kernel_rows_table(title, rows))
    if any(k["nondeterministic"] for k in rows):
        out.print("* catalogued as nondeterministic (atomics)")
    if stats:
        out.print(_kernel_stats_table(rows))


def _print_trace_report(report: dict[str, Any], stats: bool = False) -> None:
    what = "GPU kernels and memory copies" if report["kind"] == "gpu" else "CPU ops (self time)"
    title = (f"{report['trace']}: top {report['top']} of {what}, {report['total_us'] / 1000:,.2f} ms in all"
             f" ({report['device'] or 'device not recorded'}, scope {report['scope']})")
    _print_kernels(title, report["kernels"], stats)
    out.print(grid("by category", ["category", "calls", "total µs", "share"],
                   [[c["category"], f"{c['calls']:,}", _fmt(c["total_us"], 1, grouped=True),
                     _fmt(100 * c["share"], 1, "%")] for c in report["categories"]]))


def _print_kernel_report(report: dict[str, Any], stats: bool = False) -> None:
    title = (f"run {report['run_id']}, mode {report['mode']}: top {report['top']} kernels "
             + (f"({report['kernel_ms_per_step']:.2f} ms of kernel time per step)" if report["kernel_ms_per_step"]
                is not None else f"({report['kernel_ms_total']:.2f} ms of kernel time in the whole trace)"))
    _print_kernels(title, report["kernels"], stats)
    if report.get("diff"):
        a, b = report["diff_modes"]
        out.print(_diff_table(f"what changed: {b} vs {a} (largest absolute change in total time first)",
                              report["diff"], a, b))


def _diff_table(title: str, rows: list[dict[str, Any]], a: str, b: str) -> RenderableType:
    """Kernels added, removed and changed, in ms; columns A and B are named in the title."""
    from detprof.kernels.names import signature

    cells = [[printable(signature(d["name"])), d["category"], d["status"], f"{d['calls_a']:,}", f"{d['calls_b']:,}",
              _fmt(d["total_us_a"] / 1000, 3, grouped=True), _fmt(d["total_us_b"] / 1000, 3, grouped=True),
              _fmt(d["delta_us"] / 1000, 3, grouped=True)] for d in rows]
    return grid(f"{title}; A = {a}, B = {b}", ["kernel", "category", "status", "calls A", "calls B", "ms A", "ms B",
                                              "Δ ms"], cells, text={0, 1, 2})


@app.command()
def diff(
    a: str = typer.Argument(..., help="Baseline: a run id (N, or N:MODE) or a trace file."),
    b: str = typer.Argument(..., help="Treatment: a run id (N, or N:MODE) or a trace file."),
    top: int = typer.Option(30, help="Rows to show, largest absolute change first."),
    scope: str = typer.Option("steps", help=SCOPE_HELP),
    db: str | None = typer.Option(None, help=DB_HELP),
    max_trace_mb: float = MAX_TRACE_MB_OPTION,
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Compare two runs or two traces: kernels added, removed and changed (calls, total, share)."""
    from detprof.views import kernel_diff

    _check_top(top)
    _check_scope(scope)
    with user_errors():
        report = kernel_diff(a, b, db, top, scope, max_trace_mb)
    emit(report, json_output, _print_diff)


def _print_diff(report: dict[str, Any]) -> None:
    counts = report["counts"]
    title = (f"{counts['added']} added, {counts['removed']} removed, {counts['changed']} in both; total "
             f"{report['total_us_a'] / 1000:,.2f} -> {report['total_us_b'] / 1000:,.2f} ms")
    out.print(_diff_table(title, report["diff"], report["a"], report["b"]))


@app.command(name="import")
def import_(
    trace: str = typer.Argument(..., help="PyTorch profiler trace (.json or .json.gz) to store as a run."),
    label: str = typer.Option("trace", help="Mode label for the stored kernels."),
    arch: str | None = typer.Option(None, help="Name to show for the network (default: the file name)."),
    scope: str = typer.Option("steps", help=SCOPE_HELP),
    db: str | None = typer.Option(None, help=DB_HELP),
    max_trace_mb: float = MAX_TRACE_MB_OPTION,
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Store any profiler trace as a run, for `kernels --run`, `diff` and the report."""
    from detprof.trace_import import import_trace

    _check_scope(scope)
    with user_errors():
        document = import_trace(trace, db, label, arch, scope, command=invoked_command(),
                                max_trace_mb=max_trace_mb)
    emit(document, json_output, _print_import)


def _print_import(document: dict[str, Any]) -> None:
    mode = document["modes"][0]
    what = "GPU time" if document["device"]["kind"] == "cuda" else "CPU op time (self)"
    out.print(f"stored {document['source_trace']} as run {document['run_id']}: {document['kernels']} kernels, "
              f"{mode['kernel_ms']:,.2f} ms of {what} on {document['device']['name']}", highlight=False)


@app.command()
def report(
    out_path: str = typer.Option("reports/detprof-report.html", "--out", help="Where to write the HTML file."),
    run: list[int] | None = typer.Option(None, help="Only these run ids (repeat the option); default: all runs."),  # noqa: B008
    framework: str | None = typer.Option(None, help="Only the runs of this framework (pytorch or tf); default: "
                                                    "both, with PyTorch and TensorFlow side by side."),
    kernels_run: int | None = typer.Option(None, "--kernels-run", help="The run whose kernels Figure 8 shows; "
                                           "default: the newest default vs deterministic run with kernels."),
    db: str | None = typer.Option(None, help=DB_HELP),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Write one offline HTML file with the paper's figures from your runs."""

    from detprof.outputs import check_writable
    from detprof.store.db import resolve_db_path

    with user_errors():
        check_writable(out_path, resolve_db_path(db))  # a bad --out is named before a missing plotly
    try:
        import plotly  # noqa: F401  (the report draws with it; a GPU machine without network may lack it)
    except ImportError:
        fail("the HTML report needs plotly, which is not installed here: pip install plotly "
             "(on a machine without network, install its wheel: pip install --no-index plotly-*.whl)")
    from detprof.report import build_report

    with user_errors():
        require(framework is None or not run, "give --run or --framework, not both")
        if framework is not None:
            with ResultStore(db) as store:
                run = store.run_ids(framework)
        result = build_report(db, out_path, run or None, kernels_run)
    warn_skipped(list(result.skipped))
    if json_output:
        print_json({"out": str(result.path), "bytes": result.bytes, "runs": result.runs, "sections": result.sections,
                    "skipped": list(result.skipped)})
        return
    drawn = ", ".join(f"{k}: {v}" for k, v in result.sections.items())
    out.print(f"wrote {result.path} ({result.bytes / 2**20:.1f} MiB, {len(result.runs)} runs; {drawn})",
              highlight=False)


@app.command()
def stability(
    task: str = typer.Option("digits", help=f"Dataset and network. Accepted: {STABILITY_TASKS}."),
    variant: str = typer.Option("algo+impl", help="Noise left in: algo+impl (none controlled), algo (deterministic "
                                                  "mode), impl (all seeds fixed), control (both), order-only."),
    runs: int = typer.Option(10, help="Models in the experiment; stored runs are kept and only the missing ones "
                                      "are trained."),
    fix: str | None = typer.Option(None, help="Hold these algorithmic sources fixed instead of the variant's "
                                              "choice: comma-separated from init, shuffle, augment, dropout, or none."),
    order_only: bool = typer.Option(False, "--order-only", help="The data-order experiment: everything fixed but "
                                                                "the shuffling order (variant order-only); combine "
                                                                "with --batch-size, up to the full training set."),
    bn: bool | None = typer.Option(None, "--bn/--no-bn", help="BatchNorm in the small CNN (default: the recipe's)."),
    epochs: int | None = typer.Option(None, help="Override the recipe's epochs."),
    batch_size: int | None = typer.Option(None, help="Override the recipe's batch size."),
    lr: float | None = typer.Option(None, help="Override the recipe's learning rate (Adam)."),
    arch: str | None = typer.Option(None, help="small-cnn, resnet18-cifar or resnet18 (default: the task's "
                                               "recipe: small-cnn for digits and cifar10, resnet18-cifar for "
                                               "cifar100, resnet18 for celeba)."),
    data_dir: str | None = typer.Option(None, help="Folder with the dataset: CIFAR's binary distribution "
                                                   "(cifar-10-batches-bin/ or cifar-100-binary/) or CelebA's "
                                                   "standard layout."),
    target: str | None = typer.Option(None, help="CelebA: the attribute to learn (default Blond_Hair, the "
                                                 "attribute of the paper's Table 3), or `all` for the 40 "
                                                 "attributes pooled."),
    gpu: str = typer.Option("auto", help="Where to train: GPU alias (v100, a100, h100, ...), index, `cpu`, or "
                                         "`auto` (first GPU, else CPU), as for overhead."),
    threads: int | None = typer.Option(None, help=f"CPU intra-op threads per run (default: {CPU_THREADS})."),
    run_timeout: float = typer.Option(3600.0, help="Seconds before a run is killed and the experiment stops there."),
    db: str | None = typer.Option(None, help=DB_HELP),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Train N models under a noise variant and measure how much they differ (churn, L2, per-class spread).

    Recipes: digits, small CNN, 40 epochs of Adam (3e-3, x0.1 at 3/4 of training), dropout 0.1 and
    ±1-pixel shifts. CIFAR follows the paper's Appendix B (200 epochs, batch 128, 4e-4 decayed x0.1
    every 50 epochs, crop and flip); Adam and the 4-pixel padding are detprof's assumptions, since
    the appendix names neither. CelebA: ResNet-18, 20 epochs, batch 128, 1e-3 decayed x0.1 every 5.
    """
    from detprof.stability import run_stability

    if order_only:
        if variant not in ("algo+impl", "order-only") or fix is not None:
            fail("--order-only sets the variant and the fixed sources itself; drop --variant and --fix")
        variant = "order-only"
    with progress_once_valid(f"{task} {variant}: epochs") as show:

        def advance(run_index: int, total_runs: int, epoch: int, total_epochs: int) -> None:
            show(f"{task} {variant}: run {run_index + 1}/{total_runs}, epoch {epoch}",
                 total=total_runs * total_epochs, completed=run_index * total_epochs + epoch)

        with user_errors():
            summary = run_stability(task, variant, runs, fix, epochs, batch_size, lr, bn, db, data_dir, advance, arch,
                                    gpu=gpu, threads=threads, run_timeout_s=run_timeout, target=target)
    emit(summary, json_output, _print_stability)
    if summary["failed"]:
        raise typer.Exit(1)


def _print_stability(s: dict[str, Any]) -> None:
    from detprof.stability.measures import format_small

    def ci(key: str, scale: float = 1.0, digits: int = 2) -> str:
        low_high = s.get(f"{key}_ci")
        return "" if not low_high else f" ({low_high[0] * scale:.{digits}f}-{low_high[1] * scale:.{digits}f})"

    target = f", target {s['target']}" if s.get("target") else ""
    pct = 100.0
    rows = [["accuracy mean", f"{s['accuracy_mean'] * pct:.2f}%{ci('accuracy_mean', pct)}"]]
    if s.get("churn") is not None:
        l2_ci = s.get("l2_ci")
        ratio = s["per_class_std_ratio_max"]
        rows += [["accuracy std (ddof=1)", f"{s['accuracy_std'] * pct:.3f} pp"],
                 ["churn (mean over pairs)", f"{s['churn'] * pct:.2f}%{ci('churn', pct)}"],
                 ["L2 of unit weights (mean over pairs)", format_small(s["l2"])
                  + (f" ({format_small(l2_ci[0])}-{format_small(l2_ci[1])})" if l2_ci else "")],
                 ["largest per-class accuracy std", f"{s['per_class_std_max'] * pct:.2f} pp"
                  + (f" ({ratio:.1f}x the overall std)" if ratio is not None else "")]]
    out.print(grid(f"{s['task']}{target}, variant {s['variant']} ({s['description']}; mode {s['mode']}) on "
                   f"{s['device']}: {s['runs']} runs, {s['test_examples']} test examples",
                   ["measure", "value (95% CI)"], rows, text={0}))
    if s.get("training_counts"):
        counts = [[row["group"], f"{row['positive']:,}", f"{row['negative']:,}",
                   "—" if row["positive_fraction"] is None else f"{100 * row['positive_fraction']:.1f}%"]
                  for row in s["training_counts"]]
        out.print(grid(f"training split, {s['target']} (paper Table 3)",
                       ["group", "positive", "negative", "positive share"], counts))
    if s.get("subgroups"):
        pooled = ", attributes pooled" if s.get("target") == "all" else ""
        groups = [[g["group"], str(g["examples"]), *(f"{100 * g[f'{m}_std']:.2f} pp ({g[f'{m}_std_ratio']:.2f}x)"
                                                      for m in ("accuracy", "fpr", "fnr"))] for g in s["subgroups"]]
        out.print(grid(f"subgroups: std over runs in pp (ratio to All){pooled}; FNR = FN/(FN+TP) (paper Table 5)",
                       ["group", "examples", "accuracy std", "FPR std", "FNR std"], groups))
    paired = s.get("paired_with")
    if paired:
        out.print(f"paired with {paired['variant']} (same seeds, the other mode), {paired['pairs']} pairs: churn "
                  f"{100 * paired['churn']:.2f}%, L2 {format_small(paired['l2'])}, bit-identical weights in "
                  f"{paired['bitwise_identical_pairs']} of {paired['pairs']}: what implementation noise alone "
                  "changed", highlight=False)
    for failure in s["failed"]:
        out.print(f"[yellow]run {failure['run']} failed[/] (exit {failure['exitcode']}): {failure['log_tail']}")


def _parse_sizes(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    require(bool(parts) and all(p.isdigit() for p in parts),
            f"--batch-sizes {text!r} is not accepted; use batch sizes as N,N,..., such as 1,8,64")
    return tuple(int(p) for p in parts)


# Options that check, audit and advise share (one definition each; typer reads them per command).
ARCH_OPTION = typer.Option(None, help="Network from `detprof zoo` (default resnet18).")
MODEL_OPTION = typer.Option(None, help=MODEL_HELP)
INPUT_SHAPE_OPTION = typer.Option(None, help=INPUT_SHAPE_HELP)
NUM_CLASSES_OPTION = typer.Option(None, help="Classes of the output layer (default: the arch's; 1000 for --model).")
GPU_OPTION = typer.Option("auto", help="GPU alias, index, `cpu`, or `auto` (first GPU, else CPU).")
KERNEL_SIZE_OPTION = typer.Option(None, help="Convolution kernel size of medium-cnn, 1 to 7.")
BN_OPTION = typer.Option(None, "--bn/--no-bn", help="BatchNorm in small-cnn.")
BATCH_SIZE_OPTION = typer.Option(None, help=f"Batch size ({_defaults('batch_size')}).")
IMAGE_SIZE_OPTION = typer.Option(None, help=f"Input side in pixels (default as for overhead: {CPU_IMAGE_SIZE} or the "
                                            "arch's minimum on CPU, the arch's own on GPU).")


@app.command()
def check(
    arch: str | None = ARCH_OPTION,
    model: str | None = MODEL_OPTION,
    input_shape: str | None = INPUT_SHAPE_OPTION,
    num_classes: int | None = NUM_CLASSES_OPTION,
    mode: str = typer.Option("deterministic", help=f"Mode of both runs. Known: {', '.join(MODES)}."),
    gpu: str = GPU_OPTION,
    threads: str | None = typer.Option(None, help="CPU intra-op threads: N for both runs, or A,B to make the runs "
                                                  f"differ in that alone (default: {CPU_THREADS} for both)."),
    devices: str | None = typer.Option(None, help="cpu,cuda: run A on the CPU, run B on the GPU."),
    steps: int = typer.Option(10, help="Training steps per run (SGD, momentum 0.9, one synthetic batch)."),
    kernel_size: int | None = KERNEL_SIZE_OPTION,
    bn: bool | None = BN_OPTION,
    batch_size: int | None = BATCH_SIZE_OPTION,
    image_size: int | None = IMAGE_SIZE_OPTION,
    seed: int = typer.Option(0, help="Seed for weights and data (the same for both runs)."),
    locate_op: bool = typer.Option(False, "--locate-op", help="When the runs differ, re-run both up to the first "
                                                              "divergent step recording every op, and name the first "
                                                              "op whose output differs while its inputs matched."),
    batch_invariance: bool = typer.Option(False, "--batch-invariance",
                                          help="Instead of training: are eval outputs for the same examples bitwise "
                                               "equal at every batch size (against batch size 1)?"),
    batch_sizes: str = typer.Option("1,8,64", help="Batch sizes for --batch-invariance, 1 to 64."),
    framework: str = typer.Option("pytorch", help="pytorch, or tf: the Keras model in TensorFlow (modes default and "
                                                  "deterministic; no --locate-op or --batch-invariance)."),
    db: str | None = typer.Option(None, help=DB_HELP + " The verdict is stored as a run (kind check)."),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Is training bitwise reproducible? Trains twice in fresh processes and compares every step.

    Exit 0 when the two runs are bitwise identical (or, with --batch-invariance, every batch size
    matches), 1 when they differ, 2 for bad input.
    """
    from detprof.check import run_batch_invariance, run_check

    with user_errors():
        shape = parse_shape(input_shape)
        if batch_invariance:
            require(devices is None and not locate_op and steps == 10,
                    "--batch-invariance compares batch sizes in one run; drop --devices, --locate-op and --steps")
            check_store_path(db)
            document = run_batch_invariance(arch, model, mode, gpu, _parse_sizes(batch_sizes), image_size, shape,
                                            num_classes, kernel_size, bn, threads, seed, framework=framework)
            document = stored_verdict("batch-invariance", document, db)
            emit(document, json_output, _print_batch_invariance)
            raise typer.Exit(0 if document["batch_invariant"] else 1)
        check_store_path(db)
        with progress_once_valid("check") as show:
            document = run_check(arch, model, mode, gpu, threads, devices, steps, batch_size, image_size, shape,
                                 num_classes, kernel_size, bn, seed, locate_op, on_progress=show,
                                 framework=framework)
    document = stored_verdict("check", document, db)
    emit(document, json_output, _print_check)
    raise typer.Exit(0 if document["bitwise_identical"] else 1)


def check_store_path(db: str | None) -> None:
    """Refuse, before anything runs, a --db that could never hold the verdict (a folder, a file
    that is not a detprof database); a missing one is created when the verdict is stored."""
    from detprof.store.db import resolve_db_path

    path = resolve_db_path(db)
    if path.exists():
        with ResultStore(path):
            pass
    elif db is not None and path.parent.exists() and not path.parent.is_dir():
        raise StoreError(f"--db {db!r} is not accepted: {str(path.parent)!r} is not a folder")


def stored_verdict(kind: str, document: dict[str, Any], db: str | None) -> dict[str, Any]:
    """The verdict document with the run id it was stored under (``run_id``). A store that cannot
    take it (locked, full) is named in one warning line and changes nothing else: the exit code
    stays the verdict's, as the check itself ran."""
    from detprof.check.record import store_verdict

    try:
        return {**document, "run_id": store_verdict(kind, document, db, invoked_command())}
    except DetprofError as error:
        err.print(f"detprof: warning: the verdict was not stored: {error}", markup=False, highlight=False,
                  soft_wrap=True)
        return {**document, "run_id": None, "store_error": str(error)}


def _print_check(d: dict[str, Any]) -> None:
    w = d["workload"]
    sides = d["runs"]
    factors = {"threads": f"threads {sides[0]['threads']} vs {sides[1]['threads']}",
               "device": f"device {sides[0]['device']} vs {sides[1]['device']}",
               "none": f"same configuration ({sides[0]['device']}, {sides[0]['threads']} thread(s))"}
    factor = factors[d["differing_factor"]]
    verdict = "[green]bitwise identical[/]" if d["bitwise_identical"] else "[red]not identical[/]"
    out.print(f"{w['arch']}, mode {d['mode']}, {d['steps']} steps x 2 fresh processes, {factor}: {verdict}",
              highlight=False)
    rows = [["bitwise identical", "yes" if d["bitwise_identical"] else "no"],
            ["max |weight difference|", f"{d['max_abs_diff']:.3g} (all parameters and buffers, last step)"]]
    div = d["first_divergence"]
    if div:
        rows += [["first divergent step", f"{div['step']} (loss {'differs' if div['loss_differs'] else 'equal'})"],
                 ["first parameter", f"{div['parameter'] or '—'} (module order; {div['parameters_differing']} "
                                     "differ at that step)"]]
        op = div.get("op")
        if op:
            where = f"{op['op']} in {op['module'] or '(no module)'}, {op['phase']}, op {op['index']} of " \
                    f"{div['ops_recorded']}"
            meaning = {"root-cause": "its output differs while its inputs matched",
                       "input-differs": "first op fed a value that differs, made outside PyTorch's ops",
                       "different-ops": f"the runs dispatched different ops here ({op.get('other_op')})",
                       "different-length": "the runs dispatched different numbers of ops"}[op["kind"]]
            rows.append(["first divergent op", f"{where}: {meaning}"])
        elif "op" in div:
            rows.append(["first divergent op", "none: every op of the step matched, so the difference comes from "
                                               "outside the dispatcher"])
    warned = sorted({op for side in sides for op in side["nondeterministic_ops"]})
    if warned:
        rows.append(["no deterministic implementation", ", ".join(warned)])
    out.print(grid("check", ["measure", "value"], rows, text={0, 1}))


def _print_batch_invariance(d: dict[str, Any]) -> None:
    verdict = "[green]batch invariant[/]" if d["batch_invariant"] else "[red]not batch invariant[/]"
    out.print(f"{d['workload']['arch']}, mode {d['mode']}, eval outputs on {d['device']}: {verdict}", highlight=False)
    rows = [[str(r["batch_size"]), f"{r['bitwise_equal']} / {r['examples']}", f"{100 * r['fraction_equal']:.1f}%",
             f"{r['max_abs_diff']:.3g}"] for r in d["rows"]]
    out.print(grid("outputs against batch size 1", ["batch size", "bitwise equal", "fraction", "max |difference|"],
                   rows))


@app.command()
def audit(
    arch: str | None = ARCH_OPTION,
    model: str | None = MODEL_OPTION,
    input_shape: str | None = INPUT_SHAPE_OPTION,
    num_classes: int | None = NUM_CLASSES_OPTION,
    gpu: str = GPU_OPTION,
    kernel_size: int | None = KERNEL_SIZE_OPTION,
    bn: bool | None = BN_OPTION,
    batch_size: int | None = BATCH_SIZE_OPTION,
    image_size: int | None = IMAGE_SIZE_OPTION,
    db: str | None = typer.Option(None, help=DB_HELP + " The findings are stored as a run (kind audit)."),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Which ops cannot train deterministically on this device, and what deterministic mode swaps.

    Exit 0 when the model can train fully deterministically, 1 when an op has no deterministic
    implementation, 2 for bad input.
    """
    from detprof.check import run_audit

    with user_errors():
        shape = parse_shape(input_shape)
        check_store_path(db)
        with progress_once_valid("audit") as show:
            document = run_audit(arch, model, gpu, batch_size, image_size, shape, num_classes, kernel_size, bn,
                                 on_progress=show)
    document = stored_verdict("audit", document, db)
    emit(document, json_output, _print_audit)
    raise typer.Exit(0 if document["fully_deterministic"] else 1)


def _print_audit(d: dict[str, Any]) -> None:
    w = d["workload"]
    verdict = ("[green]can train fully deterministically[/]" if d["fully_deterministic"]
               else f"[red]{len(d['nondeterministic_ops'])} op(s) without a deterministic implementation[/]")
    out.print(f"{w['arch']} on {d['device']}, one training step ({d['ops_in_step']:,} ops): {verdict}",
              highlight=False)
    if d["nondeterministic_ops"]:
        rows = [[printable(o["op"]), str(site["count"]), printable(site["module"]), site["phase"],
                 ", ".join(o["dispatched_as"])] for o in d["nondeterministic_ops"] for site in o["sites"]]
        out.print(grid("ops with no deterministic implementation here (one row per module and pass)",
                       ["op", "calls", "module", "pass", "dispatched as"], rows, text={0, 2, 3, 4}))
    if d["swapped_kernels"]:
        rows = [[printable(r["name"]), r["status"], str(r["calls_a"]), str(r["calls_b"]),
                 _fmt(r["total_us_a"], 1, grouped=True),
                 _fmt(r["total_us_b"], 1, grouped=True)] for r in d["swapped_kernels"]]
        out.print(grid("kernels deterministic mode adds, drops or calls differently (one profiled step each, µs)",
                       ["kernel", "status", "calls default", "calls det.", "µs default", "µs det."], rows,
                       text={0, 1}))
    elif not d["kernel_diff_available"]:
        out.print("no kernel diff: the profiled step of a mode failed", highlight=False)
    else:
        out.print("deterministic mode swaps no kernel here (the same kernels, the same call counts)", highlight=False)


@app.command()
def advise(
    arch: str | None = ARCH_OPTION,
    model: str | None = MODEL_OPTION,
    input_shape: str | None = INPUT_SHAPE_OPTION,
    num_classes: int | None = NUM_CLASSES_OPTION,
    gpu: str = GPU_OPTION,
    kernel_size: int | None = KERNEL_SIZE_OPTION,
    bn: bool | None = BN_OPTION,
    batch_size: int | None = BATCH_SIZE_OPTION,
    image_size: int | None = IMAGE_SIZE_OPTION,
    threads: int | None = typer.Option(None, help=f"CPU intra-op threads (default: {CPU_THREADS})."),
    steps: int = typer.Option(10, help="Training steps of each check (two fresh processes per candidate)."),
    max_time: float | None = typer.Option(None, help="Seconds each overhead comparison may spend (default: 120 on "
                                                     "GPU, 30 on CPU)."),
    db: str | None = typer.Option(None, help=DB_HELP),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """The cheapest configuration confirmed bitwise reproducible here, its cost, and the lines to get it.

    Checks each candidate (default, deterministic algorithms alone, deterministic with autotuning,
    without the NaN fill, and the full deterministic mode; the GPU-only ones on a GPU), measures
    those that pass against default (stored as overhead runs), and recommends the cheapest. Exit 0
    with a recommendation, 1 when no candidate was bitwise identical, 2 for bad input.
    """
    from detprof.check.advise import run_advise

    with user_errors():
        shape = parse_shape(input_shape)
        with progress_once_valid("advise") as show:  # run_advise checks every value and the database first
            document = run_advise(arch, model, gpu, shape, num_classes, batch_size, image_size, kernel_size, bn,
                                  threads, steps, max_time, db, invoked_command(), on_progress=show)
    document = stored_verdict("advise", document, db)
    emit(document, json_output, _print_advice)
    raise typer.Exit(0 if document["recommendation"] else 1)


TARGET_WORDS = {"under": "under", "over": "over", "unresolved": "not resolved against", "unknown": "unknown against"}


def _print_advice(d: dict[str, Any]) -> None:
    rows = []
    for r in d["candidates"]:
        ci = r["ratio_ci"]
        measured = r["ratio"] is not None and r["mode"] != "default"
        rows.append([r["mode"], "yes" if r["bitwise_identical"] else f"no (step {r['first_divergent_step']})",
                     _fmt(r["ratio"], 3) if r["bitwise_identical"] else "—",
                     f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else ("by definition" if r["mode"] == "default" else "—"),
                     _fmt(r["memory_ratio"], 3) if r["bitwise_identical"] else "—",
                     str(r["run_id"]) if measured else "—"])
    threads = f", {d['threads']} thread(s)" if d["threads"] else ""
    out.print(grid(f"advise: {d['workload']['arch']} on {d['device']['name']}{threads}; bitwise identical over "
                   f"{d['check_steps']} steps in two fresh processes, cost against default",
                   ["candidate", "bitwise identical", "step time ratio", "95% CI", "memory ratio", "run"], rows,
                   text={0, 1, 3}))
    best = d["recommendation"]
    if best is None:
        out.print("[red]no candidate was bitwise identical here[/]: run `detprof audit` with the same options to find "
                  "the ops to blame", highlight=False)
        return
    target = TARGET_WORDS[best["megatron_target"]]
    cost = "nothing: default training was already bitwise identical here" if best["mode"] == "default" else \
        f"x{best['ratio']:.3f} step time" + (f" (95% CI {best['ratio_ci'][0]:.3f}-{best['ratio_ci'][1]:.3f})"
                                            if best["ratio_ci"] else "")
    out.print(f"[bold]recommended: {best['mode']}[/], cost {cost}; {target} Megatron-LM's target of under 10% "
              "step overhead", highlight=False)
    full = d["full_deterministic"]
    if full and full["mode"] != best["mode"] and full["ratio"] is not None:
        out.print(f"the full deterministic mode costs x{full['ratio']:.3f} here", highlight=False)
    switched = d.get("cheapest_with_switches")
    if switched:
        out.print(f"default passed this check, but PyTorch promises nothing for it; the cheapest candidate with "
                  f"determinism switched on is {switched['mode']} (x{switched['ratio']:.3f}), set as follows:",
                  highlight=False)
        best = switched
    settings = best["settings"]
    if settings["environment"]:
        out.print("in the shell, before the process starts CUDA:\n  " + "\n  ".join(settings["environment"]),
                  highlight=False, markup=False, soft_wrap=True)
    out.print("in the training script, after `import torch`:\n  " + "\n  ".join(settings["python"]),
              highlight=False, markup=False, soft_wrap=True)


CLUSTER_HELP = ("Run each job as a Ray task instead of here: `ray` (the cluster at $RAY_ADDRESS, or a new local "
                "Ray) or ray://HOST:PORT. GPU jobs land on nodes with the spec's GPU type, one job per GPU.")


@app.command()
def sweep(
    spec: str = typer.Argument(..., help="Sweep spec (TOML), e.g. benchmarks/figure9b.toml."),
    gpus: str | None = typer.Option(None, help="GPU types to run instead of the spec's, e.g. h200 or v100,a100 (or "
                                               "cpu): the same spec on the GPUs at hand."),
    cluster: str | None = typer.Option(None, help=CLUSTER_HELP),
    rerun_failed: bool = typer.Option(False, "--rerun-failed", help="Run the jobs recorded as failed again (a resume "
                                                                     "otherwise keeps them)."),
    status: bool = typer.Option(False, "--status", help="Show what is stored of the spec; run nothing."),
    probe: bool = typer.Option(False, "--probe", help="With --cluster: one task per GPU type, placed as its jobs "
                                                      "would be, shows the node and the GPU it got; runs no job."),
    yes: bool = typer.Option(False, "--yes", help="Start a large plan (more than 2,000 worker processes or 5 "
                                                   "million training steps) without asking."),
    db: str | None = typer.Option(None, help=DB_HELP),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Many overhead measurements from one spec (archs x kernel sizes x modes x GPUs), resumable:
    running it again skips what is stored. Exit 1 when a job is left failed."""
    from detprof.sweep import load_spec, plan_sweep, run_sweep, sweep_status, with_gpus
    from detprof.sweep.plan import LARGE_PLAN, plan_size
    from detprof.sweep.run import prepare_backend

    with user_errors():
        loaded = load_spec(spec)
        if gpus is not None:
            loaded = with_gpus(loaded, gpus)
        jobs = plan_sweep(loaded)
        require(not probe or cluster is not None, "--probe checks placement on a Ray cluster; add --cluster ray")
        if probe:
            from detprof.sweep.ray_cluster import probe_placement

            emit({"probes": probe_placement(loaded, str(cluster))}, json_output, _print_probes)
            return
        if status:
            emit(sweep_status(loaded, db), json_output, _print_sweep)
            return
        size = plan_size(jobs)
        if size.large and not yes:
            asked = not json_output and sys.stdin.isatty() and err.is_terminal
            if not asked or not typer.confirm(f"sweep {loaded.name} plans {size.sentence()}. Start it?",
                                              default=False, err=True):
                fail(f"sweep {loaded.name} plans {size.sentence()}, more than {LARGE_PLAN['processes']:,} processes "
                     f"or {LARGE_PLAN['training_steps']:,} training steps; check the spec, or add --yes to start it")
        prepare_backend(loaded, cluster)  # fails in seconds when the cluster lacks a GPU type
        ResultStore(db, create=True).close()
    if not json_output:
        where = "here" if cluster is None else f"on Ray ({cluster})"
        out.print(f"sweep {loaded.name}: {size.sentence()} {where}; stored jobs are skipped", highlight=False)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[counts]}"),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err,
                  transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task(loaded.name, total=len(jobs), counts="")

        def show(state: Any) -> None:
            current = state.running[0] if len(state.running) == 1 else f"{len(state.running)} running"
            progress.update(task, completed=state.done + state.failed, total=max(state.total, 1),
                            description=current if state.running else loaded.name,
                            counts=f"done {state.done} · failed {state.failed} · left {state.left}")

        with user_errors():
            document = run_sweep(loaded, db=db, cluster=cluster, rerun_failed=rerun_failed, on_progress=show,
                                 command=invoked_command())
    emit(document, json_output, _print_sweep)
    failed = document["counts"]["failed"]
    if failed:
        err.print(f"detprof: {failed} job(s) failed; `detprof sweep {spec} --rerun-failed` runs them again",
                  highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1)


def _print_sweep(d: dict[str, Any]) -> None:
    rows = []
    for j in d["jobs"]:
        ci = j["ratio_ci"]
        where = j["device_name"] or j["gpu"]
        state = j["status"] + (" now" if j["ran"] and j["status"] == "done" else "")
        rows.append([j["arch"] + (f" k{j['kernel_size']}" if j["kernel_size"] is not None else ""),
                     where, f"{j['modes'][1]}/{j['modes'][0]}", state, _fmt(j["ratio"], 3),
                     "—" if not ci else f"{ci[0]:.3f}-{ci[1]:.3f}",
                     _kernel_cell(j["kernel_ratio"], j.get("kernel_times_reliable")),
                     "—" if j["run_id"] is None else str(j["run_id"])])
    c = d["counts"]
    out.print(grid(f"sweep {d['sweep']} ({d['cluster']}): {c['done']} done, {c['failed']} failed, "
                   f"{c['left'] + c['running']} left; {c['ran_now']} run now",
                   ["job", "device", "ratio of", "status", "ratio", "95% CI", "kernel ratio", "run"], rows,
                   text={0, 1, 2, 3}))
    for j in d["jobs"]:
        if j["status"] == "failed":
            out.print(f"failed: {j['label']}: {j['error']}", highlight=False, markup=False, soft_wrap=True)


def _print_probes(d: dict[str, Any]) -> None:
    rows = [[p["gpu"], p["node"], str(p["cuda_visible_devices"] or "—"), ", ".join(p["gpus_seen"]) or "none",
             {True: "yes", False: "NO", None: "unknown (no NVML there)"}[p["ok"]]] for p in d["probes"]]
    out.print(grid("placement probe: where each GPU type's jobs land", ["GPU type", "node", "CUDA_VISIBLE_DEVICES",
                   "GPUs the task sees", "matches"], rows, text={0, 1, 2, 3, 4}))


db_app = typer.Typer(help="Move results between stores: merge another machine's database, export runs.",
                     no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("merge")
def db_merge(
    other: str = typer.Argument(..., help="Another detprof results database (.sqlite), e.g. from another GPU box."),
    db: str | None = typer.Option(None, help=DB_HELP),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Bring another store's runs (with jobs, steps, kernels and traces), sweep jobs and stability
    runs into this one, skipping what is already here: merging twice changes nothing."""
    from detprof.store.transfer import merge_store

    with user_errors():
        counts = merge_store(db, other)

    def show(c: dict[str, Any]) -> None:
        skipped = f", {c['stability_skipped']} not merged (files elsewhere)" if c["stability_skipped"] else ""
        out.print(f"merged {other}: {c['runs_added']} runs added, {c['runs_present']} already here; sweep jobs "
                  f"{c['sweep_jobs_added']} added, {c['sweep_jobs_completed']} completed; stability runs "
                  f"{c['stability_added']} added, {c['stability_present']} already here{skipped}; "
                  f"{c['files_copied']} files copied", highlight=False, soft_wrap=True, markup=False)
        for sentence in c["dropped"]:
            out.print(f"not copied: {printable(sentence)}", highlight=False, soft_wrap=True, markup=False)

    emit(counts, json_output, show)


@db_app.command("export")
def db_export(
    format: str = typer.Option("csv", "--format", help="csv (one row per run) or json (full configuration, "
                                                        "environment and summary of each run)."),
    output: str | None = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    db: str | None = typer.Option(None, help=DB_HELP),
    json_output: bool = typer.Option(False, "--json", help="The same as --format json."),
) -> None:
    """Every stored overhead run as CSV or JSON, for analysis elsewhere."""
    from pathlib import Path

    from detprof.outputs import OutputError, check_writable
    from detprof.store.db import resolve_db_path
    from detprof.store.transfer import export_runs

    with user_errors():
        if output is not None:
            check_writable(output, resolve_db_path(db), "--output", "runs.csv")
        skipped: list[str] = []
        text = export_runs(db, "json" if json_output else format, skipped)
        warn_skipped(skipped)
        if output:
            try:
                Path(output).write_text(text)
            except OSError as error:
                raise OutputError(f"--output {output!r} cannot be written: {error.strerror or error}") from None
    if output:
        err.print(f"wrote {output}", highlight=False)
    else:
        sys.stdout.write(text)


def warn_skipped(sentences: list[str]) -> None:
    """One stderr line per stored row or file a reader left out, so that one bad row is named and
    the rest is still shown."""
    for sentence in sentences:
        err.print(f"detprof: warning: left out {sentence}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def runs(
    db: str | None = typer.Option(None, help=DB_HELP),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List stored runs, newest first."""
    with user_errors(), ResultStore(db) as store:
        frame = store.list_runs()
        skipped = store.damaged
    warn_skipped(skipped)
    if json_output:
        print_json({"runs": frame.to_dict(orient="records"), "skipped": skipped})
        return
    if frame.empty:
        out.print("no runs yet" if not skipped else "no readable runs")
        return
    rows = [[str(r.run_id), r.created_at[5:16].replace("T", " "),
             r.arch + ("" if r.kernel_size is None or r.kernel_size != r.kernel_size else f" k{int(r.kernel_size)}"),
             r.device, (f"{r.kind}: {r.verdict}" if r.verdict else r.modes) + (" (partial)" if r.partial else ""),
             _fmt(r.ratio, 3),
             "—" if not r.ratio_ci else f"{r.ratio_ci[0]:.3f}-{r.ratio_ci[1]:.3f}",
             _kernel_cell(r.kernel_ratio, r.kernel_times_reliable)]
            for r in frame.itertuples(index=False)]
    out.print(grid("runs (created: month-day, UTC; --json has the full time)",
                   ["id", "created", "arch", "device", "modes", "ratio", "95% CI", "kernel ratio"], rows,
                   text={2, 3, 4}))


@app.command()
def gpus(json_output: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """List the GPUs NVML sees (name, driver, memory, clocks, temperature)."""
    devices = list_gpus()
    if json_output:
        print_json({"gpus": [g.as_dict() for g in devices]})
        return
    if not devices:
        out.print("no NVIDIA GPU found (NVML unavailable or no devices); measurements run on the CPU")
        return
    rows = [[str(g.index), g.name, g.uuid or "—", g.driver or "—", _bytes(g.memory_total_bytes),
             _fmt(g.sm_clock_max_mhz, 0, " MHz"), _fmt(g.temperature_c, 0, " °C"), str(g.cuda_cores or "—")]
            for g in devices]
    out.print(grid("GPUs (index: as --gpu and cuda:N number them here)", ["index", "name", "UUID", "driver", "memory",
                   "max SM clock", "temperature", "CUDA cores"], rows, text={1, 2, 3}))


@app.command()
def zoo(json_output: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """List every architecture with its framework, parameter count and default input shape."""
    from detprof.zoo import describe_zoo

    rows = describe_zoo()
    if json_output:
        print_json(rows)
        return
    torch_rows = [r for r in rows if r["framework"] == "pytorch"]
    notes = [(r["arch"], r["notes"]) for r in torch_rows if r["notes"]]
    cells = [[str(r["arch"]) + (f" [{[a for a, _ in notes].index(r['arch']) + 1}]" if r["notes"] else ""),
              f"{r['params']:,}", "x".join(map(str, r["input"])), str(r["num_classes"]), " ".join(r["options"])]  # type: ignore[call-overload, arg-type]
             for r in torch_rows]
    out.print(grid("model zoo (PyTorch)", ["arch", "params", "input (C,H,W)", "classes", "options"], cells,
                   text={0, 4}))
    for number, (arch, note) in enumerate(notes, start=1):
        out.print(f"[{number}] {arch}: {note}", highlight=False, markup=False)
    keras_rows = [r for r in rows if r["framework"] == "tensorflow"]
    keras_notes = sorted({str(r["notes"]) for r in keras_rows if r["notes"]})
    cells = [[str(r["arch"]) + (f" ({chr(97 + keras_notes.index(str(r['notes'])))})" if r["notes"] else ""),
              f"{r['params']:,}", f"{r['trainable_params']:,}", "x".join(map(str, r["input"])),  # type: ignore[call-overload, arg-type]
              str(r["keras"])] for r in keras_rows]
    out.print(grid("model zoo (TensorFlow, --framework tf; Keras' own counts)",
                   ["arch", "params", "trainable", "input (C,H,W)", "Keras model"], cells, text={0, 4}))
    for number, note in enumerate(keras_notes):
        out.print(f"({chr(97 + number)}) {note}", highlight=False, markup=False)


if __name__ == "__main__":
    app()
