"""Settings read from the environment ($DETPROF_...): checked where they are read, so that a bad
value is named in one line instead of being replaced by a default without a word."""

from __future__ import annotations

import math
import os

from detprof.errors import DetprofError


def seconds_from_env(name: str, default: float, error: type[DetprofError], allow_zero: bool = False) -> float:
    """Seconds from the environment variable ``name`` (``default`` when it is unset); raises
    ``error`` in one line for a value that is not a finite number > 0 (>= 0 with ``allow_zero``)."""
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and (value >= 0 if allow_zero else value > 0)):
        bound = ">= 0" if allow_zero else "> 0"
        raise error(f"${name}={text!r} is not accepted; use seconds {bound}, such as {default:g}")
    return value
