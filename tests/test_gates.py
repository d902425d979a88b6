"""The reproducibility gates beyond one training (issue 22), each with a passing case and its
negative control: restart replay (``check --restart-at K``), data loading (``check --workers
A,B``) and distributed training (``check --world-size A,B``, ``--bucket-cap-mb A,B``)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from detprof.cli import app

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = REPO / "tests" / "data" / "workloads" / "user_workloads.py"


def _check(*args: str, timeout: float = 600) -> tuple[int, dict[str, object], str]:
    done = subprocess.run([sys.executable, "-m", "detprof.cli", "check", "--gpu", "cpu", *args, "--json"],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)
    return done.returncode, (json.loads(done.stdout) if done.stdout.strip() else {}), done.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--steps", "3", "--restart-at", "3"], "--restart-at 3 is not accepted with --steps 3; use a step from 1 to 2"),
    (["--steps", "3", "--restart-at", "1", "--locate-op"], "--restart-at compares a straight run with a restarted"),
    (["--steps", "3", "--restart-at", "1", "--framework", "tf"], "--restart-at is not available with --framework"),
    (["--restart-at", "1", "--batch-invariance"], "--batch-invariance compares batch sizes in one run"),
    (["--workers", "0,x"], "--workers '0,x' is not accepted; use 0 to 64 worker processes"),
    (["--workers", "0,2", "--threads", "1,2"], "--workers changes one factor, the DataLoader's worker processes"),
    (["--world-size", "0,2"], "--world-size '0,2' is not accepted; use 1 to 16 processes"),
    (["--world-size", "1,2", "--batch-size", "5"], "--batch-size 5 is not accepted with --world-size 2"),
    (["--world-size", "2", "--compile"], "--world-size and --bucket-cap-mb change how one training is distributed"),
    (["--bucket-cap-mb", "0,25"], "--bucket-cap-mb '0,25' is not accepted; use sizes in MiB above 0"),
    (["--batch-invariance", "--world-size", "2"], "--batch-invariance compares batch sizes in one run; drop --world"),
    (["--batch-invariance", "--bucket-cap-mb", "1"], "--batch-invariance compares batch sizes in one run; drop --buck"),
    (["--batch-invariance", "--restart-at", "0"], "--batch-invariance compares batch sizes in one run; drop --resta"),
])
def test_bad_gate_options_exit_2_in_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["check", "--gpu", "cpu", "--arch", "small-cnn", *args])
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_restart_from_detprofs_checkpoint_is_bitwise_invisible() -> None:
    code, document, stderr = _check("--arch", "small-cnn", "--batch-size", "4", "--steps", "4", "--restart-at", "2")
    assert code == 0, stderr
    assert document["differing_factor"] == "restart" and document["restart_at"] == 2
    assert document["bitwise_identical"] is True and document["sensitivity"]["detected"] is True  # type: ignore[index]
    # with dropout, the restart is invisible only because detprof's checkpoint keeps torch's RNG state
    code, document, stderr = _check("--workload", f"{WORKLOADS}:dropout_detprof_checkpoint", "--batch-size", "8",
                                    "--steps", "4", "--restart-at", "2")
    assert code == 0 and document["bitwise_identical"] is True, stderr


@pytest.mark.slow
def test_a_users_checkpoint_that_forgets_the_dropout_rng_fails_the_gate_at_the_step_after_the_restart() -> None:
    code, document, stderr = _check("--workload", f"{WORKLOADS}:dropout_checkpoint_forgets_rng", "--batch-size", "8",
                                    "--steps", "4", "--restart-at", "2")
    assert code == 1, stderr
    divergence = document["first_divergence"]
    assert divergence["step"] == 3 and divergence["parameter"] == "hidden.weight"  # type: ignore[index]
    # the control: the same checkpoint code that also keeps torch's RNG state passes
    code, document, stderr = _check("--workload", f"{WORKLOADS}:dropout_checkpoint_keeps_rng", "--batch-size", "8",
                                    "--steps", "4", "--restart-at", "2")
    assert code == 0 and document["bitwise_identical"] is True, stderr


@pytest.mark.slow
def test_a_dataloader_fed_training_is_the_same_with_zero_and_two_workers() -> None:
    code, document, stderr = _check("--arch", "small-cnn", "--batch-size", "4", "--steps", "3", "--workers", "0,2")
    assert code == 0, stderr
    assert document["differing_factor"] == "workers" and document["loader_workers"] == [0, 2]
    assert document["bitwise_identical"] is True
    # a dataset whose augmentation is seeded by the example's index passes too
    code, document, stderr = _check("--workload", f"{WORKLOADS}:augments_per_example", "--batch-size", "8",
                                    "--steps", "3", "--workers", "0,2")
    assert code == 0 and document["bitwise_identical"] is True, stderr


@pytest.mark.slow
def test_a_dataset_augmenting_from_numpys_global_generator_fails_the_data_loading_gate() -> None:
    code, document, stderr = _check("--workload", f"{WORKLOADS}:augments_from_global_numpy", "--batch-size", "8",
                                    "--steps", "3", "--workers", "0,2")
    assert code == 1, stderr
    assert document["first_divergence"]["step"] == 1 and document["first_divergence"]["loss_differs"] is True  # type: ignore[index]


@pytest.mark.slow
def test_world_sizes_1_and_2_differ_only_in_low_bits_and_2_repeats_itself() -> None:
    code, document, stderr = _check("--arch", "small-cnn", "--batch-size", "4", "--steps", "3", "--world-size", "1,2")
    assert code in (0, 1), stderr
    assert document["differing_factor"] == "world-size" and document["world_sizes"] == [1, 2]
    # the same global batch and mean: whatever differs is the all-reduce's order, in low bits
    assert document["max_abs_diff"] < 1e-5  # type: ignore[operator]
    if not document["bitwise_identical"]:
        assert document["first_divergence"]["step"] >= 1  # type: ignore[index]
    code, document, stderr = _check("--arch", "small-cnn", "--batch-size", "4", "--steps", "3", "--world-size", "2")
    assert code == 0 and document["bitwise_identical"] is True and document["world_sizes"] == [2, 2], stderr


def test_the_gpu_topology_is_what_nvidia_smi_prints_and_nothing_where_it_fails_or_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from detprof.backends.torch.distributed import gpu_topology

    tool = tmp_path / "nvidia-smi"
    matrix = "\tGPU0\tGPU1\nGPU0\t X \tNV18\nGPU1\tNV18\t X "
    tool.write_text(f"#!/bin/sh\n[ \"$1 $2\" = \"topo -m\" ] || exit 9\nprintf '{matrix}\\n'\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu_topology() == matrix.strip()
    tool.write_text("#!/bin/sh\necho 'NVML: driver not loaded' >&2\nexit 1\n")  # control: a failing tool
    assert gpu_topology() is None
    tool.unlink()  # and none at all
    assert gpu_topology() is None


@pytest.mark.slow
def test_the_distributed_gate_explains_a_difference_by_what_was_measured() -> None:
    from detprof.render import render

    code, document, stderr = _check("--arch", "small-cnn", "--bn", "--batch-size", "4", "--steps", "2",
                                    "--world-size", "1,2")
    assert code == 1, stderr
    # BatchNorm's statistics over each replica's share: its buffers differ at step 1, by far more than low bits
    assert document["first_divergence"]["buffer"] == "features.1.running_mean"  # type: ignore[index]
    assert document["max_abs_diff"] > 1e-4  # type: ignore[operator]
    buffer = io.StringIO()
    render("check", document, Console(file=buffer, width=200, color_system=None))
    assert "buffers differ (features.1.running_mean first)" in buffer.getvalue()
    # control: without BatchNorm only the all-reduce's order differs, and that is what is said
    code, document, stderr = _check("--arch", "small-cnn", "--no-bn", "--batch-size", "4", "--steps", "2",
                                    "--world-size", "1,2")
    assert code in (0, 1) and "buffer" not in (document["first_divergence"] or {}), stderr
    buffer = io.StringIO()
    render("check", document, Console(file=buffer, width=200, color_system=None))
    said = "only parameters differ: the all-reduce sums the gradients in another order"
    assert code == 0 or said in buffer.getvalue()


@pytest.mark.slow
def test_gradient_accumulation_repeats_itself_and_one_against_four_micro_batches_differs() -> None:
    # passing case: the same accumulation run to run (no BatchNorm: its statistics would change by design)
    code, document, stderr = _check("--arch", "small-cnn", "--no-bn", "--batch-size", "8", "--steps", "3",
                                    "--accumulate", "2")
    assert code == 0, stderr
    assert document["differing_factor"] == "none" and document["accumulation"] == [2, 2]
    assert document["bitwise_identical"] is True and document["sensitivity"]["detected"] is True  # type: ignore[index]
    # negative control: one backward over the batch against four over its quarters sums in another order
    code, document, stderr = _check("--arch", "small-cnn", "--no-bn", "--batch-size", "8", "--steps", "3",
                                    "--accumulate", "1,4")
    assert code == 1, stderr
    assert document["differing_factor"] == "accumulate" and document["accumulation"] == [1, 4]
    assert document["bitwise_identical"] is False
    assert 0 < document["max_abs_diff"] < 1e-4  # type: ignore[operator]  # rounding, not another computation
