from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from detprof.kernels import kernel_table
from detprof.store import SCHEMA_VERSION, ResultStore, StoreError


def _run(arch: str = "resnet18") -> dict[str, object]:
    return {"created_at": "2026-11-25T12:00:00+00:00", "kind": "overhead", "arch": arch, "framework": "pytorch",
            "device_kind": "cpu", "device_name": "cpu", "modes": ["default", "deterministic"],
            "command": "detprof overhead", "config": {"seed": 0}, "environment": {"torch": "2.13.0"},
            "summary": {"arch": arch, "ratio": 1.5, "ratio_ci": [1.4, 1.6], "kernel_ratio": 1.7,
                        "protocol": {"profile_steps": 2},
                        "modes": [{"mode": "default"}, {"mode": "deterministic"}]}}


def _job(index: int, mode: str, steps: list[float]) -> dict[str, object]:
    return {"index": index, "side": index % 2, "mode": mode, "repeat": index // 2, "status": "ok", "error": None,
            "toggles": {"cudnn_benchmark": mode == "default"}, "step_ms": steps, "peak_mem_bytes": 1024,
            "peak_mem_warmup_bytes": None, "peak_mem_kind": "rss", "applied_toggles": {}, "nondeterministic_ops": [],
            "gpu_monitor": None, "trace_path": None, "wall_s": 1.5, "state_sha256": None}


def _kernels() -> dict[str, pd.DataFrame]:
    return {"default": kernel_table(pd.DataFrame({"name": ["conv", "gemm"], "dur_us": [3.0, 1.0]})),
            "deterministic": kernel_table(pd.DataFrame({"name": ["conv", "conv"], "dur_us": [4.0, 4.0]}))}


def test_roundtrip_of_a_run(db_path: Path) -> None:
    store = ResultStore(db_path, create=True)
    run_id = store.save_run(_run(), [_job(0, "default", [1.0, 2.0]), _job(1, "deterministic", [3.0])], _kernels())
    assert run_id == 1 and store.latest_run_id() == 1
    assert store.run_summary()["ratio"] == 1.5 and store.run_summary(1)["run_id"] == 1
    steps = store.steps(run_id)
    assert list(steps["time_ms"]) == [1.0, 2.0, 3.0]
    assert list(steps["mode"]) == ["default", "default", "deterministic"]
    det = store.kernels(run_id, "deterministic")
    assert det.iloc[0]["calls"] == 2 and det.iloc[0]["total_us"] == 8.0 and det.iloc[0]["share"] == 1.0
    assert store.kernel_modes(run_id) == ["default", "deterministic"]
    runs = store.list_runs()
    assert runs.iloc[0]["run_id"] == 1 and runs.iloc[0]["ratio_ci"] == [1.4, 1.6]


def test_a_failure_inside_the_transaction_leaves_nothing(db_path: Path) -> None:
    store = ResultStore(db_path, create=True)
    store.save_run(_run(), [_job(0, "default", [1.0])], {})
    broken_kernels = {"default": pd.DataFrame({"name": ["conv"]})}  # no columns: fails after the rows were inserted
    with pytest.raises(AttributeError):
        store.save_run(_run("vgg19"), [_job(0, "default", [1.0])], broken_kernels)
    assert list(store.list_runs()["arch"]) == ["resnet18"]
    assert len(store.steps(1)) == 1
    assert store.connection.execute("SELECT COUNT(*) FROM kernels").fetchone()[0] == 0


def test_reading_never_creates_and_says_no_runs_yet(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no runs yet"):
        ResultStore(tmp_path / "absent.sqlite")
    assert not (tmp_path / "absent.sqlite").exists()
    store = ResultStore(tmp_path / "new.sqlite", create=True)
    with pytest.raises(StoreError, match="no runs yet"):
        store.latest_run_id()
    with pytest.raises(StoreError, match="no run with id 7"):
        store.run_summary(7)


def test_unusable_files_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="cannot use .* as a detprof results database"):
        ResultStore(garbage)
    with pytest.raises(StoreError, match="is not a file"):
        ResultStore(tmp_path, create=True)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE things (x)")
    with pytest.raises(StoreError, match="not a detprof one"):
        ResultStore(other)


def test_newer_schema_is_refused(db_path: Path) -> None:
    ResultStore(db_path, create=True).close()
    with sqlite3.connect(db_path) as connection:
        connection.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match="upgrade detprof"):
        ResultStore(db_path)


def test_version_1_databases_are_upgraded_in_place(db_path: Path) -> None:
    store = ResultStore(db_path, create=True)
    store.save_run(_run(), [_job(0, "default", [1.0])], {})
    store.connection.execute("DROP TABLE stability_runs")
    store.connection.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    store.connection.commit()
    store.close()
    upgraded = ResultStore(db_path)
    assert upgraded.stability_runs("any") == [] and upgraded.latest_run_id() == 1
    version = upgraded.connection.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert int(version) == SCHEMA_VERSION


