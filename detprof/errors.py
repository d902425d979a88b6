"""The one base class of detprof's own errors.

A ``DetprofError`` is something the user can act on: a value detprof does not accept, a file it
cannot use, a machine that lacks what was asked for. The command line reports it in one line and
exits 2. Any other exception is a bug, and keeps its traceback.
"""

from __future__ import annotations


class DetprofError(Exception):
    """A user mistake or an unusable input, described in one sentence that names the bad value and
    what is accepted."""


class ArgumentError(DetprofError, ValueError):
    """A value given on the command line or to an API function that detprof does not accept."""


def require(condition: bool, message: str) -> None:
    """Raise ArgumentError(message) unless ``condition`` holds."""
    if not condition:
        raise ArgumentError(message)
