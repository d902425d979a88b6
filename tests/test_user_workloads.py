"""``--workload MODULE:FUNCTION``: a user's own training step (model, batch maker, loss) wherever a
zoo arch is accepted. The broken workloads are each broken in one way, and each must be refused in
one line with exit 2 before anything is measured; the working ones train through the same paths as
the zoo's networks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from detprof.backends.torch.training import build_training, concatenated, example_count
from detprof.backends.torch.user_workload import describe_batch, load_user_workload
from detprof.cli import app
from detprof.gpus import select_device
from detprof.workload import USER_DEFINED, UserWorkload, UserWorkloadError, Workload, WorkloadRequest, build_workload

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = REPO / "tests" / "data" / "workloads" / "user_workloads.py"
TOKEN_LM = "examples/token_lm.py:build"
HF_GPT2 = "examples/hf_gpt2.py:build"
TINY = ["--gpu", "cpu", "--batch-size", "2"]


def _detprof(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "detprof.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def _invoke(*args: str) -> tuple[int, str, str]:
    """detprof in this process (its user code still runs in a child): exit code, stdout, stderr."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _workload(function: str, batch_size: int = 4) -> Workload:
    return Workload(arch=f"{WORKLOADS}:{function}", batch_size=batch_size, image_size=0, num_classes=0,
                    kind=USER_DEFINED, workload_ref=f"{WORKLOADS}:{function}")


BROKEN = [
    ("no_such_function", "has no function 'no_such_function'"),
    ("returns_a_model", "returned a Linear; return (model, make_batch, loss_fn), (model, make_batch)"),
    ("returns_bad_batch", "make_batch returned a list; return a tensor, a tuple of tensors or a dict of tensors"),
    ("rejects_its_batch", "the model rejected its batch (float32 2x12): RuntimeError: mat1 and mat2 shapes"),
    ("loss_per_example", "the loss is a float32 tensor of shape (2,); return a floating-point scalar"),
    ("no_loss_anywhere", "holds no loss and the workload gives no loss_fn"),
    ("exits_zero", "called sys.exit(0) while being imported, built or run once"),
    ("save_without_load", "give both save and load, or neither (then detprof's own checkpoint is used)"),
    ("empty_batch", "make_batch returned a batch of 0 examples; return at least one"),
    ("empty_dataset", "its dataset is empty"),
    ("text_dataset", "its dataset's examples hold text"),
]


@pytest.mark.parametrize(("function", "message"), BROKEN)
def test_a_broken_workload_is_refused_in_one_line_before_measuring(function: str, message: str) -> None:
    code, stdout, stderr = _invoke("overhead", "--workload", f"{WORKLOADS}:{function}", *TINY, "--json")
    assert code == 2 and message in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1
    assert json.loads(stdout)["error"]["message"] == stderr.strip().removeprefix("detprof: error: ")


@pytest.mark.parametrize("function", ["two_inputs", "own_loss", "custom_forward"])
def test_each_documented_form_passes_the_same_check(function: str) -> None:
    # the control of the test above: the check that refuses the broken ones accepts these
    workload = build_workload(WorkloadRequest(workload=f"{WORKLOADS}:{function}", batch_size=4), select_device("cpu"))
    assert workload.kind == USER_DEFINED and workload.workload_ref and workload.batch_size == 4


@pytest.mark.parametrize(("extra", "message"), [
    (["--arch", "resnet18"], "give one of --arch, --model and --workload"),
    (["--seq-len", "16"], "--seq-len applies to zoo archs and --model; a --workload makes its own batches"),
    (["--image-size", "32"], "--image-size applies to zoo archs and --model"),
])
def test_options_a_workload_decides_itself_are_refused(extra: list[str], message: str) -> None:
    code, _, stderr = _invoke("check", "--workload", TOKEN_LM, *extra, "--gpu", "cpu")
    assert code == 2 and message in stderr, stderr


def test_a_reference_of_the_wrong_form_and_tensorflow_are_refused() -> None:
    code, _, stderr = _invoke("audit", "--workload", f"{REPO}/examples/token_lm.py", "--gpu", "cpu")
    assert code == 2 and "is not accepted; use MODULE:FUNCTION" in stderr, stderr
    code, _, stderr = _invoke("audit", "--workload", "examples/nothing.py:build", "--gpu", "cpu")
    assert code == 2 and "'examples/nothing.py': no such file" in stderr, stderr
    code, _, stderr = _invoke("overhead", "--framework", "tf", "--workload", f"{REPO}/{TOKEN_LM}", "--gpu", "cpu")
    assert code == 2 and "--workload is not available with --framework tf; it works with PyTorch" in stderr, stderr


def test_the_three_return_forms_load_as_one_typed_workload() -> None:
    cpu = torch.device("cpu")
    plain = load_user_workload(f"{WORKLOADS}:two_inputs", 3, cpu)
    typed = load_user_workload(f"{WORKLOADS}:own_loss", 3, cpu)
    pair = load_user_workload(f"{WORKLOADS}:no_loss_anywhere", 3, cpu)
    assert isinstance(plain, UserWorkload) and plain.loss is not None and plain.forward is None
    assert typed.loss is None and pair.loss is None
    with pytest.raises(UserWorkloadError, match="returned a Linear"):
        load_user_workload(f"{WORKLOADS}:returns_a_model", 3, cpu)


