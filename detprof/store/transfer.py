"""Moving results between stores: ``merge`` another machine's database into this one, ``export``
runs as CSV or JSON for analysis elsewhere.

A run is the same run in every copy of a database by its ``uid``; merging copies only the runs
this store lacks (with their jobs, steps, kernel rows and the trace files beside the other store),
so merging twice changes nothing. Sweep jobs done elsewhere become done here; stability runs are
matched on (experiment, run index) and their prediction and weight files come along.
"""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from detprof.documents import DOCUMENT_VERSION, MergeDocument
from detprof.errors import require
from detprof.store.db import ResultStore, StoreLike, open_store
from detprof.store.errors import StoreError
from detprof.store.paths import STORE_FOLDERS, stored_file
from detprof.store.rows import check_rows
from detprof.store.schema import RUN_COLUMNS
from detprof.zoo import kernel_size_of

JOB_COLUMNS = ("job_index", "side", "mode", "repeat", "status", "error", "peak_mem_bytes", "peak_mem_kind",
               "toggles_json", "applied_toggles_json", "nondeterministic_ops_json", "gpu_monitor_json", "trace_path",
               "wall_s", "peak_mem_warmup_bytes", "state_sha256")
KERNEL_COLUMNS = ("mode", "name", "category", "nondeterministic", "calls", "total_us", "mean_us", "median_us",
                  "min_us", "max_us", "std_us")
STABILITY_COLUMNS = ("experiment", "task", "variant", "mode", "fixed_json", "recipe_json", "run_index", "seeds_json",
                     "accuracy", "created_at", "predictions_path", "weights_path", "environment_json")
EXPORT_FORMATS = ("csv", "json")


def _snapshot(source: Path, scratch: Path) -> Path:
    """A consistent copy of ``source`` (its WAL included), so the source is never changed, not even
    by a schema upgrade; the copy is upgraded instead.

    Read through SQLite's online backup in read-only mode; where that cannot open the file (a
    read-only folder or medium, where SQLite cannot create the shared-memory file beside it), the
    database and its WAL are copied as files and the copy is opened instead."""
    copy = scratch / "source.sqlite"
    try:
        reader = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
        try:
            writer = sqlite3.connect(copy)
            with writer:
                reader.backup(writer)
            writer.close()
        finally:
            reader.close()
        return copy
    except sqlite3.OperationalError:
        for suffix in ("", "-wal"):
            extra = copy.with_name(copy.name + suffix)
            if extra.exists():
                extra.unlink()
    except sqlite3.DatabaseError as error:
        raise StoreError(f"cannot read {str(source)!r} as a detprof results database: {error}") from None
    try:
        shutil.copyfile(source, copy)
        wal = source.with_name(source.name + "-wal")
        if wal.is_file():
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
    except OSError as error:
        raise StoreError(f"cannot read {str(source)!r}: {error.strerror or error}") from None
    return copy


def _moved(path: str | None, source_dir: Path, target_dir: Path, counts: dict[str, int],
           dropped: list[str], owner: str) -> str | None:
    """Copy a file that the source store recorded (relative to its folder, or absolute inside it)
    to the same place beside the target; returns the path to record here, relative to the target's
    folder. Only files in the source store's own ``stability/`` and ``traces/`` folders are copied,
    into the same folders here. A path anywhere else (``pending/``, a parent folder, a link that
    leads out) is not followed: it is dropped (None) and named in ``dropped``. A path inside those
    folders whose file is missing is kept, as the other store had it. ``files_copied`` counts copies."""
    if not path:
        return path
    file = stored_file(source_dir, path)
    try:
        relative = file.resolve().relative_to(source_dir.resolve())
    except (ValueError, OSError):
        relative = None
    if relative is None or not relative.parts or relative.parts[0] not in STORE_FOLDERS or ".." in Path(path).parts:
        dropped.append(f"{owner}: {path!r} is outside the other store's {' and '.join(STORE_FOLDERS)} folders")
        counts["paths_dropped"] += 1
        return None
    if not file.is_file():
        return relative.as_posix()
    destination = target_dir / relative
    destination.parent.mkdir(parents=True, exist_ok=True)
    if not destination.exists():
        shutil.copy2(file, destination)
        counts["files_copied"] += 1
    return relative.as_posix()


