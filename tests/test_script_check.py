"""``detprof check --script train.py [-- ARGS]``: the user's own training script, run twice in new
interpreters and watched through torch's global optimizer step hooks. A plain loop passes and its
unseeded-shuffle twin fails at step 1 (the negative control); Lightning and Hugging Face Trainer
scripts pass where those packages are installed; bad scripts exit 2 in one line."""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from detprof.backends.torch.script import parameter_names
from detprof.cli import app

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "scripts"
SCRIPTS = REPO / "tests" / "data" / "scripts"



def error_after_stages(stderr: str) -> str:
    """The one error line of a script that failed after it started: off a terminal, the runs' stage
    lines ("check 0 s: run A: ...") come first, and nothing else."""
    *stages, error = stderr.strip().splitlines()
    assert all(re.match(r"check( \[\d+/\d+\])? \d+ s: run [AB]", line) for line in stages), stages
    return error

def _check(*args: str, timeout: float = 600) -> tuple[int, dict, str]:
    done = subprocess.run([sys.executable, "-m", "detprof.cli", "check", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
    json_output = "--json" in args
    return done.returncode, (json.loads(done.stdout) if json_output and done.stdout.strip() else {}), \
        done.stderr if json_output else done.stdout + done.stderr


@pytest.mark.slow
def test_a_seeded_plain_loop_is_bitwise_identical_and_its_arguments_reach_it() -> None:
    # one epoch of batches of 64 is 8 steps: the script ends by itself before --steps 20
    code, document, stderr = _check("--script", str(EXAMPLES / "train_loop.py"), "--steps", "20", "--json", "--",
                                    "--epochs", "1", "--batch-size", "64")
    assert code == 0, stderr
    assert document["bitwise_identical"] is True and document["max_abs_diff"] == 0.0
    assert document["mode"] == "as-is" and document["differing_factor"] == "none"
    script = document["script"]
    assert script["arguments"] == ["--epochs", "1", "--batch-size", "64"]
    assert script["steps_taken"] == [8, 8] and script["ended"] == ["returned", "returned"]
    assert script["parameters_tracked"] == 4 and script["optimizers"] == 1
    assert document["sensitivity"] == {"change": "one ulp", "step": 1, "parameter": "0.weight", "detected": True}
    # --steps stops the script: the default two epochs of batches of 32 would be 32 steps
    code, document, stderr = _check("--script", str(EXAMPLES / "train_loop.py"), "--steps", "3", "--json")
    assert code == 0 and document["script"]["steps_taken"] == [3, 3], stderr
    assert document["script"]["ended"] == ["steps", "steps"]


@pytest.mark.slow
def test_an_unseeded_shuffle_differs_from_step_1_and_locate_op_finds_where_the_difference_enters() -> None:
    code, document, stderr = _check("--script", str(EXAMPLES / "train_loop.py"), "--steps", "4", "--locate-op",
                                    "--json", "--", "--shuffle", "unseeded")
    assert code == 1, stderr
    assert document["bitwise_identical"] is False and document["max_abs_diff"] > 0
    divergence = document["first_divergence"]
    assert divergence["step"] == 1 and divergence["parameter"] == "0.weight"
    op = divergence["op"]
    # the indices come from Python's random module, outside PyTorch: the first op fed them differs
    assert op["kind"] == "input-differs" and op["op"] == "aten::lift_fresh", op  # the index list made a tensor
    assert divergence["ops_recorded"] > 10
    code, _, text = _check("--script", str(EXAMPLES / "train_loop.py"), "--steps", "2", "--", "--shuffle", "unseeded")
    assert code == 1 and "not identical" in text and "first divergent step" in text, text


@pytest.mark.slow
def test_a_script_with_two_optimizers_that_ends_by_itself_is_compared_over_every_step() -> None:
    code, document, stderr = _check("--script", str(SCRIPTS / "two_optimizers.py"), "--threads", "1", "--json")
    assert code == 0, stderr
    assert document["bitwise_identical"] is True
    assert document["script"]["optimizers"] == 2 and document["script"]["steps_taken"] == [6, 6]
    assert document["script"]["parameters_tracked"] == 8
    assert [side["threads"] for side in document["runs"]] == [1, 1]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("lightning") is None, reason="needs lightning")
def test_a_lightning_script_is_bitwise_identical() -> None:
    code, document, stderr = _check("--script", str(EXAMPLES / "train_lightning.py"), "--steps", "6", "--json")
    assert code == 0, stderr
    assert document["bitwise_identical"] is True and document["script"]["steps_taken"] == [6, 6]
    assert document["sensitivity"]["parameter"] == "net.0.weight" and document["sensitivity"]["detected"]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("transformers") is None or importlib.util.find_spec("accelerate") is None,
                    reason="needs transformers and accelerate")
