"""Progress displays of long commands, on stderr and gone when done; off when stderr is not a
terminal (a pipe, a CI log), where a bar only left a blank line before the one line of an error.
rich.progress is imported when a bar is made, not at start-up, so that quick commands do not pay."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from detprof.render.console import err


def progress_bar() -> Any:
    """A bar with a description, a count and the time elapsed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True, disable=not err.is_terminal)


def counts_bar() -> Any:
    """A bar with a description, a ``counts`` field, the time elapsed and the time left (a sweep's)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[counts]}"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err,
                    transient=True, disable=not err.is_terminal)


# Off a terminal (a pipe, a CI log) progress is a plain line on stderr for each new stage, at most
# one per this many seconds, so that a long command is not silent there and a short one stays quiet.
PIPED_LINE_INTERVAL_S = 5.0


class PipedProgress:
    """Progress as plain stderr lines, for where a bar cannot draw: "advise [3/7] 41 s: check ...".
    A new stage (the text before its first colon changed: "run B", "check deterministic") is shown
    at once, since it may be the long one (a compile); updates within a stage ("pair 3", "epoch
    7") when their text changed and PIPED_LINE_INTERVAL_S have passed since the last line."""

    def __init__(self, name: str) -> None:
        self.name, self.clock = name, time.monotonic
        self.started = self.clock()
        self.last_text: str | None = None
        self.last_at: float | None = None

    def __call__(self, text: str, total: float | None = None, completed: float | None = None) -> None:
        now = self.clock()
        text = text.removeprefix(f"{self.name}: ")  # "audit: 3 steps" under the name "audit" says it once
        new_stage = self.last_text is None or text.split(":")[0] != self.last_text.split(":")[0]
        if text == self.last_text or (not new_stage and self.last_at is not None
                                      and now - self.last_at < PIPED_LINE_INTERVAL_S):
            return
        count = f" [{completed:g}/{total:g}]" if total and completed is not None else ""
        err.print(f"{self.name}{count} {now - self.started:.0f} s: {text}", highlight=False, markup=False,
                  soft_wrap=True)
        self.last_text, self.last_at = text, now


@contextmanager
def progress_once_valid(description: str) -> Iterator[Callable[..., None]]:
    """A progress bar that appears only when the work starts: the API calls the ``show(text, **fields)``
    this yields once every value has been checked, so a bad value is reported alone, never after
    a bar (on a terminal, too). Off a terminal each new stage is a plain line (PipedProgress);
    ``total`` and ``completed`` among the fields give the count of stages."""
    bar = progress_bar()
    task: list[Any] = []
    piped = None if err.is_terminal else PipedProgress(description)

    def show(text: str | None = None, **fields: Any) -> None:
        if piped is not None:
            piped(text or description, fields.get("total"), fields.get("completed"))
            return
        if not task:
            bar.start()
            task.append(bar.add_task(description, total=None))
        bar.update(task[0], description=text or description, **fields)

    try:
        yield show
    finally:
        if task:
            bar.stop()


def can_ask() -> bool:
    """Whether a question can be put to a person (stderr is a terminal)."""
    return bool(err.is_terminal)


def ask(question: str) -> bool:
    """Put a yes/no question to the person at the terminal (on stderr); False unless they say yes."""
    import typer

    return bool(typer.confirm(question, default=False, err=True))