# Files of a stability experiment's folder that its measures are recomputed from, beside its runs.
EXPERIMENT_FILES = ("test_labels.npy", "test_groups.npz")


def merge_store(db: StoreLike, other: str | Path) -> MergeDocument:
    """Bring the runs, sweep jobs and stability runs of the database ``other`` into ``db`` in one
    transaction, skipping what is already there.

    Returns counts (runs_added, runs_present, sweep_jobs_added, sweep_jobs_completed,
    stability_added, stability_present, stability_skipped, files_copied, paths_dropped) and
    ``dropped``: one sentence per recorded path that was not followed. Raises StoreError (one
    line, naming ``other``) for a store that cannot be read or holds a row detprof would not
    write; then nothing is changed."""
    source = Path(other)
    require(source.is_file(), f"db merge: {str(other)!r} is not a file; pass the path of another detprof "
                              "results database (.sqlite)")
    counts = dict.fromkeys(("runs_added", "runs_present", "sweep_jobs_added", "sweep_jobs_completed",
                            "stability_added", "stability_present", "stability_skipped", "files_copied",
                            "paths_dropped"), 0)
    dropped: list[str] = []
    with open_store(db, create=True) as store, tempfile.TemporaryDirectory() as scratch:
        require(source.resolve() != store.path.resolve(), f"db merge: {str(other)!r} is this store itself")
        with ResultStore(_snapshot(source, Path(scratch)), shown_as=str(other)) as copy:
            src = copy.connection
            check_rows(src, str(other))  # the whole store is refused before anything is copied
            source_dir, target_dir = source.parent, store.path.parent
            with store.immediate_transaction() as dst:
                present = {row[0] for row in dst.execute("SELECT uid FROM runs")}
                new_ids: dict[int, int] = {}
                for row in src.execute(f"SELECT id, {', '.join(RUN_COLUMNS)} FROM runs ORDER BY id").fetchall():
                    old_id, values = row[0], row[1:]
                    uid = values[-1]
                    if uid in present:
                        counts["runs_present"] += 1
                        new_ids[old_id] = dst.execute("SELECT id FROM runs WHERE uid=?", (uid,)).fetchone()[0]
                        continue
                    cursor = dst.execute(f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES "
                                         f"({','.join('?' * len(RUN_COLUMNS))})", values)
                    new_id = int(cursor.lastrowid or 0)
                    new_ids[old_id] = new_id
                    present.add(uid)
                    counts["runs_added"] += 1
                    for job in src.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE run_id=?", (old_id,)):
                        job = list(job)
                        trace = job[JOB_COLUMNS.index("trace_path")]
                        job[JOB_COLUMNS.index("trace_path")] = _moved(trace, source_dir, target_dir, counts, dropped,
                                                                      f"run {old_id}'s trace")
                        dst.execute(f"INSERT INTO jobs (run_id, {', '.join(JOB_COLUMNS)}) VALUES "
                                    f"(?, {','.join('?' * len(JOB_COLUMNS))})", (new_id, *job))
                    dst.executemany("INSERT INTO steps VALUES (?,?,?,?)",
                                    [(new_id, *r) for r in src.execute(
                                        "SELECT job_index, step, time_ms FROM steps WHERE run_id=?", (old_id,))])
                    dst.executemany(f"INSERT INTO kernels VALUES (?, {','.join('?' * len(KERNEL_COLUMNS))})",
                                    [(new_id, *r) for r in src.execute(
                                        f"SELECT {', '.join(KERNEL_COLUMNS)} FROM kernels WHERE run_id=?", (old_id,))])
                _merge_sweep_jobs(src, dst, new_ids, counts)
                _merge_stability(src, dst, source_dir, target_dir, counts, dropped)
    merged: MergeDocument = {"document_version": DOCUMENT_VERSION, **counts, "dropped": dropped}  # type: ignore[typeddict-item]
    return merged


