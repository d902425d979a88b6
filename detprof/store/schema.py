"""The store's schema: its tables, the columns later versions added, and how a run's rows are
inserted (inside the caller's transaction)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from detprof.shapes import require_shape

if TYPE_CHECKING:
    import pandas as pd


class RunRecord(TypedDict):
    """One stored run as the store takes it (``ResultStore.save_run``): an overhead measurement, a
    check's verdict or an imported trace. ``summary`` is the run's document; ``uid`` is kept when
    given (a merged or replaced run), else drawn."""

    created_at: str
    kind: str
    arch: str
    framework: str
    device_kind: str
    device_name: str
    modes: list[str]
    command: str
    config: dict[str, Any]
    environment: dict[str, Any]
    summary: Mapping[str, Any]  # the run's document (an OverheadDocument, a stored verdict, ...)
    uid: NotRequired[str]


class JobRecord(TypedDict):
    """One overhead job of a stored run: its place in the plan, how it ended, its peak memory in
    bytes, its mode's switches as asked and as applied, what the GPU monitor saw, its trace (a path
    relative to the store's folder once stored), its wall time in s, its step times in ms and the
    fingerprint of its final state."""

    index: int
    side: int
    mode: str
    repeat: int
    status: str
    error: str | None
    peak_mem_bytes: int | None
    peak_mem_warmup_bytes: int | None
    peak_mem_kind: str | None
    toggles: dict[str, Any]
    applied_toggles: dict[str, Any]
    nondeterministic_ops: list[str]
    gpu_monitor: dict[str, Any] | None
    trace_path: str | None
    wall_s: float | None
    step_ms: list[float]
    state_sha256: str | None


class StabilityRecord(TypedDict):
    """One finished stability run as the store takes it: its experiment, the seeds it drew, its
    test accuracy (a fraction), where its predictions and weights are, and what its child reported
    (detprof.documents.StabilityRunResult)."""

    experiment: str
    task: str
    variant: str
    mode: str
    fixed: list[str]
    recipe: dict[str, Any]
    run_index: int
    seeds: dict[str, int]
    accuracy: float
    created_at: str
    predictions_path: str
    weights_path: str
    environment: dict[str, Any]


def check_run_records(run: Any, jobs: list[Any]) -> None:
    """Raise ShapeError naming the field when ``run`` is not a RunRecord or a job not a JobRecord
    (a misspelt key would otherwise be stored as NULL)."""
    require_shape(run, RunRecord, "the run to store")
    for job in jobs:
        require_shape(job, JobRecord, f"job {job.get('index') if isinstance(job, dict) else job!r} of the run")

SCHEMA_VERSION = 4  # 2: stability_runs; 3: jobs.peak_mem_warmup_bytes, jobs.state_sha256; 4: runs.uid, sweep_jobs
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    arch TEXT NOT NULL,
    framework TEXT NOT NULL,
    device_kind TEXT NOT NULL,
    device_name TEXT NOT NULL,
    modes TEXT NOT NULL,
    command TEXT NOT NULL,
    config_json TEXT NOT NULL,
    environment_json TEXT NOT NULL,
    summary_json TEXT NOT NULL,
    uid TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    job_index INTEGER NOT NULL,
    side INTEGER NOT NULL,
    mode TEXT NOT NULL,
    repeat INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    peak_mem_bytes INTEGER,
    peak_mem_kind TEXT,
    toggles_json TEXT NOT NULL,
    applied_toggles_json TEXT NOT NULL,
    nondeterministic_ops_json TEXT NOT NULL,
    gpu_monitor_json TEXT,
    trace_path TEXT,
    wall_s REAL,
    peak_mem_warmup_bytes INTEGER,
    state_sha256 TEXT,
    PRIMARY KEY (run_id, job_index)
);
CREATE TABLE IF NOT EXISTS steps (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    job_index INTEGER NOT NULL,
    step INTEGER NOT NULL,
    time_ms REAL NOT NULL,
    PRIMARY KEY (run_id, job_index, step)
);
CREATE TABLE IF NOT EXISTS kernels (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    mode TEXT NOT NULL,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    nondeterministic INTEGER,
    calls INTEGER NOT NULL,
    total_us REAL NOT NULL,
    mean_us REAL NOT NULL,
    median_us REAL NOT NULL,
    min_us REAL NOT NULL,
    max_us REAL NOT NULL,
    std_us REAL NOT NULL,
    PRIMARY KEY (run_id, mode, name)
);
CREATE TABLE IF NOT EXISTS stability_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment TEXT NOT NULL,
    task TEXT NOT NULL,
    variant TEXT NOT NULL,
    mode TEXT NOT NULL,
    fixed_json TEXT NOT NULL,
    recipe_json TEXT NOT NULL,
    run_index INTEGER NOT NULL,
    seeds_json TEXT NOT NULL,
    accuracy REAL NOT NULL,
    created_at TEXT NOT NULL,
    predictions_path TEXT NOT NULL,
    weights_path TEXT NOT NULL,
    environment_json TEXT NOT NULL,
    UNIQUE (experiment, run_index)
);
CREATE TABLE IF NOT EXISTS sweep_jobs (
    job_key TEXT PRIMARY KEY,
    sweep TEXT NOT NULL,
    label TEXT NOT NULL,
    config_json TEXT NOT NULL,
    status TEXT NOT NULL,
    run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    error TEXT,
    attempts INTEGER NOT NULL,
    owner TEXT,
    node TEXT,
    updated_at TEXT NOT NULL
);
"""
# Created after the columns they index exist (old databases get those columns added first).
INDEXES = "CREATE UNIQUE INDEX IF NOT EXISTS runs_uid ON runs(uid);"


