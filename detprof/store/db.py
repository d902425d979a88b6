"""The results store: SQLite (stdlib), one transaction per run, schema versioned.

Tables: ``runs`` (one overhead measurement: config, environment, summary, and a ``uid`` that
stays with it when stores are merged), ``jobs`` (one worker process each), ``steps`` (every timed
step, ms), ``kernels`` (per-kernel aggregates per mode, µs, over the profiled pass of
``profile_steps`` steps), ``stability_runs``, and ``sweep_jobs`` (one row per sweep job
configuration: running, done with its run, or failed with its reason).

The database runs in WAL mode, so that readers never block a writer and two writers (two sweeps)
take turns: each waits for the other's transaction (``busy_timeout_s``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from detprof.shapes import require_shape
from detprof.store.errors import (
    DamagedRowError,
    StoreError,
    StoreFullError,
    is_full,
    is_locked,
)
from detprof.store.paths import store_relative
from detprof.store.pending import PENDING_DIR, PendingRun, pending_document
from detprof.store.reads import StoreReads
from detprof.store.schema import (
    JobRecord,
    RunRecord,
    StabilityRecord,
    check_run_records,
    insert_run,
)
from detprof.store.sweep_queue import SweepQueue

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")


class ResultStore(SweepQueue, StoreReads):
    """Access to one results database. Opening for reading never creates the file.

    Use it as a context manager (``with ResultStore(path) as store: ...``) to have it closed. A
    database that another process keeps locked is waited for (``busy_timeout_s``), then reported
    as StoreLockedError. Writes are here; reads (detprof.store.reads), the sweep queue
    (detprof.store.sweep_queue) and the connection (detprof.store.connection) are its bases."""

    def save_run(self, run: RunRecord, jobs: list[JobRecord], kernels: dict[str, pd.DataFrame],
                 sweep_job: str | None = None, keep_if_locked: bool = True) -> int | None:
        """Store one run, its jobs (each with ``step_ms``) and kernel tables in one transaction; returns its id.

        With ``sweep_job`` (a job key), the sweep job is marked done with this run in the same
        transaction; if another sweep stored that job first, nothing is stored and None is returned.
        When the database stays locked, the run is kept as a file under ``pending/`` beside the
        database (stored by the next ``store_pending``) and StoreLockedError says where; with
        ``keep_if_locked`` off, StoreLockedError is raised and nothing is kept."""
        check_run_records(run, jobs)  # before anything is written or kept as a pending file
        return self._write_or_keep(lambda: self._save_run(run, jobs, kernels, sweep_job),
                                   (lambda: self._keep_pending(run, jobs, kernels, sweep_job)) if keep_if_locked
                                   else None)

    def _write_or_keep(self, write: Callable[[], T], keep_pending: Callable[[], Path | None] | None) -> T:
        """``write()``; when it cannot happen, a database that stayed locked becomes StoreLockedError
        and a full disk StoreFullError, each after the write was kept as a pending file by
        ``keep_pending`` when there is one (and room for it)."""
        try:
            return write()
        except (sqlite3.DatabaseError, OSError) as error:
            if is_locked(error):
                raise self._locked(keep_pending() if keep_pending else None) from None
            if not is_full(error):
                raise
            kept = keep_pending() if keep_pending else None
            raise self._full(error, kept) from None

    def _full(self, error: BaseException, kept: Path | None) -> StoreFullError:
        cause = getattr(error, "strerror", None) or str(error)
        if kept is None:
            where = "; the measurement could not be kept as a file either: free space and measure again"
        elif kept.parent == self.path.parent / PENDING_DIR:
            where = (f"; the measurement is kept in {str(kept)!r} and will be stored by the next detprof command "
                     "that writes to this database once there is room")
        else:
            where = (f"; the measurement is kept in {str(kept)!r}: once there is room, move it into "
                     f"{str(self.path.parent / PENDING_DIR)!r} and the next detprof command that writes to this "
                     "database stores it")
        return StoreFullError(f"the disk holding the results database {self.shown!r} is full ({cause}){where}", kept)

    def _keep_pending(self, run: RunRecord, jobs: list[JobRecord],
                      kernels: dict[str, pd.DataFrame], sweep_job: str | None = None,
                      replaces: int | None = None) -> Path | None:
        """Write the run as a pending file: under ``pending/`` beside the database, or, when that
        disk is full, in the temporary folder (usually another disk). Returns the file, or None
        when neither had room."""
        import tempfile

        document = json.dumps({"run": run, "jobs": jobs, "sweep_job": sweep_job, "replaces": replaces,
                               "kernels": {mode: table.to_dict(orient="records") for mode, table in kernels.items()}})
        name = f"run-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        for folder in (self.path.parent / PENDING_DIR, Path(tempfile.gettempdir()) / "detprof-pending"):
            path = folder / name
            partial = path.with_suffix(".partial")
            try:
                folder.mkdir(parents=True, exist_ok=True)
                partial.write_text(document)
                partial.replace(path)  # a kill mid-write never leaves a file that looks complete
                return path
            except OSError:
                with contextlib.suppress(OSError):  # no folder to hold it, or nothing was written
                    partial.unlink(missing_ok=True)
        return None

    def replace_run(self, run_id: int, run: RunRecord, jobs: list[JobRecord],
                    kernels: dict[str, pd.DataFrame], keep_if_locked: bool = True) -> None:
        """Replace a stored run's content (its jobs, steps and kernel rows too) in one transaction,
        keeping its id and uid: how a measurement in progress keeps what it has measured so far.
        A database that stays locked is handled as in ``save_run`` (the pending file replaces the
        run when it is stored)."""
        check_run_records(run, jobs)
        self._write_or_keep(lambda: self._replace_run(run_id, run, jobs, kernels),
                            (lambda: self._keep_pending(run, jobs, kernels, replaces=run_id)) if keep_if_locked
                            else None)

    def _with_relative_traces(self, jobs: list[JobRecord]) -> list[JobRecord]:
        """``jobs`` with their trace paths relative to the store's folder (store_relative): a store
        moved or merged elsewhere still finds them."""
        return [{**job, "trace_path": store_relative(self.path.parent, trace)} if (trace := job["trace_path"])
                else job for job in jobs]

    def _replace_run(self, run_id: int, run: RunRecord, jobs: list[JobRecord],
                     kernels: dict[str, pd.DataFrame]) -> None:
        jobs = self._with_relative_traces(jobs)
        with self.immediate_transaction() as db:
            uid = db.execute("SELECT uid FROM runs WHERE id=?", (run_id,)).fetchone()
            if uid is None:
                raise StoreError(f"no run with id {run_id} to replace")
            for table in ("steps", "jobs", "kernels"):
                db.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
            db.execute("DELETE FROM runs WHERE id=?", (run_id,))
            inserted = insert_run(db, {**run, "uid": uid[0]}, jobs, kernels, run_id=run_id)
            assert inserted == run_id

    def _store_pending_document(self, document: PendingRun) -> int | None:
        """Store one pending run (replacing the run it was kept for, when that is still stored)."""
        import pandas as pd

        kernels = {mode: pd.DataFrame(rows) for mode, rows in document["kernels"].items()}
        replaces = document["replaces"]
        if replaces is not None and self.connection.execute(
                "SELECT 1 FROM runs WHERE id=?", (replaces,)).fetchone() is not None:
            self._replace_run(int(replaces), document["run"], document["jobs"], kernels)
            return int(replaces)
        return self._save_run(document["run"], document["jobs"], kernels, document["sweep_job"])

    def store_pending(self) -> list[int]:
        """Store the runs kept under ``pending/`` while the database was locked; returns their new ids."""

        stored = []
        for path in sorted((self.path.parent / PENDING_DIR).glob("run-*.json")):
            try:
                document = pending_document(path)
            except DamagedRowError as damage:  # set aside, so that it blocks no later write
                path.replace(path.with_suffix(".rejected"))
                self._note_damage(f"{damage}; set aside as {str(path.with_suffix('.rejected'))!r}")
                continue
            # Locked or full: the pending file stays where it is, for the next try, and the error says so.
            run_id = self._write_or_keep(partial(self._store_pending_document, document), partial(Path, path))
            if run_id is not None:
                stored.append(run_id)
            path.unlink()
        return stored

    def _save_run(self, run: RunRecord, jobs: list[JobRecord], kernels: dict[str, pd.DataFrame],
                  sweep_job: str | None = None) -> int | None:
        jobs = self._with_relative_traces(jobs)
        with self.immediate_transaction() as db:
            if sweep_job is not None:
                row = db.execute("SELECT status FROM sweep_jobs WHERE job_key=?", (sweep_job,)).fetchone()
                if row is not None and row[0] == "done":
                    return None  # another sweep stored this job first: exactly once
            run_id = insert_run(db, run, jobs, kernels)
            if sweep_job is not None:
                db.execute("UPDATE sweep_jobs SET status='done', run_id=?, error=NULL, owner=NULL, updated_at=?"
                           " WHERE job_key=?", (run_id, run["created_at"], sweep_job))
        return run_id

    def save_stability_run(self, row: StabilityRecord) -> None:
        """Store one finished stability run (its predictions and weights are files beside the database,
        recorded relative to its folder). ShapeError when ``row`` is not a StabilityRecord."""
        require_shape(row, StabilityRecord, "the stability run to store")
        row = {**row, "predictions_path": store_relative(self.path.parent, row["predictions_path"]),
               "weights_path": store_relative(self.path.parent, row["weights_path"])}
        self._write_or_keep(lambda: self._save_stability_run(row), None)

    def _save_stability_run(self, row: StabilityRecord) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO stability_runs (experiment, task, variant, mode, fixed_json, recipe_json, run_index,"
                " seeds_json, accuracy, created_at, predictions_path, weights_path, environment_json)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (row["experiment"], row["task"], row["variant"], row["mode"], json.dumps(row["fixed"]),
                 json.dumps(row["recipe"]), row["run_index"], json.dumps(row["seeds"]), row["accuracy"],
                 row["created_at"], row["predictions_path"], row["weights_path"], json.dumps(row["environment"])))


# What the API functions accept for their results database: a path, None (the default), or an open store.
StoreLike = str | os.PathLike | ResultStore | None


@contextmanager
def open_store(db: StoreLike, create: bool = False) -> Iterator[ResultStore]:
    """The store ``db`` names, opened for the block and closed after it: a path (None for the
    default, $DETPROF_DB or ./.detprof/results.sqlite), or an open ResultStore, which is used as
    it is and left open. Every API function that reads or writes results takes either."""
    if isinstance(db, ResultStore):
        yield db
        return
    with ResultStore(db, create=create) as store:
        yield store
