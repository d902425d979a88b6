"""Where a store is, and the files beside it that belong to it (paths recorded relative to its folder)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = Path(".detprof") / "results.sqlite"
DB_ENV_VAR = "DETPROF_DB"


# Folders beside a database that belong to it: files there travel with the store (merge copies them).
STORE_FOLDERS = ("stability", "traces")


def store_relative(store_dir: Path, path: str | os.PathLike[str]) -> str:
    """``path`` as the store records it: relative to the store's folder (POSIX separators) when it
    lies inside it, so that a moved, returned or merged store still finds it; else unchanged."""
    try:
        return Path(path).resolve().relative_to(store_dir.resolve()).as_posix()
    except ValueError:
        return str(path)


def stored_file(store_dir: Path, stored: str) -> Path:
    """The file a recorded path names for a store in ``store_dir``: a relative path is taken from
    the store's folder; one written by detprof before paths were relative to the store (absolute,
    or relative to where detprof ran) that is not found so is looked for at its part from
    ``stability/`` or ``traces/`` on, beside the store."""
    path = Path(stored)
    if not path.is_absolute():
        if (store_dir / path).exists() or not set(STORE_FOLDERS) & set(path.parts[1:]):
            return store_dir / path
    elif path.exists():
        return path
    parts = path.parts
    for folder in STORE_FOLDERS:
        if folder in parts:
            start = len(parts) - 1 - parts[::-1].index(folder)
            candidate = store_dir.joinpath(*parts[start:])
            if candidate.exists():
                return candidate
    return path


def resolve_db_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``path`` if given, else $DETPROF_DB, else ./.detprof/results.sqlite."""
    return Path(path or os.environ.get(DB_ENV_VAR) or DEFAULT_DB)
