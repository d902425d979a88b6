"""Table and number formatting shared by every renderer: one table layout whose numbers are never
cut, and one way to write a missing value, a size in MiB, a ratio and a duration."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from detprof.render.console import PIPE_WIDTH, out, shown

LAST_TEXT_COLUMN = 90  # characters


def grid(title: str, headers: list[str], rows: list[list[str]], text: set[int] | None = None,
         console: Console = out) -> RenderableType:
    """A table whose numbers are never cut: numeric columns (all but ``text``) keep their widest value
    on one line, and text columns wrap (fold) rather than end in an ellipsis. Off a terminal (the
    ``console`` it will be printed to is as wide as PIPE_WIDTH) the title is its own line above the
    table, as rich would wrap it to the table's width."""
    text = {0} if text is None else text
    off_terminal = console.width >= PIPE_WIDTH
    # Light rules and no outer padding: two characters between columns instead of three, so that
    # the tables fit 80 columns without rich having to cut anything.
    table = Table(title=None if off_terminal else title, box=box.SIMPLE_HEAD, pad_edge=False,
                  show_edge=False, collapse_padding=True)
    for index, header in enumerate(headers):
        if index in text:  # wraps, but never below the width of its header's longest word (or 12)
            # Off a terminal, a last text column (a sentence, mostly) wraps at LAST_TEXT_COLUMN: rich pads
            # every row to its widest cell, and one long sentence would widen every line of a CI log.
            last = off_terminal and index == len(headers) - 1
            table.add_column(header, overflow="fold", min_width=min(12, max(len(word) for word in header.split())),
                             max_width=LAST_TEXT_COLUMN if last else None)
        else:  # a header wider than the numbers goes on one line per word, as the numbers never wrap
            longest_value = max([len(row[index]) for row in rows] + [0])
            widest = max(longest_value, max(len(word) for word in header.split()))
            label = "\n".join(header.split()) if len(header) > longest_value else header
            table.add_column(label, justify="right", no_wrap=True, min_width=widest)
    for row in rows:
        # Every cell is text, never markup: a name holding "[/]" (a module, a workload, a merged store's
        # arch) is shown as it is, and control characters as \uXXXX (render.console.printable).
        table.add_row(*(Text(shown(cell)) if isinstance(cell, str) else cell for cell in row))
    if off_terminal:
        return Group(Text(title), table)
    return table


def fmt(value: float | None, digits: int = 2, suffix: str = "", grouped: bool = False) -> str:
    """A number with ``digits`` decimals (thousands separated when ``grouped``), or — when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:{',' if grouped else ''}.{digits}f}{suffix}"


def mib(value: int | None) -> str:
    """Bytes as MiB for people, or — when missing."""
    if value is None:
        return "—"
    return f"{value / 2**20:,.0f} MiB"


def interval(ci: Sequence[float | None] | None, missing: str = "—") -> str:
    """A 95% CI as ``low-high`` (three decimals), or ``missing`` when there is none."""
    if not ci or ci[0] is None or ci[1] is None:
        return missing
    return f"{ci[0]:.3f}-{ci[1]:.3f}"


def kernel_cell(ratio: float | None, reliable: bool | None) -> str:
    """A kernel-time ratio in a table: not stated when the run's kernel times are unreliable."""
    if ratio is None or ratio != ratio:
        return "—"
    return "unreliable" if reliable is False else f"{ratio:.3f}"


def duration(seconds: float) -> str:
    """A projected time for a person: seconds, minutes or hours, whichever reads best."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def bitwise(mode: Mapping[str, Any]) -> str:
    """How the repeats' parameter fingerprints compared, e.g. "identical (5)" or "3 distinct of 5"."""
    distinct, runs = mode.get("distinct_state_hashes") or 0, mode["repeats_ok"]
    if runs < 2 or not distinct:
        return "—"
    return f"identical ({runs})" if distinct == 1 else f"{distinct} distinct of {runs}"
