"""detprof.shapes: a document read back is the TypedDict it claims to be, or says why not."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest

from detprof.documents import CheckRunResult, JobResult, StabilityRunSpec
from detprof.shapes import ShapeError, require_shape, shape_problem


class Step(TypedDict):
    loss: str
    params: dict[str, str]


class Run(TypedDict, total=False):
    steps: list[Step]
    threads: int | None
    ratio: float
    note: Any


def test_known_answers_name_the_first_field_that_is_wrong() -> None:
    good: dict[str, Any] = {"steps": [{"loss": "0x1", "params": {"w": "ab"}}], "threads": None, "ratio": 1,
                            "note": object()}
    assert shape_problem(good, Run) is None  # an int where a float is declared, None in a union, Any
    assert shape_problem({**good, "thread": 2}, Run) == "it has the field 'thread', which a Run does not have"
    assert shape_problem({"steps": [{"loss": "0x1"}]}, Run) == ("it lacks the field 'steps[0].params', which a "
                                                                "Step requires")
    assert shape_problem({"steps": [{"loss": "0x1", "params": {"w": 3}}]}, Run) == "steps[0].params.w is int, not str"
    assert shape_problem({"threads": True}, Run) == "threads is bool, not int or NoneType"  # a bool is no count
    assert shape_problem({"ratio": "1.0"}, Run) == "ratio is str, not float"
    assert shape_problem([1], Run) == "it is list, not an object"
    with pytest.raises(ShapeError, match="the result is not a Run: it has the field 'x'"):
        require_shape({"x": 1}, Run, "the result")
    require_shape(good, Run, "the result")  # control: nothing raised


def test_a_not_required_field_may_be_absent_under_future_annotations() -> None:
    from detprof.store.schema import RunRecord

    run = {"created_at": "t", "kind": "overhead", "arch": "a", "framework": "pytorch", "device_kind": "cpu",
           "device_name": "cpu", "modes": ["default", "deterministic"], "command": "c", "config": {},
           "environment": {}, "summary": {}}
    assert shape_problem(run, RunRecord) is None  # uid is NotRequired: drawn when absent
    assert shape_problem({**run, "uid": "ab"}, RunRecord) is None
    assert shape_problem({**run, "uid": 3}, RunRecord) == "uid is int, not str"
    assert shape_problem({k: v for k, v in run.items() if k != "kind"}, RunRecord) == (
        "it lacks the field 'kind', which a RunRecord requires")


def test_the_declared_results_accept_what_their_writers_write() -> None:
    assert shape_problem({"document_version": 3, "status": "ok", "step_ms": [1.5, 2], "peak_mem_bytes": 10,
                          "gpu_monitor": None, "environment": {"threads": 2}}, JobResult) is None
    assert shape_problem({"steps": [{"loss": "x"}], "initial": None, "ulp_control": None, "gpu_topology": None,
                          "nccl_environment": {}}, CheckRunResult) is None
    assert "peak_mem_byte'" in (shape_problem({"peak_mem_byte": 1}, JobResult) or "")


def test_a_stability_run_refuses_a_misspelt_spec_before_it_trains(tmp_path: Any) -> None:
    from detprof.backends.torch.stability_train import train_to_dir

    spec: dict[str, Any] = {"task": "digits", "data_dir": None, "target": None, "recipe": {}, "seeds": {},
                            "toggles": {}, "device": "cpu", "gpu_uuid": None, "threads": 1}
    assert shape_problem(spec, StabilityRunSpec) is None  # control: the spec as the experiment writes it
    with pytest.raises(ShapeError, match="it has the field 'thread', which a StabilityRunSpec does not have"):
        train_to_dir({**spec, "thread": 1}, str(tmp_path / "run0" / "result.json"))  # type: ignore[typeddict-unknown-key]
    assert not (tmp_path / "run0").exists()


def test_a_watched_runs_records_are_read_as_watch_records_and_a_misspelt_one_is_named(tmp_path: Any) -> None:
    import json

    from detprof.documents import WatchRecord
    from detprof.process.results import read_records

    lines = [{"started": 1.5, "threads": 1, "torch": "2.13.0", "switches_set": {}, "watch": "s"},
             {"step": 1, "key": "opt0", "names": ["w"], "params": ["ab"], "loss": "0x1.0p+0", "watch": "s"},
             {"ended": "returned", "steps": 1, "error": None, "exit_code": 0, "watch": "s"}]
    path = tmp_path / "steps.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    records, forged = read_records(path, "s", WatchRecord)  # control: what the watch writes is read whole
    assert forged == 0 and [r.get("step") for r in records] == [None, 1, None]
    path.write_text(path.read_text() + json.dumps({"step": 2, "parms": ["cd"], "watch": "s"}) + "\n")
    with pytest.raises(ShapeError, match="it has the field 'parms', which a WatchRecord does not have"):
        read_records(path, "s", WatchRecord)
