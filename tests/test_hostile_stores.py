"""Stores that detprof did not write, or that were damaged: planted paths, bad rows, odd schema
values, unreadable stability files, a read-only medium.

A store is written through detprof's own API, then altered with sqlite3 as an attacker or a
failing disk would. Each case has its control: the same store unaltered merges or reads."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from detprof.cli import app
from detprof.report import build_report
from detprof.store import ResultStore
from tests.stores import store_with_kernels

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def _jobs(db: Path, run_id: int, trace_paths: list[str]) -> None:
    """Job rows as the runner writes them, one per recorded trace path."""
    with sqlite3.connect(db) as connection:
        for index, trace in enumerate(trace_paths):
            connection.execute(
                "INSERT INTO jobs (run_id, job_index, side, mode, repeat, status, toggles_json, applied_toggles_json,"
                " nondeterministic_ops_json, trace_path) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (run_id, index, index % 2, "default", index, "ok", "{}", "{}", "[]", trace))


def _stability_experiment(db: Path, key: str, runs: int = 2, examples: int = 20) -> Path:
    """A stability experiment stored as `detprof stability` stores one: labels beside its runs,
    predictions and weights per run. Returns its folder."""
    folder = db.parent / "stability" / key
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, examples)
    folder.mkdir(parents=True)
    np.save(folder / "test_labels.npy", labels)
    with ResultStore(db, create=True) as store:
        for index in range(runs):
            run = folder / f"run{index}"
            run.mkdir()
            np.save(run / "predictions.npy", np.where(rng.random(examples) < 0.8, labels, (labels + 1) % 3))
            torch.save({"w": torch.tensor(rng.normal(size=8))}, run / "weights.pt")
            store.save_stability_run({
                "experiment": key, "task": "digits", "variant": "algo+impl", "mode": "default", "fixed": [],
                "recipe": {"arch": "small-cnn", "batch_size": 32}, "run_index": index, "seeds": {"weights": index},
                "accuracy": 0.8, "created_at": "2026-12-01T00:00:00+00:00",
                "predictions_path": str(run / "predictions.npy"), "weights_path": str(run / "weights.pt"),
                "environment": {"nondeterministic_ops": []}})
    return folder


def _rows(db: Path, table: str) -> int:
    with sqlite3.connect(db) as connection:
        return int(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _one_error_line(result: object) -> str:
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.exit_code == 2, (result.exit_code, stderr)  # type: ignore[attr-defined]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return str(lines[0])


# -- planted paths ---------------------------------------------------------------------------------

def test_merge_follows_no_path_outside_the_other_stores_traces_and_stability(tmp_path: Path) -> None:
    home = tmp_path / "home"
    other = home / "other" / "other.sqlite"
    other.parent.mkdir(parents=True)
    run_id = store_with_kernels(other, ["sgemm_kernel"])
    (other.parent / "pending").mkdir()
    (other.parent / "pending" / "run-evil.json").write_text('{"run": {}}')  # what broke every later write
    (home / "secret.txt").write_text("private")
    (other.parent / "traces").mkdir()
    (other.parent / "traces" / "ok.json").write_text("{}")
    (other.parent / "traces" / "link.json").symlink_to(home / "secret.txt")
    _jobs(other, run_id, ["traces/ok.json", "pending/run-evil.json", "../secret.txt", str(home / "secret.txt"),
                          "traces/link.json", "traces/../pending/run-evil.json"])
    victim = tmp_path / "victim" / "results.sqlite"
    result = runner.invoke(app, ["db", "merge", str(other), "--db", str(victim), "--json"])
    assert result.exit_code == 0, result.stderr
    counts = json.loads(result.stdout)
    assert counts["runs_added"] == 1 and counts["files_copied"] == 1 and counts["paths_dropped"] == 5
    assert any("'pending/run-evil.json' is outside the other store's stability and traces folders" in s
               for s in counts["dropped"])
    planted = sorted(p.relative_to(victim.parent).as_posix() for p in victim.parent.rglob("*") if p.is_file())
    assert planted == ["results.sqlite", "traces/ok.json"]  # the control: the one legitimate file came
    with sqlite3.connect(victim) as connection:
        traces = [r[0] for r in connection.execute("SELECT trace_path FROM jobs ORDER BY job_index")]
    assert traces == ["traces/ok.json", None, None, None, None, None]
    store_with_kernels(victim, ["relu_kernel"])  # the victim store still takes writes
    human = runner.invoke(app, ["db", "merge", str(other), "--db", str(tmp_path / "again.sqlite")])
    assert "not copied: run 1's trace: 'pending/run-evil.json' is outside" in human.stdout


def test_a_stability_run_whose_files_lie_elsewhere_is_not_merged(tmp_path: Path) -> None:
    other = tmp_path / "other" / "other.sqlite"
    folder = _stability_experiment(other, "exp1")
    with sqlite3.connect(other) as connection:
        connection.execute("UPDATE stability_runs SET weights_path='../../outside.pt' WHERE run_index=1")
    victim = tmp_path / "victim" / "results.sqlite"
    counts = json.loads(runner.invoke(app, ["db", "merge", str(other), "--db", str(victim), "--json"]).stdout)
    assert counts["stability_added"] == 1 and counts["stability_skipped"] == 1
    assert (victim.parent / "stability" / "exp1" / "run0" / "weights.pt").is_file()
    assert (victim.parent / "stability" / "exp1" / "test_labels.npy").is_file()
    assert folder.is_dir()  # nothing of the other store was moved or changed


# -- bad rows --------------------------------------------------------------------------------------

BAD_ROWS = [
    ("runs", "summary_json", "{not json", "run 1, summary_json is not JSON: '{not json'"),
    ("runs", "config_json", "[1, 2]", "run 1, config_json is a JSON list, not a JSON object"),
    ("runs", "uid", "", "run 1, uid is empty"),
    ("kernels", "total_us", "abc", "kernels row 1, total_us is 'abc', not a number"),
    ("kernels", "calls", -3, "kernels row 1, calls is -3, a negative calls"),
    ("kernels", "nondeterministic", "yes", "kernels row 1, nondeterministic is 'yes', not a whole number"),
    ("stability_runs", "seeds_json", "x", "stability_runs row 1, seeds_json is not JSON: 'x'"),
    ("stability_runs", "accuracy", "high", "stability_runs row 1, accuracy is 'high', not a number"),
]


@pytest.mark.parametrize(("table", "column", "value", "message"), BAD_ROWS, ids=[f"{r[0]}.{r[1]}" for r in BAD_ROWS])
def test_a_store_with_a_bad_row_is_refused_whole(table: str, column: str, value: object, message: str,
                                                 tmp_path: Path) -> None:
    other = tmp_path / "other" / "other.sqlite"
    store_with_kernels(other, ["sgemm_kernel", "relu_kernel"])
    _stability_experiment(other, "exp1")
    victim = tmp_path / "victim.sqlite"
    store_with_kernels(victim, ["mine"], arch="vgg19")
    before = {t: _rows(victim, t) for t in ("runs", "kernels", "stability_runs")}
    with sqlite3.connect(other) as connection:
        connection.execute("PRAGMA ignore_check_constraints = ON")
        key = "id" if table in ("runs", "stability_runs") else "rowid"
        connection.execute(f"UPDATE {table} SET {column}=? WHERE {key}=(SELECT MIN({key}) FROM {table})", (value,))
    line = _one_error_line(runner.invoke(app, ["db", "merge", str(other), "--db", str(victim)]))
    assert line == (f"detprof: error: db merge: {str(other)!r} is not merged, as it holds a row detprof would not "
                    f"write: {message}; nothing was changed here")
    assert {t: _rows(victim, t) for t in before} == before and not (tmp_path / "stability").exists()
    listed = runner.invoke(app, ["runs", "--db", str(victim), "--json"])
    assert listed.exit_code == 0 and [r["arch"] for r in json.loads(listed.stdout)["runs"]] == ["vgg19"]


def test_control_the_same_store_unaltered_merges(tmp_path: Path) -> None:
    other = tmp_path / "other" / "other.sqlite"
    store_with_kernels(other, ["sgemm_kernel", "relu_kernel"])
    _stability_experiment(other, "exp1")
    result = runner.invoke(app, ["db", "merge", str(other), "--db", str(tmp_path / "victim.sqlite"), "--json"])
    counts = json.loads(result.stdout)
    assert counts["runs_added"] == 1 and counts["stability_added"] == 2 and counts["paths_dropped"] == 0


# -- readers survive one bad row -------------------------------------------------------------------

def test_runs_export_and_report_name_a_damaged_run_and_show_the_others(tmp_path: Path) -> None:
    db = tmp_path / "results.sqlite"
    bad = store_with_kernels(db, ["sgemm_kernel"], arch="resnet18")
    store_with_kernels(db, ["relu_kernel"], arch="vgg19")
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE runs SET summary_json='{not json' WHERE id=?", (bad,))
    warning = f"detprof: warning: left out run {bad}'s summary_json is not JSON"
    listed = runner.invoke(app, ["runs", "--db", str(db), "--json"])
    assert listed.exit_code == 0 and listed.stderr.startswith(warning)
    document = json.loads(listed.stdout)
    assert [r["arch"] for r in document["runs"]] == ["vgg19"] and len(document["skipped"]) == 1
    exported = runner.invoke(app, ["db", "export", "--db", str(db)])
    assert exported.exit_code == 0 and exported.stderr.startswith(warning)
    assert len(exported.stdout.strip().splitlines()) == 2 and ",vgg19," in exported.stdout  # header and one run
    page = runner.invoke(app, ["report", "--db", str(db), "--out", str(tmp_path / "r.html"), "--json"])
    assert page.exit_code == 0 and page.stderr.startswith(warning), page.stderr
    html = (tmp_path / "r.html").read_text()
    assert "Left out, as it could not be read" in html and f"run {bad}&#x27;s summary_json is not JSON" in html
    asked = runner.invoke(app, ["kernels", "--run", str(bad), "--db", str(db)])
    assert f"run {bad}'s summary_json in {str(db)!r} is not JSON" in _one_error_line(asked)
    with sqlite3.connect(db) as connection:  # control: repaired, nothing is left out
        connection.execute("DELETE FROM runs WHERE id=?", (bad,))
    clean = runner.invoke(app, ["runs", "--db", str(db), "--json"])
    assert clean.stderr == "" and json.loads(clean.stdout)["skipped"] == []


@pytest.mark.parametrize(("damage", "reason"), [
    ("missing", "is missing"),
    ("truncated", "is unreadable"),
    ("pickle", "is unreadable"),
])
def test_the_report_goes_on_without_an_experiment_whose_files_are_damaged(damage: str, reason: str,
                                                                          tmp_path: Path) -> None:
    db = tmp_path / "results.sqlite"
    _stability_experiment(db, "good")
    folder = _stability_experiment(db, "hurt")
    predictions = folder / "run1" / "predictions.npy"
    if damage == "missing":
        predictions.unlink()
    elif damage == "truncated":
        predictions.write_bytes(predictions.read_bytes()[:40])
    else:  # an object array: loading it would unpickle
        np.save(predictions, np.array([{"payload": 1}], dtype=object), allow_pickle=True)
    result = build_report(db, tmp_path / "r.html")
    assert result.sections["stability"] == "drawn"
    assert len(result.skipped) == 1
    assert result.skipped[0].startswith("stability experiment hurt (digits small-cnn): predictions file ")
    assert f"{str(predictions)!r} {reason}" in result.skipped[0]
    cli = runner.invoke(app, ["report", "--db", str(db), "--out", str(tmp_path / "r2.html")])
    assert cli.exit_code == 0 and cli.stderr.startswith("detprof: warning: left out stability experiment hurt")


# -- odd schema values -----------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["abc", "", "4.5", "-1", "99"])
def test_an_odd_schema_version_is_one_line_naming_the_users_file(value: str, tmp_path: Path) -> None:
    db = tmp_path / "odd.sqlite"
    store_with_kernels(db, ["sgemm_kernel"])
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE meta SET value=? WHERE key='schema_version'", (value,))
    expected = ("has schema version 99; this detprof reads up to 4" if value == "99" else
                f"records schema_version {value!r}, not a whole number")
    line = _one_error_line(runner.invoke(app, ["runs", "--db", str(db)]))
    assert f"{str(db)!r} {expected}" in line
    merged = _one_error_line(runner.invoke(app, ["db", "merge", str(db), "--db", str(tmp_path / "v.sqlite")]))
    assert f"{str(db)!r} {expected}" in merged and "source.sqlite" not in merged


# -- a read-only medium ----------------------------------------------------------------------------

def test_merge_reads_a_store_on_a_read_only_medium_wal_included(tmpfs: Callable[[str], Path], tmp_path: Path) -> None:
    read_only_medium = tmpfs("16m")
    other = read_only_medium / "other.sqlite"
    store_with_kernels(other, ["sgemm_kernel"])
    keeper = sqlite3.connect(other)  # holds the WAL open, so the second run stays in it, not in the file
    keeper.execute("PRAGMA wal_autocheckpoint = 0")
    keeper.execute("SELECT COUNT(*) FROM runs").fetchall()
    store_with_kernels(other, ["relu_kernel"], arch="vgg19")
    subprocess.run(["cp", "-a", f"{other}-wal", str(tmp_path / "wal-copy")], check=True)
    keeper.close()  # closing checkpoints; put the WAL back as a crash would leave it
    subprocess.run(["cp", "-a", str(tmp_path / "wal-copy"), f"{other}-wal"], check=True)
    Path(f"{other}-shm").unlink(missing_ok=True)
    assert Path(f"{other}-wal").stat().st_size > 0  # the second run is in the WAL only
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_medium)], check=True)
    result = runner.invoke(app, ["db", "merge", str(other), "--db", str(tmp_path / "v.sqlite"), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["runs_added"] == 2
    assert sorted(p.name for p in read_only_medium.iterdir()) == ["other.sqlite", "other.sqlite-wal"]


@pytest.mark.slow
def test_a_store_moved_after_measuring_is_merged_with_its_traces(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a relative --db, as a user types it
    result = runner.invoke(app, ["overhead", "--arch", "small-cnn", "--batch-size", "4", "--warmup", "1", "--steps",
                                 "2", "--repeats", "2", "--precision", "0", "--db", "first/r.sqlite"])
    assert result.exit_code == 0, result.stderr
    (tmp_path / "first").rename(tmp_path / "moved")
    merged = json.loads(runner.invoke(app, ["db", "merge", "moved/r.sqlite", "--db", "merged/r.sqlite",
                                            "--json"]).stdout)
    assert merged["paths_dropped"] == 0 and merged["files_copied"] == 4, merged
    # the moved store itself still finds its traces: its paths are relative to its folder
    with sqlite3.connect(tmp_path / "moved" / "r.sqlite") as connection:
        traces = [r[0] for r in connection.execute("SELECT trace_path FROM jobs WHERE trace_path IS NOT NULL")]
    assert traces and all(t.startswith("traces/") and (tmp_path / "moved" / t).is_file() for t in traces)


@pytest.mark.parametrize(("kind", "change", "named"), [
    ("check", {"first_divergence": "step 1"}, "first_divergence is \"step 1\""),
    ("check", {"max_abs_diff": "0.5"}, "max_abs_diff is \"0.5\""),
    ("audit", {"nondeterministic_ops": ["aten::put_"]}, "nondeterministic_ops[0] is \"aten::put_\", not an object"),
    ("advise", {"candidates": [{"mode": 3, "bitwise_identical": True}]}, "candidates[0].mode is 3"),
])
def test_merge_refuses_a_verdict_of_another_shape_and_changes_nothing(kind: str, change: dict, named: str,
                                                                        tmp_path: Path) -> None:
    from detprof.check.record import store_verdict

    document = json.loads((REPO / "tests" / "data" / "documents" / f"{kind}.json").read_text())
    other, victim = tmp_path / "other.sqlite", tmp_path / "victim.sqlite"
    store_verdict(kind, document, str(other))
    store_verdict(kind, document, str(victim))
    # control: the verdict as detprof wrote it merges
    assert runner.invoke(app, ["db", "merge", str(other), "--db", str(tmp_path / "ok.sqlite")]).exit_code == 0
    with sqlite3.connect(other) as connection:
        summary = json.loads(connection.execute("SELECT summary_json FROM runs").fetchone()[0])
        connection.execute("UPDATE runs SET summary_json=?", (json.dumps({**summary, **change}),))
    result = runner.invoke(app, ["db", "merge", str(other), "--db", str(victim)])
    assert result.exit_code == 2 and f"holds a {kind} verdict of another shape" in result.stderr, result.stderr
    assert named in result.stderr and len(result.stderr.strip().splitlines()) == 1
    with sqlite3.connect(victim) as connection:
        assert connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    assert runner.invoke(app, ["report", "--db", str(victim), "--out", str(tmp_path / "r.html")]).exit_code == 0