def _merge_sweep_jobs(src: sqlite3.Connection, dst: sqlite3.Connection, new_ids: dict[int, int],
                      counts: dict[str, int]) -> None:
    """A job done in the other store is done here (pointing at the merged run); a failure there
    is copied only where this store knows nothing of the job. Running claims are not copied."""
    rows = src.execute("SELECT job_key, sweep, label, config_json, status, run_id, error, attempts, node, updated_at"
                       " FROM sweep_jobs WHERE status IN ('done', 'failed')").fetchall()
    for key, sweep, label, config, status, run_id, error, attempts, node, updated in rows:
        mapped = new_ids.get(run_id) if run_id is not None else None
        if status == "done" and mapped is None:
            continue  # its run was deleted there: nothing to point at
        here = dst.execute("SELECT status FROM sweep_jobs WHERE job_key=?", (key,)).fetchone()
        if here is None:
            dst.execute("INSERT INTO sweep_jobs (job_key, sweep, label, config_json, status, run_id, error, attempts,"
                        " owner, node, updated_at) VALUES (?,?,?,?,?,?,?,?,NULL,?,?)",
                        (key, sweep, label, config, status, mapped, error, attempts, node, updated))
            counts["sweep_jobs_added"] += 1
        elif here[0] != "done" and status == "done":
            dst.execute("UPDATE sweep_jobs SET status='done', run_id=?, error=NULL, owner=NULL, node=?, updated_at=?"
                        " WHERE job_key=?", (mapped, node, updated, key))
            counts["sweep_jobs_completed"] += 1


def _merge_stability(src: sqlite3.Connection, dst: sqlite3.Connection, source_dir: Path, target_dir: Path,
                     counts: dict[str, int], dropped: list[str]) -> None:
    """Stability runs this store lacks, with their files; a run whose files lie outside the other
    store's stability folder is not merged (``stability_skipped``), as it could not be measured."""
    for row in src.execute(f"SELECT {', '.join(STABILITY_COLUMNS)} FROM stability_runs ORDER BY id").fetchall():
        values = dict(zip(STABILITY_COLUMNS, row, strict=True))
        if dst.execute("SELECT 1 FROM stability_runs WHERE experiment=? AND run_index=?",
                       (values["experiment"], values["run_index"])).fetchone():
            counts["stability_present"] += 1
            continue
        owner = f"stability run {values['run_index']} of experiment {values['experiment']}"
        for key in ("predictions_path", "weights_path"):
            values[key] = _moved(values[key], source_dir, target_dir, counts, dropped, owner)
        if values["predictions_path"] is None or values["weights_path"] is None:
            counts["stability_skipped"] += 1
            continue
        # The experiment's labels (and subgroups): without them its measures cannot be recomputed.
        experiment_dir = Path(values["predictions_path"]).parent.parent
        for name in EXPERIMENT_FILES:
            _moved((experiment_dir / name).as_posix(), source_dir, target_dir, counts, dropped, owner)
        dst.execute(f"INSERT INTO stability_runs ({', '.join(STABILITY_COLUMNS)}) VALUES "
                    f"({','.join('?' * len(STABILITY_COLUMNS))})", tuple(values.values()))
        counts["stability_added"] += 1


