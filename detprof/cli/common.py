"""What every command shares: help texts, options declared once (the workload's twelve, --db,
--json, --gpu), the parsing of a few values, the one-line error path, and emitting a document."""

from __future__ import annotations

import functools
import inspect
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer

from detprof.cli.app import OneLineErrors, report_error
from detprof.errors import DetprofError, require
from detprof.parse import whole_number
from detprof.render import render
from detprof.render.console import print_json
from detprof.runner.config import CPU_DEFAULTS, CPU_THREADS, GPU_DEFAULTS
from detprof.workload import WorkloadRequest
from detprof.workload.resolve import CPU_IMAGE_SIZE, CPU_SEQUENCE_LENGTH

# Only detprof's own errors are user mistakes; anything else is a bug and keeps its traceback.
USER_ERRORS = (DetprofError,)
JSON_HELP = "Print one JSON document on stdout instead of tables."
DB_HELP = "Results database (default: $DETPROF_DB or ./.detprof/results.sqlite)."
MODEL_HELP = ("Your own model instead of --arch: MODULE:FUNCTION, where MODULE is importable or a path to a .py file "
              "and FUNCTION(num_classes) returns an nn.Module. This runs your code.")
WORKLOAD_HELP = ("Your own training step instead of --arch: MODULE:FUNCTION, where FUNCTION(batch_size, device) "
                 "returns (model, make_batch, loss_fn), (model, make_batch) for a model that returns its own loss, "
                 "or detprof.workload.UserWorkload; see docs/workloads.md. This runs your code.")
FRAMEWORK_HELP = ("pytorch, or tf: the Keras model of --arch in TensorFlow's default and op-deterministic modes, "
                  "each job a new interpreter (needs pip install 'detprof[tf]').")
SCOPE_HELP = ("Which GPU events of a trace count: `steps` (launched within the profiled steps, as Holistic "
              "Trace Analysis counts them) or `all`.")


def defaults_of(key: str) -> str:
    """How a protocol default reads in a help text: its GPU and CPU values."""
    return f"default: {GPU_DEFAULTS[key]:g} on GPU, {CPU_DEFAULTS[key]:g} on CPU"


JSON_OPTION = typer.Option(False, "--json", help=JSON_HELP)
DB_OPTION = typer.Option(None, help=DB_HELP)
GPU_OPTION = typer.Option("auto", help="GPU alias (v100, a100, h100, ...), index, `cpu`, or `auto` (first GPU, "
                                       "else CPU).")
THREADS_HELP = f"CPU intra-op threads per job (default: {CPU_THREADS})."

# The workload options of overhead, check, audit and advise, declared once (see workload_options).
WORKLOAD_PARAMETERS = [
    inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=option, annotation=annotation)
    for name, annotation, option in [
        ("arch", str | None, typer.Option(None, help="Network from `detprof zoo` (default resnet18; e.g. vgg19, "
                                                     "resnet50, medium-cnn).")),
        ("model", str | None, typer.Option(None, help=MODEL_HELP)),
        ("workload", str | None, typer.Option(None, help=WORKLOAD_HELP)),
        ("input_shape", str | None, typer.Option(None, help="Input shape C,H,W of one example for --model (default "
                                                            "3 x the image size).")),
        ("num_classes", int | None, typer.Option(None, help="Classes of the output layer, the vocabulary for a "
                                                            "language model (default: the arch's; 1000 for --model).")),
        ("kernel_size", int | None, typer.Option(None, help="Convolution kernel size of medium-cnn, 1 to 7 (default "
                                                            "3); other networks have none to choose.")),
        ("bn", bool | None, typer.Option(None, "--bn/--no-bn", help="BatchNorm in small-cnn (the only network where "
                                                                    "it is optional).")),
        ("batch_size", int | None, typer.Option(None, help=f"Batch size ({defaults_of('batch_size')}).")),
        ("image_size", int | None, typer.Option(None, help=f"Input side in pixels (default: the arch's own on GPU, "
                                                           f"{CPU_IMAGE_SIZE} or the arch's minimum on CPU).")),
        ("sdpa_backend", str | None, typer.Option(None, help="Attention backend SDPA may use: auto, math, flash, "
                                                             "efficient or cudnn (default auto: PyTorch's choice; "
                                                             "the one that ran is recorded).")),
        ("compile", bool, typer.Option(False, "--compile", help="Train through torch.compile (Inductor): forward "
                                                               "and backward compiled, the deterministic modes "
                                                               "with Inductor's deterministic switch.")),
        ("seq_len", int | None, typer.Option(None, help=f"Tokens per example for the language models (default: the "
                                                        f"arch's own on GPU, {CPU_SEQUENCE_LENGTH} on CPU).")),
    ]
]
WORKLOAD_NAMES = [parameter.name for parameter in WORKLOAD_PARAMETERS]


