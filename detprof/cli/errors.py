"""What the command line says when it stops early: a parser error as one line naming the bad value
and what is accepted, an empty argument, and Ctrl-C or SIGTERM with what was kept."""

from __future__ import annotations

from typing import Any

import typer

INTERRUPTED = 130  # the shell's exit status for Ctrl-C (128 + SIGINT)
TERMINATED = 143  # and for SIGTERM (128 + 15), which `timeout` and schedulers send
# The parser's exception classes: typer re-exports BadParameter and Abort only, and carries its own
# copy of click since 0.2x, so the others are found among BadParameter's bases.
UsageError: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
ClickException: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
# What a value must look like, by the parser's validation error type.
EXPECTED_TYPES = {"int_parsing": "an integer", "int_from_float": "a whole number", "float_parsing": "a number",
                  "bool_parsing": "true or false"}


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the job in progress stops and what is finished stays stored."""


def on_sigterm(signum: int, frame: Any) -> None:
    """The SIGTERM handler while a command runs."""
    raise Terminated()


def stop_chain(error: BaseException) -> list[BaseException]:
    """The exceptions behind an abort, outermost first (the parser wraps Ctrl-C in its own)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


# What a command keeps when it is stopped, by command: it is said in the one line that reports the stop.
KEPT_WHEN_STOPPED = {
    "sweep": "the job in progress was stopped and is not stored; finished sweep jobs stay stored; run the same "
             "command again to resume the sweep",
    "stability": "the run in progress was stopped and is not stored; finished runs stay stored; run the same "
                 "command again with a larger --runs to go on",
    "overhead": "the job in progress was stopped; nothing of this run had finished, so nothing is stored",
}
VERDICT_STOPPED = "stopped before its verdict: its runs were ended and nothing was stored"


def interrupted_line(chain: list[BaseException], command: str | None = None) -> str:
    """What detprof says when Ctrl-C or SIGTERM stopped ``command``: which signal, and what was kept."""
    from detprof.overhead import MeasurementInterrupted

    how = "terminated (SIGTERM)" if any(isinstance(e, Terminated) for e in chain) else "interrupted"
    partial = next((e for e in chain if isinstance(e, MeasurementInterrupted)), None)
    if partial is not None:
        return (f"detprof: {how}: the job in progress was stopped; the {partial.pairs} finished pairs are stored as "
                f"run {partial.run_id}, marked partial (`detprof runs`); finished sweep jobs stay stored")
    if command in ("check", "audit", "advise"):
        return f"detprof: {how}: the {command} {VERDICT_STOPPED}"
    kept = KEPT_WHEN_STOPPED.get(command or "", "nothing that was in progress was stored")
    return f"detprof: {how}: {kept}"


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
