"""``--compile``: training through torch.compile (Inductor on the CPU, with the C++ compiler), the
deterministic modes with Inductor's deterministic switch, compiled run-to-run and eager against
compiled; and the ablation steps that act only on a GPU or only under --compile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from detprof.backends.torch.switches import apply_toggles
from detprof.cli import app
from detprof.gpus import select_device
from detprof.modes import ABLATION, toggles_for
from detprof.overhead import _sdpa_held_step
from detprof.workload import WorkloadRequest, build_workload

REPO = Path(__file__).resolve().parents[1]
# The transformer is llama-small (8 layers, attention through SDPA): Inductor compiles it cold in
# about 33 s here, gpt2-small's 12 layers in 56 s (a fresh cache each, 2026-12-07); the vocabulary
# is cut to 512 tokens, the layers are the network's own.
TINY = {"small-cnn": ["--batch-size", "4", "--image-size", "16"],
        "llama-small": ["--seq-len", "8", "--batch-size", "1", "--num-classes", "512"]}


def _detprof(*args: str, timeout: float = 900, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "detprof.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, **env})


def _one_line_exit_2(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_without_a_cpp_compiler_compile_is_refused_in_one_line() -> None:
    done = _detprof("check", "--arch", "small-cnn", "--compile", "--gpu", "cpu", CXX="no-such-compiler++")
    _one_line_exit_2(done, "--compile on a CPU needs a C++ compiler for Inductor, and 'no-such-compiler++' is not "
                           "on PATH")
    # the control: with the compiler this machine has, the same request builds
    assert build_workload(WorkloadRequest(arch="small-cnn", compiled=True), select_device("cpu")).compiled


@pytest.mark.parametrize(("args", "message"), [
    (["overhead", "--compile", "--warmup", "0"], "--warmup 0 is not accepted with --compile: the first step compiles"),
    (["check", "--compare", "eager,fast"], "--compare 'eager,fast' is not accepted; use eager,compiled"),
    (["check", "--compare", "eager,compiled", "--locate-op"], "--locate-op records the eager ops of a step"),
    (["check", "--compile", "--locate-op"], "drop --locate-op or --compile"),
    (["check", "--compare", "eager,compiled", "--threads", "1,2"], "--compare changes one factor"),
    (["overhead", "--framework", "tf", "--compile"], "--compile is not available with --framework tf; it works with "
                                                     "PyTorch"),
])
def test_bad_compile_options_exit_2_in_one_line_before_measuring(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, [*args, "--arch", "small-cnn", "--gpu", "cpu"])
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_deterministic_modes_set_inductors_switch_only_when_compiled() -> None:
    import torch._inductor.config as inductor

    try:
        assert apply_toggles(toggles_for("deterministic"), compiled=True)["inductor_deterministic"] is True
        assert inductor.deterministic is True
        # the controls: default turns it off again, and so does the mode that keeps Inductor's autotuning,
        # although use_deterministic_algorithms(True) itself turns Inductor's switch on in recent torch
        assert apply_toggles(toggles_for("default"), compiled=True)["inductor_deterministic"] is False
        kept = apply_toggles(toggles_for("deterministic-inductor-autotune"), compiled=True)
        assert kept["deterministic_algorithms"] is True and kept["inductor_deterministic"] is False
        # an eager job does not report (or import) Inductor
        assert "inductor_deterministic" not in apply_toggles(toggles_for("deterministic"))
    finally:
        apply_toggles(toggles_for("default"), compiled=True)


def test_ablation_steps_say_why_they_are_skipped() -> None:
    steps = {step.mode: step for step in ABLATION}
    assert steps["cublas-workspace-small"].skip_reason(on_gpu=False, compiled=False) == \
        "cuDNN, cuBLAS and TF32 exist only on a GPU"
    assert steps["inductor-deterministic"].skip_reason(on_gpu=True, compiled=False) == \
        "Inductor's switch acts under --compile only"
    assert steps["inductor-deterministic"].skip_reason(on_gpu=True, compiled=True) is None
    assert steps["deterministic"].skip_reason(on_gpu=False, compiled=False) is None


def _ran(default: list[str], deterministic: list[str]) -> Any:
    return {"modes": [{"attention_backends": default}, {"attention_backends": deterministic}]}


def test_the_sdpa_step_holds_default_backend_only_when_the_modes_ran_different_ones() -> None:
    assert _sdpa_held_step(_ran(["efficient"], ["math"])) == ("efficient", None)
    assert _sdpa_held_step(_ran(["flash"], ["flash"]))[1] == ("the deterministic mode ran the same SDPA backend as "
                                                             "default (flash): no switch to separate")
    assert _sdpa_held_step(_ran([], []))[1] == "no scaled-dot-product attention ran in this network"


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(TINY))
def test_compiled_run_to_run_and_eager_against_compiled(arch: str) -> None:
    compiled = _detprof("check", "--arch", arch, *TINY[arch], "--compile", "--steps", "1", "--gpu", "cpu", "--json")
    assert compiled.returncode in (0, 1), compiled.stderr[-2000:]
    document = json.loads(compiled.stdout)
    assert document["workload"]["compiled"] is True and document["differing_factor"] == "none"
    assert [side["compiled"] for side in document["runs"]] == [True, True]
    assert all(side["inductor_deterministic"] is True for side in document["runs"])
    # on a CPU, compiled code runs the same kernels in both processes
    assert document["bitwise_identical"] is True, document["first_divergence"]
    versus = _detprof("check", "--arch", arch, *TINY[arch], "--compare", "eager,compiled", "--steps", "1",
                      "--gpu", "cpu", "--json")
    assert versus.returncode in (0, 1), versus.stderr[-2000:]
    compared = json.loads(versus.stdout)
    assert compared["differing_factor"] == "compile"
    assert [side["compiled"] for side in compared["runs"]] == [False, True]
    # eager and compiled may differ in low bits, never by more than rounding after one step
    assert compared["max_abs_diff"] < 1e-4
    assert compared["bitwise_identical"] == (compared["first_divergence"] is None)
