"""Where a command writes its output (``report --out``): checked before any work, and without
importing what the work needs (plotly, which a GPU machine may lack), so that a bad path is named
first."""

from __future__ import annotations

import os
from pathlib import Path

from detprof.errors import DetprofError


class OutputError(DetprofError):
    """The output cannot be written where it was asked to go."""


def check_writable(path: Path) -> None:
    """Raise OutputError unless ``path`` can be written as a file (checked before any work, by
    opening it for appending: a file that did not exist is removed again)."""
    if path.is_dir():
        raise OutputError(f"--out {str(path)!r} is a directory; give a file path such as {str(path / 'report.html')!r}")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"--out {str(path)!r}: cannot create its folder ({error.strerror or error})") from None
    if not os.access(folder, os.W_OK):
        raise OutputError(f"--out {str(path)!r}: the folder {str(folder)!r} is not writable; choose another --out")
    existed = path.exists()
    try:
        with path.open("ab"):
            pass
    except OSError as error:
        raise OutputError(f"--out {str(path)!r} cannot be written: {error.strerror or error}") from None
    if not existed:
        path.unlink(missing_ok=True)
