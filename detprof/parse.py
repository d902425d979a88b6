"""The one way a whole number is read from text a user typed: ASCII digits only.

``str.isdigit()`` also accepts digits such as ``²`` or ``٣`` that ``int()`` then rejects or reads
otherwise; every option that takes a count, an index or a size reads it here instead."""

from __future__ import annotations

import re

_WHOLE = re.compile(r"[0-9]+")


def whole_number(text: str) -> int | None:
    """``text`` (surrounding spaces allowed) as a non-negative int when it is ASCII digits alone, else None."""
    stripped = text.strip()
    return int(stripped) if _WHOLE.fullmatch(stripped) else None


def is_whole_number(text: str) -> bool:
    """True when ``whole_number`` reads ``text``."""
    return whole_number(text) is not None