def test_version_2_databases_gain_the_job_fingerprint_columns(db_path: Path) -> None:
    """A database written before bitwise evidence existed: its jobs table lacks the columns."""
    connection = sqlite3.connect(db_path)
    connection.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '2');
        CREATE TABLE jobs (run_id INTEGER NOT NULL, job_index INTEGER NOT NULL, side INTEGER NOT NULL,
            mode TEXT NOT NULL, repeat INTEGER NOT NULL, status TEXT NOT NULL, error TEXT, peak_mem_bytes INTEGER,
            peak_mem_kind TEXT, toggles_json TEXT NOT NULL, applied_toggles_json TEXT NOT NULL,
            nondeterministic_ops_json TEXT NOT NULL, gpu_monitor_json TEXT, trace_path TEXT, wall_s REAL,
            PRIMARY KEY (run_id, job_index));
        INSERT INTO jobs VALUES (7, 0, 0, 'default', 0, 'ok', NULL, 1, 'x', '{}', '{}', '[]', NULL, NULL, 1.0);
    """)
    connection.commit()
    connection.close()
    store = ResultStore(db_path)
    old = store.jobs(7)
    assert len(old) == 1 and old.iloc[0]["state_sha256"] is None
    run_id = store.save_run(_run(), [{**_job(0, "default", [1.0]), "state_sha256": "ab" * 32,
                                      "peak_mem_warmup_bytes": 2048}], {})
    new = store.jobs(run_id).iloc[0]
    assert new["state_sha256"] == "ab" * 32 and new["peak_mem_warmup_bytes"] == 2048


def test_environment_variable_chooses_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DETPROF_DB", str(tmp_path / "env.sqlite"))
    assert ResultStore(create=True).path == tmp_path / "env.sqlite"


def test_a_locked_database_keeps_the_run_as_a_pending_file_stored_by_the_next_writer(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from detprof.store import StoreLockedError

    monkeypatch.setenv("DETPROF_DB_BUSY_TIMEOUT", "0.5")
    with ResultStore(db_path, create=True) as store:
        other = sqlite3.connect(db_path)
        other.execute("BEGIN EXCLUSIVE")  # another writer holds the database
        with pytest.raises(StoreLockedError, match="stayed locked by another process for 0.5 s; the measurement is "
                                                   "kept in") as caught:
            store.save_run(_run(), [_job(0, "default", [1.0, 2.0])], _kernels())
        pending = list((db_path.parent / "pending").glob("run-*.json"))
        assert len(pending) == 1 and str(pending[0]) in str(caught.value)
        with ResultStore(db_path) as reader:  # WAL: a reader is not blocked by a writer
            assert reader.list_runs().empty
        other.rollback()
        other.close()
    with ResultStore(db_path, create=True) as store:
        assert store.store_pending() == [1]
        assert not list((db_path.parent / "pending").glob("*"))
        assert list(store.steps(1)["time_ms"]) == [1.0, 2.0] and len(store.kernels(1, "deterministic")) == 1


def test_a_record_with_a_misspelt_field_is_refused_before_anything_is_written(db_path: Path) -> None:
    from detprof.shapes import ShapeError

    store = ResultStore(db_path, create=True)
    with pytest.raises(ShapeError, match="job 0 of the run is not a JobRecord: it has the field 'step_mss'"):
        store.save_run(_run(), [{**_job(0, "default", [1.0]), "step_mss": [2.0]}], _kernels())
    with pytest.raises(ShapeError, match="the run to store is not a RunRecord: it lacks the field 'summary'"):
        store.save_run({key: value for key, value in _run().items() if key != "summary"}, [], {})
    with pytest.raises(ShapeError, match="the stability run to store is not a StabilityRecord"):
        store.save_stability_run({"experiment": "e"})  # type: ignore[typeddict-item]
    assert store.connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    assert not (db_path.parent / "pending").exists()  # nor kept as a file to fail later
    # control: the same records, well spelt, are stored
    assert store.save_run(_run(), [_job(0, "default", [1.0])], _kernels()) == 1


def test_a_pending_file_with_a_misspelt_field_is_set_aside_and_a_good_one_stored(db_path: Path) -> None:
    import json

    store = ResultStore(db_path, create=True)
    pending = db_path.parent / "pending"
    pending.mkdir()
    document = {"run": _run(), "jobs": [_job(0, "default", [1.0])], "kernels": {}, "sweep_job": None,
                "replaces": None}
    (pending / "run-1-bad.json").write_text(json.dumps({**document, "jobs": [{**_job(0, "default", [1.0]),
                                                                              "stepms": [1.0]}]}))
    (pending / "run-2-good.json").write_text(json.dumps(document))
    assert store.store_pending() == [1]
    assert (pending / "run-1-bad.rejected").exists() and not (pending / "run-2-good.json").exists()
