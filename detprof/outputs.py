"""Where a command writes its output (``report --out``): checked before any work, and without
importing what the work needs (plotly, which a GPU machine may lack), so that a bad path is named
first."""

from __future__ import annotations

import os
from pathlib import Path

from detprof.errors import DetprofError


class OutputError(DetprofError):
    """The output cannot be written where it was asked to go."""


# SQLite's companions of a database file: writing over any of them destroys stored results.
STORE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def _same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` are one file: the same path once resolved, or, for two existing
    files, the same device and inode (a hard link to the store is the store)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist: then they are not one file
        return False


def check_writable(given: str | Path, store: Path | None = None, option: str = "--out",
                   example: str = "report.html") -> None:
    """Raise OutputError unless ``path`` can be written as a file (checked before any work, by
    opening it for appending: a file that did not exist is removed again), and unless it is the
    results database ``store`` or one of its SQLite files, which the output would overwrite."""
    if not str(given).strip():  # Path("") would be "." and write beside it
        raise OutputError(f"{option} {str(given)!r} is not accepted; give a file path")
    path = Path(given)
    if store is not None:
        for suffix in STORE_SUFFIXES:
            if _same_file(path, Path(str(store) + suffix)):
                raise OutputError(f"{option} {str(path)!r} is not accepted: it is the results database "
                                  f"{str(store)!r}{' (its ' + suffix[1:] + ' file)' if suffix else ''}, which writing "
                                  "there would destroy; choose another file")
    if path.is_dir():
        raise OutputError(f"{option} {str(path)!r} is a directory; give a file path such as "
                          f"{str(path / example)!r}")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{option} {str(path)!r}: cannot create its folder ({error.strerror or error})") from None
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{option} {str(path)!r}: the folder {str(folder)!r} is not writable; choose another "
                          f"{option}")
    existed = path.exists()
    try:
        with path.open("ab"):
            pass
    except OSError as error:
        raise OutputError(f"{option} {str(path)!r} cannot be written: {error.strerror or error}") from None
    if not existed:
        path.unlink(missing_ok=True)