def test_a_hugging_face_trainer_script_is_bitwise_identical() -> None:
    code, document, stderr = _check("--script", str(EXAMPLES / "train_hf_trainer.py"), "--steps", "4", "--json")
    assert code == 0, stderr
    assert document["bitwise_identical"] is True and document["script"]["steps_taken"] == [4, 4]
    assert document["sensitivity"]["parameter"] == "transformer.wte.weight", document["sensitivity"]


@pytest.mark.slow
@pytest.mark.parametrize(("script", "message"), [
    ("never_steps.py", "ran to its end without an optimizer step"),
    ("fails.py", "failed after step 2 (run A): ValueError: the data folder /no/such/folder is empty"),
    ("exits_early.py", "ended before its first optimizer step with exit 0 and no word from detprof's hooks"),
])
def test_a_script_that_cannot_be_checked_exits_2_in_one_line_with_its_own_error(script: str, message: str) -> None:
    code, document, stderr = _check("--script", str(SCRIPTS / script), "--json")
    assert code == 2 and message in error_after_stages(stderr), stderr
    assert message in document["error"]["message"]


@pytest.mark.parametrize(("args", "message"), [
    (["--script", "no/such/train.py"], "--script 'no/such/train.py': no such file"),
    (["--arch", "small-cnn", "--", "--lr", "1"], "arguments after -- go to a --script"),
    (["--script", str(SCRIPTS / "fails.py"), "--arch", "small-cnn"], "--script runs your script as it is; drop --arch"),
    (["--script", str(SCRIPTS / "fails.py"), "--compare", "eager,compiled"], "drop --compare"),
    (["--script", str(SCRIPTS / "fails.py"), "--mode", "no-such-mode"], "no-such-mode"),
    (["--script", str(SCRIPTS / "fails.py"), "--threads", "1,99"], "--threads '1,99' is not accepted"),
    (["--script", str(SCRIPTS)], "is a folder; give the path of a Python training script in it"),
    (["--script", str(SCRIPTS / "fails.py"), "--gpu", "cuda"], "drop --gpu"),
    (["--script", str(SCRIPTS / "fails.py"), "--framework", "tf"], "--script is not available with --framework"),
    (["--script", str(SCRIPTS / "fails.py"), "--timeout", "0"], "--timeout 0 is not accepted"),
])
def test_bad_script_options_exit_2_in_one_line_before_anything_runs(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["check", *args])
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_parameters_are_named_by_the_module_that_holds_most_of_them() -> None:
    inner = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    outer = torch.nn.ModuleDict({"body": inner})
    stray = torch.nn.Parameter(torch.zeros(5))
    names, model = parameter_names([*inner.parameters(), stray], ["a", "b", "c", "d", "the stray one"])
    # the outer wrapper holds as many as the inner one and names them in full
    assert model is outer and names[:4] == ["body.0.weight", "body.0.bias", "body.1.weight", "body.1.bias"]
    assert names[4] == "the stray one"
    # control: without the wrapper, the inner module's own names
    del outer, model
    gc.collect()
    names, model = parameter_names(list(inner.parameters()), ["a", "b", "c", "d"])
    assert model is inner and names[0] == "0.weight"


@pytest.mark.slow
def test_each_run_draws_its_own_hash_seed_so_a_set_ordered_vocabulary_fails() -> None:
    code, document, stderr = _check("--script", str(SCRIPTS / "hash_order.py"), "--json")
    assert code == 1 and document["first_divergence"]["step"] == 1, stderr
    assert document["first_divergence"]["loss_differs"] is True  # the loss is compared too
    seeds = document["script"]["pythonhashseeds"]
    assert seeds[0] != seeds[1]
    # control: the sorted vocabulary does not depend on string hashes
    code, document, stderr = _check("--script", str(SCRIPTS / "hash_order.py"), "--json", "--", "--sorted")
    assert code == 0 and document["verdict"] == "identical", stderr


@pytest.mark.slow
def test_a_loop_that_updates_its_weights_itself_is_watched_through_detprof_step() -> None:
    code, document, stderr = _check("--script", str(SCRIPTS / "manual_update.py"), "--json")
    assert code == 0 and document["verdict"] == "identical" and document["script"]["steps_taken"] == [4, 4], stderr
    code, document, stderr = _check("--script", str(SCRIPTS / "manual_update.py"), "--json", "--", "--unseeded")
    assert code == 1 and document["first_divergence"]["step"] == 1, stderr  # the negative control
    code, document, stderr = _check("--script", str(SCRIPTS / "manual_update.py"), "--json", "--", "--no-marker")
    assert code == 2 and "detprof.step(model)" in stderr and "its output is kept in" in stderr


