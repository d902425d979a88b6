"""A check run's spec crosses the process boundary as one typed record (detprof.check.spec): what
the parent writes the child reads back whole, and a misspelt field fails loudly there instead of
reading as None (which would make a gate compare two identical runs and pass)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detprof.check.spec import CheckSideSpec, SpecError
from detprof.gpus import select_device
from detprof.modes import toggles_for
from detprof.workload import WorkloadRequest, build_workload


def _spec(**more: object) -> CheckSideSpec:
    # default mode: the trainer runs in this test's process here, and a mode's switches are global
    # (deterministic algorithms left on would change what later tests in this process dispatch)
    workload = build_workload(WorkloadRequest(arch="small-cnn", batch_size=4), select_device("cpu"))
    return CheckSideSpec(workload, "default", toggles_for("default").as_dict(), "cpu", 1, 0, 1,
                         **more)  # type: ignore[arg-type]


def test_a_spec_written_as_json_reads_back_equal() -> None:
    spec = _spec(gates={"loader_workers": 2, "accumulation": 4}, batch_sizes=(1, 8))
    assert CheckSideSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_a_misspelt_field_or_gate_field_fails_loudly() -> None:
    raw = _spec().to_json()
    with pytest.raises(SpecError, match="unknown field.*loader_workers"):
        CheckSideSpec.from_json({**raw, "loader_workers": 2})  # a gate field outside ``gates``
    with pytest.raises(SpecError, match="no gate sets loader_worker"):
        CheckSideSpec.from_json({**raw, "gates": {"loader_worker": 2}})
    assert CheckSideSpec.from_json({**raw, "gates": {"loader_workers": 2}}).gate("loader_workers") == 2  # control


@pytest.fixture()
def switches_restored() -> object:
    """The trainer runs in this process here: put torch's global switches back as they were after it."""
    import torch

    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.get_num_threads())
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[2], before[3]
    torch.set_num_threads(before[4])


@pytest.mark.usefixtures("switches_restored")
def test_the_check_process_refuses_a_spec_with_a_field_it_does_not_know(tmp_path: Path) -> None:
    from detprof.backends.torch.trainer import train_and_record

    out = tmp_path / "result.json"
    assert train_and_record({**_spec().to_json(), "world_sise": 2}, str(out)) == 1
    assert "SpecError" in json.loads(out.read_text())["error"] and "world_sise" in json.loads(out.read_text())["error"]
    # control: the same spec, well spelt, trains its step and records it
    assert train_and_record(_spec().to_json(), str(out)) == 0
    assert len(json.loads(out.read_text())["steps"]) == 1
