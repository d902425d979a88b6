"""The ``detprof`` program: its command group, which turns every usage error into one line (and a
JSON document under --json), handles SIGTERM as Ctrl-C, and says what a stop kept."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import typer
from typer.core import TyperGroup

from detprof.cli.errors import (
    INTERRUPTED,
    TERMINATED,
    ClickException,
    Terminated,
    UsageError,
    empty_value,
    interrupted_line,
    on_sigterm,
    stop_chain,
    usage_message,
)
from detprof.render.console import error_line, json_error, print_json, print_text, status_line


def wants_json() -> bool:
    """True when the command being run was given --json (its one document goes to stdout)."""
    return "--json" in OneLineErrors.invocation


def report_error(message: str, exit_code: int = 2) -> None:
    """An error in one line on stderr, and under --json as a document on stdout too."""
    error_line(message)
    if wants_json():
        json_error(message, exit_code)


def _report_stop(result: int, chain: list[BaseException]) -> None:
    from detprof.overhead import MeasurementInterrupted

    invoked = [word for word in OneLineErrors.invocation if not word.startswith("-")]
    line = interrupted_line(chain, invoked[0] if invoked else None)
    status_line(line)
    partial = next((e for e in chain if isinstance(e, MeasurementInterrupted) and e.document), None)
    if partial is not None and wants_json():  # the one document: the partial run that was kept
        print_json({**(partial.document or {}), "interrupted": line.removeprefix("detprof: ")})
    elif wants_json():
        json_error(line.removeprefix("detprof: "), result)


# How --help lists the commands: in the order a user meets them (the modules register them in
# another order).
COMMAND_ORDER = ("overhead", "kernels", "diff", "import", "report", "stability", "check", "audit", "advise", "record",
                 "compare", "infer", "sweep", "db", "runs", "gpus", "zoo")


class OneLineErrors(TyperGroup):
    """Every usage error in one line, in the same form as detprof's own errors (the parser's default
    is a four-line block without the bad value), and a line on Ctrl-C."""

    def list_commands(self, ctx: Any) -> list[str]:
        known = [name for name in COMMAND_ORDER if name in self.commands]
        return known + sorted(set(self.commands) - set(known))

    invocation: list[str] = []  # the arguments of the command being run, for invoked_command()
    stop_chain: list[BaseException] = []  # what stopped the command, when Ctrl-C or SIGTERM did

    def invoke(self, ctx: Any) -> Any:
        # The parser turns Ctrl-C into an exit status and drops the exception: note what it was first.
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as error:
            OneLineErrors.stop_chain = stop_chain(error)
            raise

    def main(self, args: Any = None, prog_name: str | None = None,  # type: ignore[override]  # click's own
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:  # is overloaded
        OneLineErrors.invocation = [str(a) for a in (sys.argv[1:] if args is None else args)]
        empty = empty_value(OneLineErrors.invocation)
        if empty:  # '' never means anything: refused before the parser can take it for "the default"
            report_error(empty)
            sys.exit(2)
        # SIGTERM stops detprof as Ctrl-C does (unless whoever started it chose to ignore it).
        previous = signal.getsignal(signal.SIGTERM)
        handle_term = previous == signal.SIG_DFL and threading.current_thread() is threading.main_thread()
        if handle_term:
            signal.signal(signal.SIGTERM, on_sigterm)
        OneLineErrors.stop_chain = []
        try:
            result = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False,
                                  **extra)
        except typer.Abort:
            result = INTERRUPTED
        except KeyboardInterrupt as error:  # raised outside the parser's own handling
            OneLineErrors.stop_chain = stop_chain(error)
            result = INTERRUPTED
        except UsageError as error:
            message = usage_message(error)
            if "no such command" in message:
                group = getattr(getattr(error, "ctx", None), "command", None)
                message += f" Commands: {', '.join(sorted(getattr(group, 'commands', None) or self.commands))}."
            report_error(message)
            sys.exit(2)
        except ClickException as error:
            report_error(" ".join(error.format_message().split()), error.exit_code)
            sys.exit(error.exit_code)
        finally:
            if handle_term:
                signal.signal(signal.SIGTERM, previous)
        chain = OneLineErrors.stop_chain
        if result == INTERRUPTED and any(isinstance(e, Terminated) for e in chain):
            result = TERMINATED
        if result in (INTERRUPTED, TERMINATED):  # Ctrl-C (the parser turns it into this status) or SIGTERM
            _report_stop(result, chain)
        sys.exit(result if isinstance(result, int) and not isinstance(result, bool) else 0)


app = typer.Typer(cls=OneLineErrors, add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Measure what deterministic training costs: step time, kernel time and memory, "
                       "default vs deterministic mode, per network and GPU.")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            shown = version("detprof")
        except PackageNotFoundError:  # run from a source tree that was never installed
            shown = "(not installed: run from a source tree)"
        print_text(f"detprof {shown}\n")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="Print detprof's version and exit.")) -> None:
    """Measure what deterministic training costs: step time, kernel time and memory, default vs
    deterministic mode, per network and GPU."""