@pytest.mark.slow
def test_steps_are_counted_per_process_and_per_thread() -> None:
    code, document, stderr = _check("--script", str(SCRIPTS / "forks_a_child.py"), "--steps", "5", "--json")
    assert code == 0 and document["script"]["steps_taken"] == [5, 5], stderr
    assert document["script"]["child_steps"] == [2, 2]
    code, document, stderr = _check("--script", str(SCRIPTS / "two_threads.py"), "--json")
    assert code == 0 and document["verdict"] == "identical", stderr
    assert document["script"]["steps_taken"] == [6, 6] and document["script"]["optimizers"] == 2


@pytest.mark.slow
def test_a_dead_weak_proxy_is_not_the_scripts_error_and_an_empty_optimizer_is_refused() -> None:
    code, document, stderr = _check("--script", str(SCRIPTS / "dead_weak_proxy.py"), "--json")
    assert code == 0 and document["verdict"] == "identical", stderr
    code, document, stderr = _check("--script", str(SCRIPTS / "empty_optimizer.py"), "--json")
    assert code == 2 and "steps an optimizer that holds no parameters" in error_after_stages(stderr)


@pytest.mark.slow
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")
def test_a_script_pinning_its_own_threads_cannot_pass_a_thread_gate() -> None:
    code, document, stderr = _check("--script", str(SCRIPTS / "pins_threads.py"), "--threads", "1,2", "--json")
    assert code == 3 and document["verdict"] == "inconclusive", stderr
    assert [side["threads_run"] for side in document["runs"]] == [[2], [2]]
    assert document["script"]["switch_calls"][0] == ["torch.set_num_threads(2)"]
    # its BatchNorm buffers are hashed beside the parameters
    assert document["script"]["buffers_tracked"] == 3


@pytest.mark.slow
def test_locate_op_at_step_1_names_the_module_the_scripts_line_and_a_random_ops_generator() -> None:
    code, document, stderr = _check("--script", str(SCRIPTS / "noise_in_a_module.py"), "--steps", "2", "--locate-op",
                                    "--json")
    assert code == 1, stderr
    op = document["first_divergence"]["op"]
    assert document["first_divergence"]["step"] == 1
    assert op["op"] == "aten::randn.generator" and op["module"] == "body.noise (Noise)" and op["random"] is True
    assert op["source"] == "noise_in_a_module.py:12 forward" and op["kind"] == "root-cause"
    # control: an op fed a value made outside PyTorch is not called random, and has no module
    code, document, stderr = _check("--script", str(EXAMPLES / "train_loop.py"), "--steps", "2", "--locate-op",
                                    "--json", "--", "--shuffle", "unseeded")
    op = document["first_divergence"]["op"]
    assert code == 1 and "random" not in op and op["module"] is None and op["source"].startswith("train_loop.py:")


@pytest.mark.slow
def test_a_mode_holds_unless_the_script_changes_a_switch_the_mode_set() -> None:
    # TF32 is left as PyTorch has it by the deterministic mode: a script setting it does not break the mode
    code, document, stderr = _check("--script", str(SCRIPTS / "sets_switches.py"), "--mode", "deterministic", "--json")
    assert code == 0 and document["verdict"] == "identical", (stderr, document.get("verdict_reasons"))
    # cuDNN's autotuning is one the mode turns off: switched back on, the mode did not hold
    code, document, stderr = _check("--script", str(SCRIPTS / "sets_switches.py"), "--mode", "deterministic", "--json",
                                    "--", "--benchmark")
    assert code == 3 and document["verdict"] == "inconclusive", stderr
    assert "cudnn_benchmark was True after step 1 (the mode set False)" in document["verdict_reasons"][0]


@pytest.mark.slow
def test_records_written_by_the_script_itself_are_never_taken_for_the_watchs() -> None:
    code, document, stderr = _check("--script", str(SCRIPTS / "forges_records.py"), "--json")
    assert code == 2 and "were not written by detprof's watch" in error_after_stages(stderr), stderr


@pytest.mark.slow
def test_weights_that_already_differ_before_the_first_step_are_step_0() -> None:
    code, document, stderr = _check("--script", str(SCRIPTS / "unseeded_init.py"), "--locate-op", "--json")
    assert code == 1 and document["first_divergence"]["step"] == 0, stderr
    assert "op" not in document["first_divergence"]  # no step to record: the difference came before it
    code, _, text = _check("--script", str(SCRIPTS / "unseeded_init.py"))
    assert "0: the weights already differ before the first step" in text