def fail(message: str) -> NoReturn:
    """Report a user mistake in one line on stderr and exit 2."""
    report_error(message)
    raise typer.Exit(2)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn detprof's own errors (user mistakes) into the one-line exit 2; anything else is a bug."""
    try:
        yield
    except USER_ERRORS as error:
        fail(str(error))


def parse_shape(text: str | None) -> tuple[int, int, int] | None:
    """``"3,224,224"`` as (3, 224, 224); raises ArgumentError naming the value otherwise."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    require(len(parts) == 3 and all((whole_number(p) or 0) > 0 for p in parts),
            f"--input-shape {text!r} is not accepted; use C,H,W with positive integers, such as 3,224,224")
    return (int(parts[0]), int(parts[1]), int(parts[2]))


def workload_request(arch: str | None, model: str | None, input_shape: str | None, num_classes: int | None,
                     kernel_size: int | None, bn: bool | None, batch_size: int | None,
                     image_size: int | None, seq_len: int | None = None,
                     sdpa_backend: str | None = None, workload: str | None = None,
                     compile: bool = False) -> WorkloadRequest:
    """The WorkloadRequest of the workload options as typed (ArgumentError for a bad --input-shape)."""
    return WorkloadRequest(arch=arch, model=model, batch_size=batch_size, image_size=image_size,
                           input_shape=parse_shape(input_shape), num_classes=num_classes, kernel_size=kernel_size,
                           batch_norm=bn, sequence_length=seq_len, sdpa_backend=sdpa_backend, workload=workload,
                           compiled=compile or None)


def workload_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the workload options, and call it with them as one ``request``
    (a WorkloadRequest) instead: declared once, they read alike in every command that trains."""
    signature = inspect.signature(command)
    own = [p for p in signature.parameters.values() if p.name != "request"]

    @functools.wraps(command)
    def with_request(**values: Any) -> None:
        typed = {name: values.pop(name) for name in WORKLOAD_NAMES}
        with user_errors():
            request = workload_request(**typed)
        command(request=request, **values)

    with_request.__signature__ = signature.replace(parameters=[*WORKLOAD_PARAMETERS, *own])  # type: ignore[attr-defined]
    return with_request


def gate_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` one option per check gate (detprof.check.gates.GATES, as text), and call it
    with them as one ``gates``: the given ones parsed into typed pairs by gate name."""
    from detprof.check.gates import GATES

    signature = inspect.signature(command)
    own = [p for p in signature.parameters.values() if p.name != "gates"]
    names = {gate.option[2:].replace("-", "_"): gate.option for gate in GATES}
    parameters = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=str | None,
                                    default=typer.Option(None, gate.option,
                                                         help=gate.help.format(cpu_threads=CPU_THREADS)))
                  for name, gate in zip(names, GATES, strict=True)]

    @functools.wraps(command)
    def with_gates(**values: Any) -> None:
        from detprof.check.gates import parse_gates

        texts = {option: values.pop(name) for name, option in names.items()}
        with user_errors():
            gates = parse_gates(texts)
        command(gates=gates, **values)

    with_gates.__signature__ = signature.replace(parameters=[*own, *parameters])  # type: ignore[attr-defined]
    return with_gates


def invoked_command() -> str:
    """The command line as the user typed it, recorded with what it stores."""
    return shlex.join(["detprof", *OneLineErrors.invocation])


def emit(kind: str, document: Any, json_output: bool, **options: Any) -> None:
    """Print ``document`` as JSON, or for people with the renderer of ``kind`` (detprof.render)."""
    if json_output:
        print_json(document)
    else:
        render(kind, document, **options)