def export_runs(db: StoreLike = None, format: str = "csv", skipped: list[str] | None = None) -> str:
    """Every stored run as text: ``csv`` (one row per run: uid, time, kind, verdict, arch, kernel size,
    batch, image size, modes, device, ratio and its 95% CI, kernel and memory ratios, step time of
    each mode in ms, sweep) or ``json`` (each run's full configuration, environment and summary).
    A damaged run is left out and named in ``skipped`` (when given)."""
    require(format in EXPORT_FORMATS, f"--format {format!r} is not accepted; use {' or '.join(EXPORT_FORMATS)}")
    with open_store(db) as store:
        documents = store.run_documents()
        if skipped is not None:
            skipped.extend(store.damaged)
    if format == "json":
        return json.dumps({"runs": documents}, indent=2, default=str) + "\n"
    import pandas as pd

    table = pd.DataFrame([flat_run(d) for d in documents], columns=FLAT_COLUMNS)
    # Whole numbers stay whole where some rows have none (kernel_size is empty for most archs).
    table = table.astype({"kernel_size": "Int64", "batch_size": "Int64", "image_size": "Int64",
                          "ratio_pairs": "Int64"})
    buffer = io.StringIO()
    table.map(spreadsheet_safe).to_csv(buffer, index=False)
    return buffer.getvalue()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets read as the start of a formula


def spreadsheet_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula (a mode or arch named ``=HYPERLINK(...)``,
    say) with a ``'`` in front, so that it shows as text; other values unchanged."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


FLAT_COLUMNS = ["run_id", "uid", "created_at", "kind", "verdict", "arch", "kernel_size", "batch_size", "image_size",
                "baseline", "treatment", "device", "ratio", "ratio_ci_low", "ratio_ci_high", "ratio_pairs",
                "kernel_ratio", "memory_ratio", "baseline_step_ms", "treatment_step_ms", "sweep", "command",
                "kernel_times_note"]


def flat_run(document: dict[str, Any]) -> dict[str, Any]:
    """One run as a flat row (FLAT_COLUMNS); kernel_size only for archs that take one; kernel_ratio
    empty where the run's kernel times are flagged unreliable (kernel_times_note says why)."""
    summary, config = document["summary"], document["config"]
    workload = config.get("workload", {})
    modes = summary.get("modes", [{}, {}])
    ci = summary.get("ratio_ci") or [None, None]
    device = summary.get("device", {})
    return {"run_id": document["run_id"], "uid": document["uid"], "created_at": document["created_at"],
            "kind": document["kind"],
            "verdict": summary.get("verdict"), "arch": summary.get("arch"), "kernel_size": kernel_size_of(workload),
            "batch_size": workload.get("batch_size"), "image_size": workload.get("image_size"),
            "baseline": modes[0].get("mode"), "treatment": modes[1].get("mode") if len(modes) > 1 else None,
            "device": device.get("name") if device.get("kind") != "cpu" else "cpu", "ratio": summary.get("ratio"),
            "ratio_ci_low": ci[0], "ratio_ci_high": ci[1], "ratio_pairs": summary.get("ratio_pairs"),
            # a kernel ratio from kernel times flagged unreliable is not stated, as everywhere else
            "kernel_ratio": None if summary.get("kernel_times_reliable") is False else summary.get("kernel_ratio"),
            "kernel_times_note": summary.get("kernel_times_note"), "memory_ratio": summary.get("memory_ratio"),
            "baseline_step_ms": modes[0].get("step_ms"),
            "treatment_step_ms": modes[1].get("step_ms") if len(modes) > 1 else None,
            "sweep": (config.get("sweep") or {}).get("name"), "command": document["command"]}


def export_runs_to(db: StoreLike, format: str, output: str | None, skipped: list[str]) -> str | None:
    """``export_runs`` written to the file ``output`` (checked before anything is read: never the
    database itself; OutputError naming it when it cannot be written); with ``output`` None, the
    text itself is returned instead. Damaged runs left out are named in ``skipped``."""
    from detprof.outputs import OutputError, check_writable
    from detprof.store.paths import resolve_db_path

    if output is not None:
        check_writable(output, db.path if isinstance(db, ResultStore) else resolve_db_path(db), "--output",
                       "runs.csv")
    text = export_runs(db, format, skipped)
    if output is None:
        return text
    try:
        Path(output).write_text(text)
    except OSError as error:
        raise OutputError(f"--output {output!r} cannot be written: {error.strerror or error}") from None
    return None