# Columns added to existing tables by later schema versions (table, column, SQL type).
ADDED_COLUMNS = [("jobs", "peak_mem_warmup_bytes", "INTEGER"), ("jobs", "state_sha256", "TEXT"),
                 ("runs", "uid", "TEXT")]


def statements(script: str) -> list[str]:
    """The statements of a schema script (no semicolons inside them), to run one by one inside a
    transaction (``executescript`` would commit it)."""
    return [part.strip() for part in script.split(";") if part.strip()]


def content_uid(*parts: str) -> str:
    """A run identifier derived from its stored content: runs stored before uids existed get the
    same one in every copy of a database, so merging two copies finds them equal."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


RUN_COLUMNS = ("created_at", "kind", "arch", "framework", "device_kind", "device_name", "modes", "command",
               "config_json", "environment_json", "summary_json", "uid")


def insert_run(db: sqlite3.Connection, run: RunRecord, jobs: list[JobRecord],
               kernels: dict[str, pd.DataFrame], run_id: int | None = None) -> int:
    """Insert a run with its jobs, steps and kernel rows inside the caller's transaction; returns its id
    (``run_id`` when given: a run being replaced). ``run["uid"]`` is kept when given (a merged run),
    else a new one is drawn. The records were checked on their way in (ResultStore.save_run and
    replace_run, a pending file as it is read)."""
    cursor = db.execute(
        f"INSERT INTO runs (id, {', '.join(RUN_COLUMNS)}) VALUES (?, {','.join('?' * len(RUN_COLUMNS))})",
        (run_id, run["created_at"], run["kind"], run["arch"], run["framework"], run["device_kind"],
         run["device_name"], ",".join(run["modes"]), run["command"], json.dumps(run["config"]),
         json.dumps(run["environment"]), json.dumps(run["summary"]), run.get("uid") or uuid.uuid4().hex))
    run_id = int(cursor.lastrowid or 0)
    for job in jobs:
        db.execute(
            "INSERT INTO jobs (run_id, job_index, side, mode, repeat, status, error, peak_mem_bytes,"
            " peak_mem_kind, toggles_json, applied_toggles_json, nondeterministic_ops_json, gpu_monitor_json,"
            " trace_path, wall_s, peak_mem_warmup_bytes, state_sha256)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, job["index"], job["side"], job["mode"], job["repeat"], job["status"], job["error"],
             job["peak_mem_bytes"], job["peak_mem_kind"], json.dumps(job["toggles"]),
             json.dumps(job["applied_toggles"]), json.dumps(job["nondeterministic_ops"]),
             json.dumps(job["gpu_monitor"]), job["trace_path"], job["wall_s"],
             job["peak_mem_warmup_bytes"], job["state_sha256"]))
        db.executemany("INSERT INTO steps VALUES (?,?,?,?)",
                       [(run_id, job["index"], i, t) for i, t in enumerate(job["step_ms"])])
    for mode, table in kernels.items():
        db.executemany(
            "INSERT INTO kernels VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [(run_id, mode, r.name, r.category, None if r.nondeterministic is None else int(r.nondeterministic),
              int(r.calls), float(r.total_us), float(r.mean_us), float(r.median_us), float(r.min_us),
              float(r.max_us), float(r.std_us)) for r in table.itertuples(index=False)])
    return run_id


LIST_COLUMNS = ["run_id", "uid", "created_at", "kind", "arch", "kernel_size", "batch_size", "image_size", "device",
                "modes", "ratio", "ratio_ci", "kernel_ratio", "kernel_times_reliable", "partial", "sweep", "verdict",
                "config"]
