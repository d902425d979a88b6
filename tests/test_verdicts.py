"""A check that could not have seen a difference never passes (issue 28): NaN and infinities,
buffers beside parameters, numpy's global state in forked runs, a mode the code under test switches
off, an audit of more than one step, and the data-loading gate comparing only what it varies. Each
cause has a case whose answer is known by construction and its negative control; the comparisons
themselves are tested on arrays made to the bit."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detprof.check.compare import first_divergence, max_abs_diff, nonfinite_steps, states_bitwise_equal
from detprof.check.verdict import conclude_check
from detprof.check.verdict_kinds import outcome_of
from detprof.cli import app
from tests.verdict_runs import MODELS, SMALL, WORKLOADS, invoke, runner


def test_a_nan_beside_a_difference_is_a_difference_of_infinite_size() -> None:
    a = {"stat": np.array([np.nan, 0.25], dtype=np.float32)}
    b = {"stat": np.array([np.nan, 0.75], dtype=np.float32)}
    assert max_abs_diff(a, b) == 0.5 and not states_bitwise_equal(a, b)  # the NaN hides nothing
    b_nan_elsewhere = {"stat": np.array([0.0, 0.25], dtype=np.float32)}
    assert max_abs_diff(a, b_nan_elsewhere) == math.inf and not states_bitwise_equal(a, b_nan_elsewhere)
    # control: the same bits, NaN included, are equal and 0 apart
    assert states_bitwise_equal(a, {"stat": a["stat"].copy()}) and max_abs_diff(a, {"stat": a["stat"].copy()}) == 0.0


def test_signed_zeros_and_nan_payloads_are_different_bits() -> None:
    zero = {"w": np.array([0.0], dtype=np.float32)}
    negative_zero = {"w": np.array([-0.0], dtype=np.float32)}
    assert not states_bitwise_equal(zero, negative_zero) and max_abs_diff(zero, negative_zero) == 0.0
    quiet = np.array([np.nan], dtype=np.float32)
    payload = quiet.view(np.uint32).copy()
    payload[0] |= 1
    assert not states_bitwise_equal({"w": quiet}, {"w": payload.view(np.float32)})


def test_buffers_are_compared_at_every_step_and_named_when_only_they_differ() -> None:
    run = {"parameters": ["w"], "buffers": ["bn.running_mean"],
           "steps": [{"loss": "0x1p+0", "params": ["p1"], "buffers": ["b1"]}]}
    other = {**run, "steps": [{"loss": "0x1p+0", "params": ["p1"], "buffers": ["b2"]}]}
    found = first_divergence(run, other)
    assert found is not None and found["step"] == 1 and found["parameter"] == "bn.running_mean"
    assert found["buffer"] == "bn.running_mean" and found["parameters_differing"] == 0
    assert first_divergence(run, run) is None  # control


def test_initial_weights_that_differ_are_step_0() -> None:
    run = {"parameters": ["w"], "initial": {"params": ["i1"]}, "steps": [{"loss": "0x1p+0", "params": ["p1"]}]}
    other = {**run, "initial": {"params": ["i2"]}}
    assert first_divergence(run, other)["step"] == 0  # type: ignore[index]
    assert first_divergence(run, {**run}) is None


def _run(loss: str = "0x1p+0", nonfinite: list[str] | None = None, threads: int = 1) -> dict[str, Any]:
    return {"parameters": ["w"], "steps": [{"loss": loss, "params": ["p"], "nonfinite": nonfinite or [],
                                            "threads": threads}]}


DETECTED = {"change": "one ulp", "step": 1, "parameter": "w", "detected": True}


def test_an_identical_comparison_is_inconclusive_for_each_reason_it_could_not_have_seen() -> None:
    assert conclude_check(True, [_run(), _run()], DETECTED, "deterministic") == ("identical", [])  # control
    verdict, reasons = conclude_check(True, [_run(), _run()], {**DETECTED, "detected": False}, "deterministic")
    assert verdict == "inconclusive" and "not detected" in reasons[0]
    assert conclude_check(True, [_run(), _run()], None, "deterministic")[0] == "inconclusive"
    verdict, reasons = conclude_check(True, [_run(loss="nan"), _run(loss="nan")], DETECTED, "deterministic")
    assert verdict == "inconclusive" and "the loss was nan" in reasons[0]
    verdict, reasons = conclude_check(True, [_run(nonfinite=["w"]), _run()], DETECTED, "deterministic")
    assert verdict == "inconclusive" and "NaN or an infinity (w)" in reasons[0]
    verdict, reasons = conclude_check(True, [_run(threads=2), _run(threads=2)], DETECTED, "deterministic", (1, 2))
    assert verdict == "inconclusive" and "the factor did not differ" in reasons[0]
    assert conclude_check(True, [_run(threads=1), _run(threads=2)], DETECTED, "deterministic", (1, 2))[0] == \
        "identical"
    changed = {**_run(), "switches_set": {"deterministic_algorithms": True}}
    changed["steps"][0]["switches_changed"] = {"deterministic_algorithms": [True, False]}
    verdict, reasons = conclude_check(True, [changed, _run()], DETECTED, "deterministic")
    assert verdict == "inconclusive" and "mode deterministic did not hold" in reasons[0]
    # a difference found is a difference, whatever else: NaN reasons are not attached to it
    assert conclude_check(False, [_run(loss="nan"), _run()], DETECTED, "deterministic") == ("not identical", [])


def test_inconclusive_exits_3_and_is_not_a_pass() -> None:
    assert outcome_of("check", {"verdict": "inconclusive", "bitwise_identical": True})[0] == 3
    assert outcome_of("check", {"verdict": "identical", "bitwise_identical": True})[0] == 0
    assert outcome_of("check", {"bitwise_identical": True}) == (0, "bitwise identical")  # stored before verdicts


def test_a_nonfinite_step_is_found_by_its_loss_or_its_tensors() -> None:
    assert nonfinite_steps(_run(loss="0x1p+0,inf")) == {"step": 1, "loss": "inf", "tensors": []}
    assert nonfinite_steps(_run()) is None


@pytest.mark.slow
def test_nan_and_infinite_values_never_pass_and_noise_beside_a_nan_is_caught() -> None:
    # a NaN in a buffer beside fresh noise: the noise is a difference
    code, doc = invoke("check", "--model", f"{MODELS}:nan_beside_noise_net", *SMALL, "--steps", "2")
    assert code == 1 and doc["verdict"] == "not identical" and doc["first_divergence"]["buffer"] == "1.stat"
    assert 0 < doc["max_abs_diff"] < 1
    # the same NaN beside a constant: identical bits, but a check cannot vouch for a NaN
    code, doc = invoke("check", "--model", f"{MODELS}:nan_beside_constant_net", *SMALL, "--steps", "2")
    assert code == 3 and doc["verdict"] == "inconclusive" and doc["bitwise_identical"] is True
    # a NaN loss: every weight NaN after step 1, the 1-ulp control not detected
    code, doc = invoke("check", "--model", f"{MODELS}:nan_loss_net", *SMALL, "--steps", "2")
    assert code == 3 and doc["verdict"] == "inconclusive" and doc["sensitivity"]["detected"] is False
    assert any("the loss was nan" in reason for reason in doc["verdict_reasons"])
    # control: a finite factor in the same place passes
    code, doc = invoke("check", "--model", f"{MODELS}:finite_loss_net", *SMALL, "--steps", "2")
    assert code == 0 and doc["verdict"] == "identical" and doc["verdict_reasons"] == []
    text = runner.invoke(app, ["check", "--model", f"{MODELS}:nan_loss_net", *SMALL, "--steps", "1"]).stdout
    assert "inconclusive" in text and "the loss was nan" in text, text


@pytest.mark.slow
def test_each_run_starts_from_fresh_numpy_state_as_a_new_interpreter_would(tmp_path: Path) -> None:
    code, doc = invoke("check", "--model", f"{MODELS}:global_numpy_noise_net", *SMALL, "--steps", "2")
    assert code == 1 and doc["first_divergence"]["step"] == 1 and doc["first_divergence"]["loss_differs"] is True
    code, doc = invoke("check", "--model", f"{MODELS}:seeded_numpy_noise_net", *SMALL, "--steps", "2")
    assert code == 0 and doc["verdict"] == "identical"  # control: numpy seeded by the model's own code
    # overhead's repeats of one mode, forked alike, are not called identical either
    code, doc = invoke("overhead", "--model", f"{MODELS}:global_numpy_noise_net", *SMALL, "--repeats", "2",
                       "--steps", "2", "--warmup", "1", "--precision", "0", "--db", str(tmp_path / "r.sqlite"))
    deterministic = {mode["mode"]: mode for mode in doc["modes"]}["deterministic"]
    assert deterministic["bitwise_identical_across_repeats"] is False
    assert deterministic["determinism"] == "differs across repeats"
    # and the data-loading gate at 0 workers in both runs: the dataset's numpy noise differs run to run
    code, doc = invoke("check", "--gpu", "cpu", "--workload", f"{WORKLOADS}:augments_from_global_numpy",
                       "--batch-size", "8", "--steps", "2", "--workers", "0,0")
    assert code == 1 and doc["first_divergence"]["step"] == 1


@pytest.mark.slow
def test_a_step_that_turns_determinism_off_is_reported_as_what_it_is() -> None:
    code, doc = invoke("check", "--model", f"{MODELS}:turns_determinism_off_net", *SMALL, "--steps", "2")
    assert code == 3 and doc["verdict"] == "inconclusive"
    assert any("mode deterministic did not hold" in reason and "use_deterministic_algorithms(False)" in reason
               for reason in doc["verdict_reasons"])
    code, doc = invoke("audit", "--model", f"{MODELS}:turns_determinism_off_net", *SMALL, "--steps", "1")
    assert code == 1 and doc["fully_deterministic"] is False
    assert doc["switched_off"]["step"] == 1
    assert [op["op"] for op in doc["nondeterministic_ops"]] == ["max_unpooling2d_forward_out"]  # still asked
    # control: a step that sets the switch as the mode has it holds
    code, doc = invoke("check", "--model", f"{MODELS}:keeps_determinism_on_net", *SMALL, "--steps", "2")
    assert code == 0 and doc["verdict"] == "identical"
    code, doc = invoke("audit", "--model", f"{MODELS}:keeps_determinism_on_net", *SMALL, "--steps", "1")
    assert code == 0 and doc["switched_off"] is None


@pytest.mark.slow
def test_overhead_reports_a_mode_the_workload_switched_off(tmp_path: Path) -> None:
    code, doc = invoke("overhead", "--model", f"{MODELS}:keeps_determinism_on_net", *SMALL, "--modes",
                       "default,deterministic", "--repeats", "2", "--steps", "2", "--warmup", "1",
                       "--profile-steps", "0", "--db", str(tmp_path / "r.sqlite"))
    determinism = {mode["mode"]: mode["determinism"] for mode in doc["modes"]}
    # the workload turns deterministic algorithms on in default mode: default is not as set
    assert determinism["default"].startswith("not as set: the workload changed deterministic_algorithms False -> True")
    assert not determinism["deterministic"].startswith("not as set")  # control: the mode it keeps


@pytest.mark.slow
def test_the_audit_covers_as_many_steps_as_asked() -> None:
    code, doc = invoke("audit", "--model", f"{MODELS}:unpool_from_step_2_net", *SMALL, "--steps", "2")
    assert code == 1 and doc["steps_audited"] == 2 and len(doc["ops_per_step"]) == 2
    [op] = doc["nondeterministic_ops"]
    assert op["steps"] == [2] and op["count"] == 1
    code, doc = invoke("audit", "--model", f"{MODELS}:unpool_from_step_2_net", *SMALL, "--steps", "1")
    assert code == 0 and doc["steps_audited"] == 1  # control: step 1 alone does not reach the op
    text = runner.invoke(app, ["audit", "--model", f"{MODELS}:unpool_from_step_2_net", *SMALL, "--steps", "1"]).stdout
    assert "an op the training first takes later is not covered" in text


@pytest.mark.slow
def test_the_data_loading_gate_compares_only_the_worker_count_across_epochs() -> None:
    # 64 examples in batches of 8: step 9 starts the second epoch, where a persistent loader used to
    # shuffle differently from a 0-worker one
    code, doc = invoke("check", "--gpu", "cpu", "--workload", f"{WORKLOADS}:plain_dataset", "--batch-size", "8",
                       "--steps", "12", "--workers", "0,2")
    assert code == 0 and doc["verdict"] == "identical", doc
    # control: the dataset that draws from numpy's global generator still fails, at step 1
    code, doc = invoke("check", "--gpu", "cpu", "--workload", f"{WORKLOADS}:augments_from_global_numpy",
                       "--batch-size", "8", "--steps", "2", "--workers", "0,2")
    assert code == 1 and doc["first_divergence"]["step"] == 1


@pytest.mark.slow
def test_a_thread_left_running_by_user_code_does_not_hold_a_finished_run(tmp_path: Path) -> None:
    # with the thread joined at exit, each run would wait out the timeout and fail instead of passing
    code, doc = invoke("check", "--model", f"{MODELS}:leaves_a_thread_running_net", *SMALL, "--steps", "2",
                       "--timeout", "60")
    assert code == 0 and doc["verdict"] == "identical"
    code, doc = invoke("overhead", "--model", f"{MODELS}:leaves_a_thread_running_net", *SMALL, "--repeats", "2",
                       "--steps", "2", "--warmup", "1", "--precision", "0", "--job-timeout", "60", "--db",
                       str(tmp_path / "r.sqlite"))
    assert [mode["repeats_ok"] for mode in doc["modes"]] == [2, 2]


@pytest.mark.slow
def test_a_job_that_kills_the_fork_server_costs_nothing_but_a_new_server(tmp_path: Path) -> None:
    for _ in range(2):  # the server dies in the probe, in run A and in run B: each time a new one serves
        code, doc = invoke("check", "--model", f"{MODELS}:kills_its_parent_net", *SMALL, "--steps", "2")
        assert code == 0 and doc["verdict"] == "identical"
    code, doc = invoke("overhead", "--model", f"{MODELS}:kills_its_parent_net", *SMALL, "--repeats", "2",
                       "--steps", "2", "--warmup", "1", "--precision", "0", "--db", str(tmp_path / "r.sqlite"))
    assert [mode["repeats_ok"] for mode in doc["modes"]] == [2, 2]


@pytest.mark.slow
def test_a_module_with_extra_state_is_checked_with_it(tmp_path: Path) -> None:
    code, doc = invoke("check", "--model", f"{MODELS}:extra_state_net", *SMALL, "--steps", "2")
    assert code == 0 and doc["verdict"] == "identical"
    code, doc = invoke("overhead", "--model", f"{MODELS}:extra_state_net", *SMALL, "--repeats", "2",
                       "--steps", "2", "--warmup", "1", "--precision", "0", "--db", str(tmp_path / "r.sqlite"))
    assert [mode["repeats_ok"] for mode in doc["modes"]] == [2, 2]
