"""Reading a store: runs (as documents, a DataFrame or one summary), their jobs, steps and kernel
tables, and stability experiments. A damaged row is left out and named in ``damaged``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from detprof.store.connection import StoreConnection
from detprof.store.errors import DamagedRowError, StoreError
from detprof.store.paths import stored_file
from detprof.store.pending import decode_document
from detprof.store.schema import LIST_COLUMNS

if TYPE_CHECKING:
    import pandas as pd


class StoreReads(StoreConnection):
    """What detprof reads back from a store."""

    def run_kind(self, run_id: int) -> str:
        """What a stored run is: overhead, trace, or a check, audit, advise or batch-invariance
        verdict; StoreError for an id with no run."""
        row = self.connection.execute("SELECT kind FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run with id {run_id} in {self.shown!r}")
        return str(row[0])

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
