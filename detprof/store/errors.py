"""The store's errors, and how a failed write is told apart: a database another process keeps
locked, or a disk without room, by SQLite's result codes and the file system's errno."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from detprof.errors import DetprofError


class StoreError(DetprofError):
    """The store cannot be used: unreadable, not a detprof database, newer schema, or no such run."""


class DamagedRowError(StoreError):
    """A stored row whose content cannot be read (text that is not the JSON object it should be)."""


class StoreLockedError(StoreError):
    """Another process held the database locked for longer than detprof waits. ``kept`` is where
    the measurement was kept as a pending file (None when nothing was kept)."""

    def __init__(self, message: str, kept: Path | None = None) -> None:
        super().__init__(message)
        self.kept = kept


BUSY_TIMEOUT_ENV_VAR = "DETPROF_DB_BUSY_TIMEOUT"
DEFAULT_BUSY_TIMEOUT_S = 120.0  # another writer's transaction is waited for this long before giving up


def busy_timeout_s() -> float:
    """Seconds to wait for a database another process has locked ($DETPROF_DB_BUSY_TIMEOUT or 120);
    StoreError for a value that is not a finite number of seconds >= 0."""
    from detprof.settings import seconds_from_env

    return seconds_from_env(BUSY_TIMEOUT_ENV_VAR, DEFAULT_BUSY_TIMEOUT_S, StoreError, allow_zero=True)


def sqlite_code(error: BaseException) -> int | None:
    """SQLite's primary result code of ``error`` (the extended code's low byte); None for another error."""
    code = getattr(error, "sqlite_errorcode", None) if isinstance(error, sqlite3.Error) else None
    return None if code is None else code & 0xFF


def is_locked(error: BaseException) -> bool:
    """Another connection holds the lock: SQLITE_BUSY (its busy timeout ran out) or SQLITE_LOCKED."""
    return sqlite_code(error) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def is_full(error: BaseException) -> bool:
    """A write that failed for want of space: SQLite's SQLITE_FULL ("database or disk is full"),
    or ENOSPC / EDQUOT from the file system (a quota counts as full)."""
    import errno

    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    return sqlite_code(error) == sqlite3.SQLITE_FULL


def without_room(folder: Path) -> bool:
    """Whether the disk holding ``folder`` has less than 64 KiB left (False when it cannot be asked).
    Opening a WAL database creates two files beside it, and on a full disk SQLite reports that
    as a plain "disk I/O error", which this tells apart from a failing disk."""
    try:
        status = os.statvfs(folder if folder.exists() else folder.parent)
    except OSError:
        return False
    return status.f_bavail * status.f_frsize < 64 * 1024


class StoreFullError(StoreError):
    """The disk that holds the store had no room for a write. ``kept`` is where the measurement
    was kept as a pending file instead (None when there was no room for that either)."""

    def __init__(self, message: str, kept: Path | None) -> None:
        super().__init__(message)
        self.kept = kept
