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
from typing import TYPE_CHECKING, Any, TypeVar

from detprof.parse import is_whole_number
from detprof.shapes import require_shape
from detprof.store.errors import (
    DamagedRowError,
    StoreError,
    StoreFullError,
    StoreLockedError,
    busy_timeout_s,
    is_full,
    is_locked,
    sqlite_code,
    without_room,
)
from detprof.store.paths import resolve_db_path, store_relative, stored_file
from detprof.store.pending import PENDING_DIR, PendingRun, decode_document, pending_document
from detprof.store.schema import (
    ADDED_COLUMNS,
    INDEXES,
    LIST_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    JobRecord,
    RunRecord,
    StabilityRecord,
    check_run_records,
    content_uid,
    insert_run,
    statements,
)

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")

class ResultStore:
    """Access to one results database. Opening for reading never creates the file.

    Use it as a context manager (``with ResultStore(path) as store: ...``) to have it closed. A
    database that another process keeps locked is waited for (``busy_timeout_s``), then reported
    as StoreLockedError."""

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

    def __enter__(self) -> ResultStore:
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

    # -- writing ---------------------------------------------------------------------------------

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

    # -- sweep jobs ------------------------------------------------------------------------------

    def claim_sweep_job(self, job_key: str, sweep: str, label: str, config: dict[str, Any], owner: str,
                        retry_failed: bool, owner_alive: Callable[[str], bool], now: str) -> str:
        """Take a sweep job for ``owner`` unless it needs no run; returns what was found: ``claimed``,
        ``done``, ``failed`` (kept: ``retry_failed`` is off) or ``running`` (a live sweep has it).
        A job left ``running`` by a sweep that is gone (``owner_alive`` false) is claimed again."""
        with self.immediate_transaction() as db:
            row = db.execute("SELECT status, owner FROM sweep_jobs WHERE job_key=?", (job_key,)).fetchone()
            if row is not None:
                status, holder = row
                if status == "done":
                    return "done"
                if status == "failed" and not retry_failed:
                    return "failed"
                if status == "running" and holder != owner and holder and owner_alive(holder):
                    return "running"
                db.execute("UPDATE sweep_jobs SET status='running', owner=?, attempts=attempts+1, updated_at=?,"
                           " sweep=?, label=? WHERE job_key=?", (owner, now, sweep, label, job_key))
            else:
                db.execute("INSERT INTO sweep_jobs (job_key, sweep, label, config_json, status, attempts, owner,"
                           " updated_at) VALUES (?,?,?,?,'running',1,?,?)",
                           (job_key, sweep, label, json.dumps(config, sort_keys=True), owner, now))
        return "claimed"

    def fail_sweep_job(self, job_key: str, error: str, node: str | None, now: str) -> None:
        """Record a sweep job as failed with its reason (one line); a job already done stays done."""
        with self.immediate_transaction() as db:
            db.execute("UPDATE sweep_jobs SET status='failed', error=?, node=?, owner=NULL, updated_at=?"
                       " WHERE job_key=? AND status!='done'", (error, node, now, job_key))

    def set_sweep_job_node(self, job_key: str, node: str) -> None:
        """Note where a sweep job ran (host name, or the Ray node)."""
        with self.transaction() as db:
            db.execute("UPDATE sweep_jobs SET node=? WHERE job_key=?", (node, job_key))

    def sweep_job_status(self, job_key: str) -> str | None:
        """The status of one sweep job (running, done, failed), or None when it is not recorded."""
        row = self.connection.execute("SELECT status FROM sweep_jobs WHERE job_key=?", (job_key,)).fetchone()
        return None if row is None else str(row[0])

    def run_kind(self, run_id: int) -> str:
        """What a stored run is: overhead, trace, or a check, audit, advise or batch-invariance
        verdict; StoreError for an id with no run."""
        row = self.connection.execute("SELECT kind FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run with id {run_id} in {self.shown!r}")
        return str(row[0])

    def sweep_jobs(self, sweep: str | None = None) -> pd.DataFrame:
        """Sweep jobs (of one sweep, or all): job_key, sweep, label, status, run_id, error, attempts,
        owner (``host:pid`` of the sweep running it), node, updated_at, config (dict)."""
        import pandas as pd

        query = ("SELECT job_key, sweep, label, status, run_id, error, attempts, owner, node, updated_at, config_json"
                 " FROM sweep_jobs" + (" WHERE sweep=?" if sweep else "") + " ORDER BY rowid")
        frame = pd.read_sql_query(query, self.connection, params=(sweep,) if sweep else ())
        frame["config"] = [json.loads(c) for c in frame.pop("config_json")]
        return frame

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

    # -- reading ---------------------------------------------------------------------------------

    def stability_experiments(self) -> list[dict[str, Any]]:
        """One entry per stability experiment: experiment key, task, variant, mode, fixed, recipe, runs."""
        rows = self.connection.execute(
            "SELECT experiment, task, variant, mode, fixed_json, recipe_json, COUNT(*), MIN(predictions_path)"
            " FROM stability_runs GROUP BY experiment ORDER BY MIN(id)").fetchall()
        here = self.path.parent
        return [{"experiment": r[0], "task": r[1], "variant": r[2], "mode": r[3], "fixed": json.loads(r[4]),
                 "recipe": json.loads(r[5]), "runs": r[6], "directory": str(stored_file(here, r[7]).parent.parent)}
                for r in rows]

    def stability_runs(self, experiment: str) -> list[dict[str, Any]]:
        """Stored runs of one stability experiment, by run index; the file paths are resolved against
        this store's folder (absolute)."""
        rows = self.connection.execute(
            "SELECT run_index, seeds_json, accuracy, predictions_path, weights_path, environment_json"
            " FROM stability_runs WHERE experiment=? ORDER BY run_index", (experiment,)).fetchall()
        here = self.path.parent
        return [{"run_index": r[0], "seeds": json.loads(r[1]), "accuracy": r[2],
                 "predictions_path": str(stored_file(here, r[3])), "weights_path": str(stored_file(here, r[4])),
                 "environment": json.loads(r[5])} for r in rows]

    def _note_damage(self, sentence: str) -> None:
        if sentence not in self.damaged:
            self.damaged.append(sentence)

    def _decoded(self, run_id: int, **columns: Any) -> list[dict[str, Any]] | None:
        """The run's JSON object columns (named as keyword arguments, in order) decoded; None when
        one of them is damaged, which is then named in ``damaged``."""
        try:
            return [decode_document(text, f"run {run_id}'s {column}") for column, text in columns.items()]
        except DamagedRowError as damage:
            self._note_damage(str(damage))
            return None

    def run_documents(self) -> list[dict[str, Any]]:
        """Every readable run as a document (run_id, uid, created_at, kind, command, config,
        environment, summary), oldest first; a damaged run is left out and named in ``damaged``."""
        rows = self.connection.execute(
            "SELECT id, uid, created_at, kind, command, config_json, environment_json, summary_json FROM runs"
            " ORDER BY id").fetchall()
        documents = []
        for run_id, uid, created, kind, command, config_json, environment_json, summary_json in rows:
            decoded = self._decoded(run_id, config_json=config_json, environment_json=environment_json,
                                    summary_json=summary_json)
            if decoded is None:
                continue
            config, environment, summary = decoded
            documents.append({"run_id": run_id, "uid": uid, "created_at": created, "kind": kind, "command": command,
                              "config": config, "environment": environment, "summary": summary})
        return documents

    def list_runs(self) -> pd.DataFrame:
        """All runs, newest first; a run whose stored documents cannot be read is left out and named
        in ``damaged`` (so that one bad row does not hide the others).

        Columns: run_id, uid, created_at, kind, arch, kernel_size (archs that take one), batch_size,
        image_size, device, modes, ratio, ratio_ci, kernel_ratio, kernel_times_reliable (False:
        coverage outside 90-110%; None: not judged), partial (stopped early), sweep (its name, for
        runs a sweep stored), verdict (of a check, audit or advise run, in words) and config (the
        run's full stored configuration, a dict)."""
        import pandas as pd

        from detprof.zoo import kernel_size_of

        rows = self.connection.execute(
            "SELECT id, uid, created_at, kind, arch, device_kind, device_name, modes, config_json, summary_json"
            " FROM runs ORDER BY id DESC"
        ).fetchall()
        records = []
        for run_id, uid, created, kind, arch, device_kind, device_name, modes, config_json, summary_json in rows:
            decoded = self._decoded(run_id, summary_json=summary_json, config_json=config_json)
            if decoded is None:
                continue
            summary, config = decoded
            workload = config.get("workload", {})
            records.append({"run_id": run_id, "uid": uid, "created_at": created, "kind": kind,
                            "arch": summary.get("arch", arch), "kernel_size": kernel_size_of(workload),
                            "batch_size": workload.get("batch_size"), "image_size": workload.get("image_size"),
                            "device": device_name if device_kind != "cpu" else "cpu", "modes": modes,
                            "ratio": summary.get("ratio"), "ratio_ci": summary.get("ratio_ci"),
                            "kernel_ratio": summary.get("kernel_ratio"),
                            "kernel_times_reliable": summary.get("kernel_times_reliable"),
                            "partial": bool(summary.get("partial")),
                            "sweep": (config.get("sweep") or {}).get("name"), "verdict": summary.get("verdict")
                            if kind != "overhead" else None, "config": config})
        return pd.DataFrame.from_records(records, columns=LIST_COLUMNS)

    def run_ids(self, framework: str) -> list[int]:
        """Ids of the runs of ``framework`` (pytorch, or tensorflow/tf), oldest first; StoreError when none."""
        from detprof.backend import backend_for

        backend = backend_for(framework)
        ids = [int(r[0]) for r in self.connection.execute("SELECT id FROM runs WHERE framework=? ORDER BY id",
                                                          (backend.name,))]
        if not ids:
            flag = f" {backend.option}" if backend.option else ""
            raise StoreError(f"no {backend.name} runs in {self.shown!r}; run `detprof overhead{flag}` first")
        return ids

    def latest_run_id(self, framework: str | None = None) -> int:
        """Id of the newest run (of ``framework``: pytorch, or tensorflow/tf); StoreError when there are none."""
        if framework is None:
            row = self.connection.execute("SELECT MAX(id) FROM runs").fetchone()
            if row is None or row[0] is None:
                raise StoreError(f"no runs yet in {self.shown!r}; run `detprof overhead` first")
            return int(row[0])
        return self.run_ids(framework)[-1]

    def run_summary(self, run_id: int | None = None) -> dict[str, Any]:
        """The stored summary document of a run (latest when ``run_id`` is None)."""
        run_id = self.latest_run_id() if run_id is None else run_id
        row = self.connection.execute("SELECT summary_json FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            known = [r[0] for r in self.connection.execute("SELECT id FROM runs ORDER BY id")]
            raise StoreError(f"no run with id {run_id}; stored runs: {', '.join(map(str, known)) or 'none'}")
        return {**decode_document(row[0], f"run {run_id}'s summary_json in {self.shown!r}"), "run_id": run_id}

    def latest_run_with_kernels(self) -> int:
        """Id of the newest run that has kernel rows (a verdict has none); StoreError when none has."""
        row = self.connection.execute("SELECT MAX(run_id) FROM kernels").fetchone()
        if row is None or row[0] is None:
            self.latest_run_id()  # no runs at all: that error names it
            raise StoreError(f"no run in {self.shown!r} has kernel rows (verdicts have none); run `detprof overhead` "
                             "with --profile-steps 1 or more first")
        return int(row[0])

    def kernel_modes(self, run_id: int) -> list[str]:
        """Modes of a run that have kernel rows, in the run's order."""
        order = self.run_summary(run_id)["modes"]
        present = {r[0] for r in self.connection.execute("SELECT DISTINCT mode FROM kernels WHERE run_id=?", (run_id,))}
        return [m["mode"] for m in order if m["mode"] in present]

    def kernels(self, run_id: int, mode: str) -> pd.DataFrame:
        """Kernel rows of one mode of a run (µs over the profiled steps), largest total first, with share."""
        import pandas as pd

        frame = pd.read_sql_query(
            "SELECT name, category, nondeterministic, calls, total_us, mean_us, median_us, min_us, max_us, std_us"
            " FROM kernels WHERE run_id=? AND mode=? ORDER BY total_us DESC, name", self.connection,
            params=(run_id, mode))
        frame["nondeterministic"] = [None if pd.isna(v) else bool(v) for v in frame["nondeterministic"]]
        total = float(frame["total_us"].sum())
        frame.insert(5, "share", frame["total_us"] / total if total > 0 else 0.0)
        return frame

    def jobs(self, run_id: int) -> pd.DataFrame:
        """Every job of a run: job_index, side, mode, repeat (pair), status, error, peak memory
        (bytes, steady and warm-up), state_sha256 (parameter fingerprint) and wall_s."""
        import pandas as pd

        return pd.read_sql_query(
            "SELECT job_index, side, mode, repeat, status, error, peak_mem_bytes, peak_mem_warmup_bytes,"
            " state_sha256, wall_s FROM jobs WHERE run_id=? ORDER BY job_index", self.connection, params=(run_id,))

    def steps(self, run_id: int) -> pd.DataFrame:
        """Every timed step of a run: job_index, side, mode, repeat, step, time_ms."""
        import pandas as pd

        return pd.read_sql_query(
            "SELECT s.job_index, j.side, j.mode, j.repeat, s.step, s.time_ms FROM steps s JOIN jobs j"
            " ON j.run_id = s.run_id AND j.job_index = s.job_index WHERE s.run_id=? ORDER BY s.job_index, s.step",
            self.connection, params=(run_id,))



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
