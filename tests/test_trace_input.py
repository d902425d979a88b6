"""Hostile and broken traces: values that must not be counted, and files too large to read.

Each refusal is exit 2 with one line naming the event or the file; each has a control that the
same trace with a sound value (or under a higher cap) reads."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detprof.cli import app
from detprof.kernels import load_trace
from detprof.kernels.trace import TraceError, TraceTooLargeError
from tests.kineto_traces import LAYOUTS, kineto_trace_text

runner = CliRunner()


def _event_trace(path: Path, **fields: object) -> Path:
    """One kernel event (in no profiler's layout, so the full parse reads it) with ``fields`` set;
    a field given as None is left out."""
    event = {"ph": "X", "cat": "kernel", "name": "sgemm_kernel", "pid": 0, "tid": 7, "ts": 10, "dur": 5}
    event.update(fields)
    path.write_text(json.dumps({"traceEvents": [{k: v for k, v in event.items() if v is not None}]}))
    return path


@pytest.mark.parametrize(("fields", "message"), [
    ({"dur": -0.1}, "event 'sgemm_kernel' (kernel, #1 of its kind) has dur -0.1; dur must be a number of µs >= 0"),
    ({"dur": "abc"}, "has dur 'abc'; dur must be a number of µs >= 0"),
    ({"dur": None}, "has dur None; dur must be"),
    ({"dur": True}, "has dur True; dur must be"),
    ({"ts": "later"}, "has ts 'later'; ts must be a finite number of µs"),
    ({"name": 12345}, "has name 12345; an event's name must be a string"),
    ({"name": None}, "has name None; an event's name must be a string"),
])
def test_an_event_with_a_bad_value_is_refused_naming_it(fields: dict[str, object], message: str,
                                                        tmp_path: Path) -> None:
    trace = _event_trace(tmp_path / "bad.json", **fields)
    for command in (["kernels", "--trace", str(trace)], ["import", str(trace), "--db", str(tmp_path / "s.sqlite")]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.stdout
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "s.sqlite").exists()  # nothing stored
    good = load_trace(_event_trace(tmp_path / "good.json"))  # control: the same event with sound values
    assert good.names == ["sgemm_kernel"] and good.dur_us == [5.0]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_negative_duration_in_kinetos_layout_is_not_counted(layout: str, tmp_path: Path) -> None:
    trace = tmp_path / "t.json"
    trace.write_text(kineto_trace_text([("sgemm_kernel", 20.0), ("relu_kernel", -0.25)], layout, "NVIDIA H100"))
    with pytest.raises(TraceError, match=r"event 'relu_kernel' \(kernel, #2 of its kind\) has dur -0.25"):
        load_trace(trace)
    trace.write_text(kineto_trace_text([("sgemm_kernel", 20.0), ("relu_kernel", 0.25)], layout, "NVIDIA H100"))
    control = load_trace(trace)
    assert control.parser == "kineto-scan" and control.dur_us == [20.0, 0.25]


def test_a_gzip_that_expands_past_the_cap_stops_there(tmp_path: Path) -> None:
    text = kineto_trace_text([("sgemm_kernel", 20.0)], "compact", "NVIDIA H100")
    padded = text.replace('"traceName": "test"', '"traceName": "' + "x" * (3 * 2**20) + '"')
    bomb = tmp_path / "big.json.gz"
    bomb.write_bytes(gzip.compress(padded.encode(), 9))
    assert bomb.stat().st_size < 2**16  # a small file that expands to 3 MB
    result = runner.invoke(app, ["kernels", "--trace", str(bomb), "--max-trace-mb", "2"])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert f"{str(bomb)!r} expands to more than 2 MB, the cap on a trace's JSON text; raise it with --max-trace-mb" \
        in result.stderr
    assert load_trace(bomb, max_trace_mb=4).dur_us == [20.0]  # control: a cap above its size reads it
    plain = tmp_path / "big.json"
    plain.write_text(padded)
    with pytest.raises(TraceTooLargeError, match="holds more than 2 MB"):
        load_trace(plain, max_trace_mb=2)
    assert load_trace(plain, max_trace_mb=4).dur_us == [20.0]


def test_an_endless_stream_is_read_only_up_to_the_cap() -> None:
    with open("/dev/zero", "rb") as zeros:
        done = subprocess.run([sys.executable, "-m", "detprof.cli", "kernels", "--trace", "/dev/stdin",
                               "--max-trace-mb", "8"], stdin=zeros, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == ("detprof: error: '/dev/stdin' holds more than 8 MB, the cap on a trace's JSON text; "
                                   "raise it with --max-trace-mb MB if the file is a real trace")


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_a_cap_that_is_not_a_positive_size_is_refused(value: str, tmp_path: Path) -> None:
    trace = _event_trace(tmp_path / "t.json")
    result = runner.invoke(app, ["kernels", "--trace", str(trace), "--max-trace-mb", value])
    assert result.exit_code == 2 and "--max-trace-mb" in result.stderr and "is not accepted" in result.stderr
