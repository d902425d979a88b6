"""Where detprof's human output goes: standard output and error as rich consoles that never wrap a
name off a terminal, JSON documents on stdout, and the one-line errors and warnings on stderr."""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

from rich.console import Console, ConsoleDimensions

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


# No highlighting: rich would otherwise set numbers, parentheses and paths in a sentence in bold or
# colour wherever a print forgot to turn it off ("10" and "(" in a warning, as a newcomer saw).
out = PipeAwareConsole(highlight=False)
err = PipeAwareConsole(stderr=True, highlight=False)


def shown(text: str) -> str:
    """Text safe to show as it is: control and bidirectional formatting characters (U+202E would
    reverse what follows it on screen; ESC starts a terminal's own codes) as ``\\uXXXX``."""
    import unicodedata

    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf") else c for c in str(text))


def printable(text: str) -> str:
    """A name from a trace or a model, safe to print in a terminal table: control and bidirectional
    formatting characters (U+202E would reverse what follows it on screen) shown as ``\\uXXXX``,
    and rich's markup brackets escaped, so that ``[/x]`` in a kernel name is text, not a style."""
    from rich.markup import escape

    return escape(shown(text))


def clean_json(value: Any) -> Any:
    """JSON-safe: NaN/inf become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {k: clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_json(document: Any) -> None:
    """One JSON document on stdout (indented; NaN and inf as null)."""
    sys.stdout.write(json.dumps(clean_json(document), indent=2) + "\n")


def print_text(text: str) -> None:
    """Text as it is (CSV, exported JSON) on stdout."""
    sys.stdout.write(text)


def json_error(message: str, exit_code: int) -> None:
    """An error as a document on stdout, for --json: {"error": {"message", "exit_code"}}."""
    from detprof.documents import DOCUMENT_VERSION

    document = {"document_version": DOCUMENT_VERSION, "error": {"message": message, "exit_code": exit_code}}
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def error_line(message: str) -> None:
    """``detprof: error: MESSAGE`` as one line on stderr (never wrapped, no markup)."""
    err.print(f"detprof: error: {message}", highlight=False, markup=False, soft_wrap=True)


def warning_line(message: str) -> None:
    """``detprof: warning: MESSAGE`` as one line on stderr."""
    err.print(f"detprof: warning: {message}", markup=False, highlight=False, soft_wrap=True)


def status_line(message: str) -> None:
    """A line of what detprof is doing or did, on stderr (stdout stays the result's), as given."""
    err.print(message, highlight=False, markup=False, soft_wrap=True)
