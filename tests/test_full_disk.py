"""A full disk: the measurement is kept as a pending file where there is room (or the one line
says it could not be), the cause is named in one line, and no truncated trace passes as ok.

The disk is a small tmpfs filled to the last byte; detprof runs in a child process, as a user
runs it, with its temporary folder on another disk (or on the full one)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from detprof.backends.torch.worker import TraceWriteError, _profiled_pass, check_gzip_copy, check_trace_text
from tests.conftest import fill_up

TRACE = Path(__file__).parent / "data" / "traces" / "a100_alexnet_train.json.gz"


def _detprof(*args: str, tmpdir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    return subprocess.run([sys.executable, "-m", "detprof.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def _runs(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        return int(connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0])


def test_a_full_disk_keeps_the_run_elsewhere_and_says_where_in_one_line(tmpfs: Callable[[str], Path],
                                                                        tmp_path: Path) -> None:
    disk = tmpfs("2m")
    db = disk / "results.sqlite"
    other_disk = tmp_path / "tmp"
    other_disk.mkdir()
    control = _detprof("import", str(TRACE), "--db", str(db), tmpdir=other_disk)
    assert control.returncode == 0, control.stderr  # with room, the import is stored
    # The disk fills while the store is open, as it does during a long measurement: another
    # connection keeps the store's WAL and shared-memory files in place.
    reader = sqlite3.connect(db)
    reader.execute("SELECT COUNT(*) FROM runs").fetchall()
    filler = fill_up(disk)
    full = _detprof("import", str(TRACE), "--db", str(db), "--label", "second", tmpdir=other_disk)
    assert full.returncode == 2, full.stderr
    line = full.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert line.startswith(f"detprof: error: the disk holding the results database {str(db)!r} is full")
    kept = sorted((other_disk / "detprof-pending").glob("run-*.json"))
    assert len(kept) == 1 and f"the measurement is kept in {str(kept[0])!r}" in line
    assert json.loads(kept[0].read_text())["run"]["modes"] == ["second"]
    assert _runs(db) == 1  # the store is as it was
    reader.close()
    filler.unlink()  # room again: the file moved where the line says is stored by the next write
    (disk / "pending").mkdir(exist_ok=True)
    shutil.move(kept[0], disk / "pending" / kept[0].name)
    again = _detprof("import", str(TRACE), "--db", str(db), "--label", "third", tmpdir=other_disk)
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(db) as connection:
        assert [r[0] for r in connection.execute("SELECT modes FROM runs ORDER BY id")] == ["trace", "second", "third"]


def test_with_no_room_anywhere_the_error_says_nothing_was_kept(tmpfs: Callable[[str], Path],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from detprof.store import ResultStore
    from detprof.store.errors import StoreFullError
    from tests.stores import store_with_kernels

    disk, temporary = tmpfs("2m"), tmpfs("1m")
    db = disk / "results.sqlite"
    store_with_kernels(db, ["sgemm_kernel"])
    (disk / "pending").write_text("")  # a file where the pending folder would go: no room there
    fill_up(temporary)
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    with ResultStore(db) as store:
        run = json.loads(json.dumps({"created_at": "2026-12-01T00:00:00+00:00", "kind": "trace", "arch": "x",
                                     "framework": "pytorch", "device_kind": "cpu", "device_name": "cpu",
                                     "modes": ["m"], "command": "test", "config": {}, "environment": {},
                                     "summary": {"x": "y" * 200_000}}))  # larger than what is left
        fill_up(disk)
        with pytest.raises(StoreFullError, match="could not be kept as a file either: free space and measure again"
                           ) as raised:
            store.save_run(run, [], {})
    assert raised.value.kept is None
    assert not list(temporary.rglob("run-*")) and not list(disk.rglob("*.partial"))  # no half-written file


def test_a_store_on_a_full_disk_is_named_full_before_anything_is_measured(tmpfs: Callable[[str], Path],
                                                                          tmp_path: Path) -> None:
    disk = tmpfs("2m")
    db = disk / "results.sqlite"
    assert _detprof("import", str(TRACE), "--db", str(db), tmpdir=tmp_path).returncode == 0
    fill_up(disk)  # no connection open: opening must create the WAL files, and cannot
    result = _detprof("overhead", "--arch", "small-cnn", "--db", str(db), tmpdir=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"the disk holding the results database {str(db)!r} is full" in result.stderr
    assert "free space and run again" in result.stderr and "pairs" not in result.stdout  # nothing measured


def test_a_pending_file_detprof_did_not_write_is_set_aside(tmp_path: Path) -> None:
    db = tmp_path / "results.sqlite"
    assert _detprof("import", str(TRACE), "--db", str(db), tmpdir=tmp_path).returncode == 0
    (tmp_path / "pending").mkdir()
    planted = tmp_path / "pending" / "run-evil.json"
    planted.write_text('{"run": {}}')  # the file that once made every later write fail
    result = _detprof("import", str(TRACE), "--db", str(db), tmpdir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not planted.exists() and planted.with_suffix(".rejected").exists() and _runs(db) == 2


def test_a_trace_cut_short_is_never_taken_for_a_whole_one(tmp_path: Path) -> None:
    whole = gzip.decompress(TRACE.read_bytes())
    cut = tmp_path / "cut.json"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(TraceWriteError, match="truncated"):
        check_trace_text(str(cut))
    (tmp_path / "empty.json").write_bytes(b"")
    with pytest.raises(TraceWriteError, match="empty"):
        check_trace_text(str(tmp_path / "empty.json"))
    (tmp_path / "whole.json").write_bytes(whole)
    check_trace_text(str(tmp_path / "whole.json"))  # control
    short = tmp_path / "short.json.gz"
    short.write_bytes(TRACE.read_bytes()[:-100])
    with pytest.raises(TraceWriteError, match="cannot be read back"):
        check_gzip_copy(str(short), len(whole))
    check_gzip_copy(str(TRACE), len(whole))  # control


def test_a_profiled_pass_on_a_full_disk_fails_and_leaves_no_trace(tmpfs: Callable[[str], Path]) -> None:
    import torch

    disk = tmpfs("1m")
    model = torch.nn.Linear(8, 8)

    def step() -> None:
        model(torch.randn(4, 8)).sum().backward()

    _profiled_pass(torch, step, 2, False, str(disk / "ok.json.gz"))  # control: with room it is written
    assert gzip.decompress((disk / "ok.json.gz").read_bytes()).rstrip().endswith(b"}")
    fill_up(disk)
    with pytest.raises(OSError):  # ENOSPC from the copy, or TraceWriteError from the checks
        _profiled_pass(torch, step, 2, False, str(disk / "full.json.gz"))
    assert not (disk / "full.json.gz").exists()