def test_batches_are_described_counted_and_joined_in_every_form() -> None:
    generator = torch.Generator().manual_seed(0)
    batch = {"ids": torch.randint(0, 9, (2, 5), generator=generator), "x": (torch.zeros(2, 3), torch.ones(2))}
    assert describe_batch(batch) == "dict ids int64 2x5, x tuple of float32 2x3, float32 2"
    joined = concatenated([batch, batch, batch])
    assert example_count(joined) == 6 and joined["x"][0].shape == (6, 3) and joined["x"][1].shape == (6,)
    assert torch.equal(joined["ids"][2:4], batch["ids"])


def test_the_workload_is_seeded_by_detprof_so_two_builds_agree_and_two_seeds_do_not() -> None:
    cpu = torch.device("cpu")
    first, again = (build_training(_workload("two_inputs"), 7, cpu) for _ in range(2))
    other = build_training(_workload("two_inputs"), 8, cpu)
    same = [float(t.step()).hex() for t in (first, again)]
    assert same[0] == same[1]
    assert float(other.step()).hex() != same[0]  # the control: another seed gives another model and batch
    # batch invariance's fresh examples come from the workload's own batch maker, 4 at a time
    assert example_count(first.fresh_inputs(10, seed=3)) == 10


@pytest.mark.slow
def test_the_token_lm_example_through_overhead_check_and_audit(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.sqlite")
    overhead = _detprof("overhead", "--workload", TOKEN_LM, *TINY, "--steps", "2", "--warmup", "1", "--repeats", "1",
                        "--precision", "0", "--profile-steps", "1", "--db", db, "--json")
    assert overhead.returncode == 0, overhead.stderr[-2000:]
    document = json.loads(overhead.stdout)
    assert document["workload"]["workload_ref"] == TOKEN_LM and document["ratio"] is not None
    assert all(mode["attention_backends"] for mode in document["modes"])  # nn.TransformerEncoderLayer uses SDPA
    check = _detprof("check", "--workload", TOKEN_LM, *TINY, "--steps", "2", "--threads", "1,2", "--locate-op",
                     "--json")
    assert check.returncode in (0, 1), check.stderr[-2000:]
    verdict = json.loads(check.stdout)
    if not verdict["bitwise_identical"]:
        assert verdict["first_divergence"]["op"]["op"].startswith("aten::")
    audit = _detprof("audit", "--workload", TOKEN_LM, *TINY, "--json")
    assert audit.returncode == 0 and json.loads(audit.stdout)["fully_deterministic"] is True, audit.stderr


@pytest.mark.slow
def test_the_hugging_face_example_through_overhead_check_and_audit(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    overhead = _detprof("overhead", "--workload", HF_GPT2, *TINY, "--steps", "2", "--warmup", "1", "--repeats", "1",
                        "--precision", "0", "--profile-steps", "0", "--db", str(tmp_path / "r.sqlite"), "--json")
    assert overhead.returncode == 0, overhead.stderr[-2000:]
    check = _detprof("check", "--workload", HF_GPT2, *TINY, "--steps", "2", "--json")
    assert check.returncode == 0 and json.loads(check.stdout)["bitwise_identical"] is True, check.stderr[-2000:]
    audit = _detprof("audit", "--workload", HF_GPT2, *TINY, "--json")
    assert audit.returncode == 0 and json.loads(audit.stdout)["ops_in_step"] > 100, audit.stderr[-2000:]


@pytest.mark.slow
def test_a_two_input_workload_checks_locates_and_is_batch_invariant() -> None:
    reference = f"{WORKLOADS}:two_inputs"
    check = _detprof("check", "--workload", reference, *TINY, "--steps", "2", "--json")
    assert check.returncode == 0 and json.loads(check.stdout)["bitwise_identical"] is True, check.stderr[-2000:]
    invariance = _detprof("check", "--batch-invariance", "--workload", reference, "--gpu", "cpu", "--batch-sizes",
                          "1,8", "--json")
    assert invariance.returncode in (0, 1), invariance.stderr[-2000:]
    rows = json.loads(invariance.stdout)["rows"]
    assert [row["examples"] for row in rows] == [64, 64] and rows[0]["bitwise_equal"] == 64


@pytest.mark.slow
def test_a_sweep_measures_workloads_after_its_archs(tmp_path: Path) -> None:
    spec = tmp_path / "workloads.toml"
    spec.write_text(f'workloads = ["{TOKEN_LM}", "{WORKLOADS}:two_inputs"]\ngpus = ["cpu"]\nbatch_size = 2\n'
                    "steps = 2\nwarmup = 0\nrepeats = 1\nprofile_steps = 0\n")
    done = _detprof("sweep", str(spec), "--db", str(tmp_path / "s.sqlite"), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    jobs = json.loads(done.stdout)["jobs"]
    assert [job["arch"] for job in jobs] == [TOKEN_LM, f"{WORKLOADS}:two_inputs"]
    assert all(job["status"] == "done" for job in jobs)


@pytest.mark.slow
def test_a_workload_that_fails_in_its_training_step_is_named_in_the_error() -> None:
    code, stdout, stderr = _invoke("check", "--workload", f"{WORKLOADS}:integer_batch", "--batch-size", "4",
                                   "--steps", "2", "--json")
    # run A started before it failed: off a terminal that stage was reported, then the one error line
    *stages, error = stderr.strip().splitlines()
    assert code == 2 and f"--workload '{WORKLOADS}:integer_batch': a check run failed: RuntimeError" in error
    assert [line.split(": ", 1)[1][:6] for line in stages] == ["run A:"], stages
