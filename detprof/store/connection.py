"""An open results database (SQLite, stdlib): the connection, the schema check that creates or
upgrades it, and its transactions. The database runs in WAL mode, so that readers never block a
writer and two writers (two sweeps) take turns: each waits for the other's transaction
(``busy_timeout_s``)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from detprof.parse import is_whole_number
from detprof.store.errors import (
    StoreError,
    StoreFullError,
    StoreLockedError,
    busy_timeout_s,
    is_full,
    is_locked,
    sqlite_code,
    without_room,
)
from detprof.store.paths import resolve_db_path
from detprof.store.schema import ADDED_COLUMNS, INDEXES, SCHEMA, SCHEMA_VERSION, content_uid, statements


class StoreConnection:
    """One open results database: its schema checked (created or upgraded under the write lock),
    its transactions, and the damaged rows readers skipped (``damaged``). ResultStore adds the
    writes, the reads and the sweep queue on top."""

    def __init__(self, path: str | os.PathLike[str] | None = None, create: bool = False,
                 shown_as: str | None = None) -> None:
        self.path = resolve_db_path(path)
        # How messages name the database: the user's file, also when this is a private copy of it.
        self.shown = shown_as or str(self.path)
        self.damaged: list[str] = []  # rows the readers skipped, one sentence each (see list_runs)
        if not create and not self.path.exists():
            raise StoreError(f"no results database at {self.shown!r} (no runs yet); "
                             "run `detprof overhead` first or pass --db PATH")
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"--db {self.shown!r} is not a file; expected an SQLite database path")
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.busy_timeout_s = busy_timeout_s()
            self.connection = sqlite3.connect(self.path, timeout=self.busy_timeout_s)
            self.connection.execute("PRAGMA foreign_keys = ON")
            self._check_schema(create)
            self.connection.execute("PRAGMA journal_mode = WAL")
        except (sqlite3.DatabaseError, OSError) as error:
            if is_locked(error):
                raise self._locked() from None
            if is_full(error) or (sqlite_code(error) == sqlite3.SQLITE_IOERR and without_room(self.path.parent)):
                raise StoreFullError(f"the disk holding the results database {self.shown!r} is full ({error}); "
                                     "free space and run again", None) from None
            raise StoreError(f"cannot use {self.shown!r} as a detprof results database: {error}") from None

    def _locked(self, kept: Path | None = None) -> StoreLockedError:
        where = (f"; the measurement is kept in {str(kept)!r} and will be stored by the next detprof command "
                 "that writes to this database" if kept else "; try again when it is free")
        return StoreLockedError(f"the results database {self.shown!r} stayed locked by another process for "
                                f"{self.busy_timeout_s:g} s{where}", kept)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tables(self) -> set[str]:
        return {row[0] for row in self.connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def _version(self) -> int:
        """The schema version the database records (0 when it records none); StoreError for a value
        that is not a whole number, which no detprof writes."""
        row = self.connection.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            return 0
        value = row[0]
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and is_whole_number(value):
            return int(value)
        raise StoreError(f"{self.shown!r} records schema_version {value!r}, not a whole number: it is damaged or "
                         "was not written by detprof")

    def _check_schema(self, create: bool) -> None:
        tables = self._tables()
        if "meta" not in tables:
            if tables:
                raise StoreError(f"{self.shown!r} is an SQLite database but not a detprof one")
            if not create:
                raise StoreError(f"{self.shown!r} holds no detprof results yet (no runs yet)")
        elif self._version() > SCHEMA_VERSION:
            raise StoreError(f"{self.shown!r} has schema version {self._version()}; this detprof reads up to "
                             f"{SCHEMA_VERSION}: upgrade detprof")
        elif self._version() == SCHEMA_VERSION:
            return
        # Create or upgrade under the write lock, looking again once it is held: two processes that
        # open a new database at the same moment must not both create it.
        with self.immediate_transaction() as db:
            tables = self._tables()
            if "meta" not in tables:
                if tables:
                    raise StoreError(f"{self.shown!r} is an SQLite database but not a detprof one")
                for statement in statements(SCHEMA + INDEXES):
                    db.execute(statement)
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                return
            if self._version() >= SCHEMA_VERSION:
                return
            for statement in statements(SCHEMA):  # tables added since: created where missing
                db.execute(statement)
            for table, column, kind in ADDED_COLUMNS:
                present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            rows = db.execute("SELECT id, created_at, command, config_json, summary_json FROM runs WHERE uid IS NULL")
            for run_id, *content in rows.fetchall():
                db.execute("UPDATE runs SET uid=? WHERE id=?", (content_uid(*content), run_id))
            for statement in statements(INDEXES):
                db.execute(statement)
            db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self.connection.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing: an exception (or a kill) inside leaves the database as it was."""
        with self.connection:
            yield self.connection

    @contextmanager
    def immediate_transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock at its start, so that what it reads stays
        true until it commits (a check-then-write of two sweeps cannot interleave)."""
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield self.connection
        except BaseException:
            self.connection.rollback()
            raise
        self.connection.commit()

    def _note_damage(self, sentence: str) -> None:
        if sentence not in self.damaged:
            self.damaged.append(sentence)
