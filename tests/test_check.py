"""detprof check and detprof audit: models whose answer is known by construction, run for real in
fresh processes (tests/data/models/check_models.py), and the op recorder on real PyTorch ops."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from detprof.backends.torch.oprecord import OpRecorder, module_tracking
from detprof.check.compare import first_divergent_op
from detprof.cli import app
from tests.verdict_runs import MODELS, SMALL, invoke, runner


@pytest.mark.slow
def test_audit_names_max_unpool2d_and_exits_1() -> None:
    code, doc = invoke("audit", "--model", f"{MODELS}:unpool_net", *SMALL)
    assert code == 1 and doc["fully_deterministic"] is False
    [op] = doc["nondeterministic_ops"]
    assert op["op"].startswith("max_unpooling2d") and op["dispatched_as"] == ["aten::max_unpool2d"]
    assert op["modules"] == ["2.unpool (MaxUnpool2d)"] and op["phases"] == ["forward"]
    assert op["count"] == 3 and op["steps"] == [1, 2, 3] and doc["steps_audited"] == 3  # once a step


@pytest.mark.slow
def test_audit_of_a_cnn_exits_0_and_shows_what_deterministic_mode_adds() -> None:
    code, doc = invoke("audit", "--arch", "small-cnn")
    assert code == 0 and doc["fully_deterministic"] is True and doc["nondeterministic_ops"] == []
    # On a CPU the mode's visible work is fill_uninitialized_memory: more aten::fill_ calls.
    fill = {row["name"]: row for row in doc["swapped_kernels"]}["aten::fill_"]
    assert fill["calls_b"] > fill["calls_a"]


@pytest.mark.slow
def test_check_reports_a_jitter_from_os_urandom_as_not_identical() -> None:
    code, doc = invoke("check", "--model", f"{MODELS}:urandom_jitter_net", *SMALL, "--steps", "2", "--locate-op")
    assert code == 1 and doc["bitwise_identical"] is False and doc["max_abs_diff"] > 0
    divergence = doc["first_divergence"]
    assert divergence["step"] == 1 and divergence["loss_differs"] is True and divergence["parameter"] == "0.weight"
    # The jitter is a Python float: the op that multiplies by it is fed a differing value.
    assert divergence["op"]["op"] == "aten::mul.Tensor" and divergence["op"]["kind"] == "input-differs"
    assert divergence["op"]["module"] == "2 (UrandomJitter)" and divergence["op"]["phase"] == "forward"


@pytest.mark.slow
def test_locate_op_names_the_op_built_to_diverge() -> None:
    code, doc = invoke("check", "--model", f"{MODELS}:noise_at_known_op_net", *SMALL, "--steps", "2",
                       "--locate-op")
    assert code == 1 and doc["bitwise_identical"] is False
    op = doc["first_divergence"]["op"]
    assert op == {"index": op["index"], "op": "aten::randn.generator", "phase": "forward",
                  "module": "body.noise (UnseededNoise)", "kind": "root-cause", "random": True}
    assert doc["first_divergence"]["ops_recorded"] > op["index"]


@pytest.mark.slow
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")
def test_a_result_that_depends_on_the_thread_count_fails_the_thread_gate_and_the_verdict_names_the_counts() -> None:
    # thread_split_net reduces as a CPU does, one partial sum per thread: 1 and 2 threads differ on any CPU
    code, doc = invoke("check", "--model", f"{MODELS}:thread_split_net", *SMALL, "--threads", "1,2", "--steps", "2",
                       "--locate-op")
    assert code == 1 and doc["differing_factor"] == "threads" and doc["verdict"] == "not identical"
    assert [side["threads_run"] for side in doc["runs"]] == [[1], [2]]
    divergence = doc["first_divergence"]
    assert divergence["step"] == 1 and divergence["parameter"] == "0.weight"
    assert divergence["op"]["module"] == "1 (ThreadSplitSum)"
    # control: the same model at 2 threads in both runs is identical
    code, doc = invoke("check", "--model", f"{MODELS}:thread_split_net", *SMALL, "--threads", "2", "--steps", "2")
    assert code == 0 and doc["verdict"] == "identical" and [s["threads_run"] for s in doc["runs"]] == [[2], [2]]
    # small-cnn at 1 vs 2 threads may or may not differ on a given CPU: either way the verdict says what ran
    code, doc = invoke("check", "--arch", "small-cnn", "--threads", "1,2", "--steps", "2")
    assert code in (0, 1) and [side["threads_run"] for side in doc["runs"]] == [[1], [2]]


@pytest.mark.slow
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")
def test_a_model_pinning_its_own_threads_cannot_pass_the_thread_gate() -> None:
    # both runs set 2 threads in their forward pass: the factor the gate varies did not differ
    code, doc = invoke("check", "--model", f"{MODELS}:pins_threads_net", *SMALL, "--threads", "1,2", "--steps", "2")
    assert code == 3 and doc["verdict"] == "inconclusive" and doc["bitwise_identical"] is True
    assert [side["threads_run"] for side in doc["runs"]] == [[2], [2]]
    assert any("the factor did not differ" in reason for reason in doc["verdict_reasons"])
    text = runner.invoke(app, ["check", "--model", f"{MODELS}:pins_threads_net", *SMALL, "--threads", "1,2",
                               "--steps", "1"]).stdout
    assert "threads 2 vs 2 (as run)" in text and "inconclusive" in text, text


@pytest.mark.slow
def test_the_same_configuration_twice_is_bitwise_identical() -> None:
    code, doc = invoke("check", "--arch", "small-cnn", "--steps", "3", "--locate-op")
    assert code == 0 and doc["bitwise_identical"] is True and doc["max_abs_diff"] == 0.0
    assert doc["first_divergence"] is None and doc["differing_factor"] == "none"
    # the identical verdict says what it could have caught: a 1-ulp change at step 1
    assert doc["sensitivity"] == {"change": "one ulp", "step": 1, "parameter": "features.0.weight", "detected": True}


def test_the_sensitivity_control_fails_when_the_change_is_invisible() -> None:
    from detprof.check.compare import sensitivity

    run = {"parameters": ["a", "b"], "steps": [{"loss": "0x1p+0", "params": ["d1", "d2"]}]}
    assert sensitivity({**run, "ulp_control": {"parameter": "b", "params": ["d1", "d2*"]}})["detected"] is True
    # the negative control: a digest blind to the change (the same digests) is reported as such
    assert sensitivity({**run, "ulp_control": {"parameter": "b", "params": ["d1", "d2"]}})["detected"] is False
    assert sensitivity(run) is None  # a run that recorded no control (an older backend) says nothing


def test_a_one_ulp_change_changes_the_digest_on_both_schemes() -> None:
    from detprof.backends.torch.digests import tensor_digest

    weights = torch.randn(64, generator=torch.Generator().manual_seed(0))
    nudged = weights.clone()
    nudged[0] = torch.nextafter(nudged[0], torch.tensor(float("inf")))
    assert nudged[0] != weights[0] and (nudged[1:] == weights[1:]).all()
    for scheme in ("device", "host"):
        assert tensor_digest(nudged, scheme) != tensor_digest(weights, scheme)
        assert tensor_digest(weights.clone(), scheme) == tensor_digest(weights, scheme)  # the control


@pytest.mark.slow
def test_batch_invariance_of_models_with_a_known_answer() -> None:
    code, doc = invoke("check", "--batch-invariance", "--model", f"{MODELS}:elementwise_net", *SMALL)
    assert code == 0 and doc["batch_invariant"] is True
    assert [(r["batch_size"], r["fraction_equal"], r["max_abs_diff"]) for r in doc["rows"]] == \
        [(1, 1.0, 0.0), (8, 1.0, 0.0), (64, 1.0, 0.0)]
    code, doc = invoke("check", "--batch-invariance", "--model", f"{MODELS}:batch_centred_net", *SMALL,
                       "--batch-sizes", "1,8")
    assert code == 1 and doc["batch_invariant"] is False
    rows = {r["batch_size"]: r for r in doc["rows"]}
    assert rows[1]["fraction_equal"] == 1.0 and rows[8]["bitwise_equal"] == 0 and rows[8]["max_abs_diff"] > 0


@pytest.mark.slow
def test_human_output_names_the_verdict_and_the_op() -> None:
    result = CliRunner(env={"COLUMNS": "100"}).invoke(
        app, ["check", "--model", f"{MODELS}:noise_at_known_op_net", *SMALL, "--steps", "1", "--locate-op"])
    text = " ".join(result.stdout.split())
    assert result.exit_code == 1 and "not identical" in text
    assert "aten::randn.generator in body.noise (UnseededNoise), forward" in text
    assert "a random op whose inputs matched while its output differs: its generator's state differed" in text


@pytest.mark.parametrize(("args", "message"), [
    (["check", "--threads", "1,2,3"], "--threads '1,2,3' is not accepted"),
    (["check", "--threads", "0,1"], "--threads '0,1' is not accepted"),
    (["check", "--devices", "cpu,tpu"], "--devices 'cpu,tpu' is not accepted; use cpu or cuda"),
    (["check", "--steps", "0"], "--steps 0 is not accepted"),
    (["check", "--mode", "fast"], "fast"),
    (["check", "--batch-invariance", "--batch-sizes", "1,x"], "--batch-sizes '1,x' is not accepted"),
    (["check", "--batch-invariance", "--batch-sizes", "1,65"], "--batch-sizes 1,65 is not accepted"),
    (["check", "--batch-invariance", "--threads", "1,2"], "--threads '1,2' is not accepted here"),
    (["check", "--batch-invariance", "--locate-op"], "--batch-invariance compares batch sizes in one run"),
    (["audit", "--arch", "nope"], "nope"),
    (["audit", "--model", "missing.py:build"], "--model 'missing.py': no such file"),
])
def test_bad_input_exits_2_in_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for a GPU that is present")
def test_cuda_side_without_a_gpu_exits_2() -> None:
    result = runner.invoke(app, ["check", "--devices", "cpu,cuda"])
    assert result.exit_code == 2 and "this machine has no GPU" in result.stderr


def _record(model: torch.nn.Module, x: torch.Tensor, scale: float) -> list[dict[str, Any]]:
    model.zero_grad(set_to_none=True)  # each record starts from the same state
    recorder = OpRecorder(hash_tensors=True)
    with module_tracking(model, recorder), recorder:
        (model(x) * scale).sum().backward()
    return recorder.finished_ops()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64,
                                   torch.uint8, torch.bool, torch.complex64])
def test_the_device_digest_changes_with_any_single_bit_and_with_order(dtype: torch.dtype) -> None:
    """The digest is all that crosses to the host, so it must see what a byte-wise hash would."""
    from detprof.backends.torch.digests import DIGEST_CHUNK
    from detprof.backends.torch.digests import tensor_digest as device_scheme

    def tensor_digest(t: torch.Tensor) -> str:  # both schemes see the same changes
        host = host_digest(t)
        assert (host == host_digest(base)) == (device_scheme(t) == device_scheme(base)) if t.shape == base.shape \
            else True
        return device_scheme(t)

    from detprof.backends.torch.digests import host_digest

    generator = torch.Generator().manual_seed(1)
    base = (torch.rand(257, generator=generator) * 200).to(dtype)  # 257: not a whole number of 32-bit words
    assert tensor_digest(base) == tensor_digest(base.clone())  # the same bits: the same digest
    raw = base.view(torch.uint8) if dtype != torch.bool else base.to(torch.uint8)
    changed_bits = 0
    for byte in (0, raw.numel() // 2, raw.numel() - 1):
        for bit in (0, 7):
            flipped = raw.clone()
            flipped[byte] ^= 1 << bit
            other = flipped.view(dtype) if dtype != torch.bool else flipped.to(torch.bool)
            changed_bits += tensor_digest(other) != tensor_digest(base)
    expected = 6 if dtype != torch.bool else 3  # a bool byte holds one bit: bit 7 is not a value there
    assert changed_bits >= expected
    swapped = base.clone()
    swapped[[0, 1]] = base[[1, 0]]
    if not torch.equal(base[0:1], base[1:2]):
        assert tensor_digest(swapped) != tensor_digest(base)  # a sum that ignored position would miss this
    assert tensor_digest(base.reshape(1, 257)) != tensor_digest(base)  # the shape is part of it
    # A tensor longer than one reduction chunk: a change in the second chunk is seen too.
    long = torch.zeros(DIGEST_CHUNK + 5, dtype=torch.float32)
    moved = long.clone()
    moved[DIGEST_CHUNK + 3] = 1.0
    assert tensor_digest(moved) != tensor_digest(long)


def test_recording_copies_digests_not_tensors_to_the_host() -> None:
    """--locate-op on a GPU once copied every tensor to the host; now only 16 bytes per tensor,
    once per step. Here the recorder must hash views and odd offsets without copying them out."""
    from detprof.backends.torch.digests import tensor_digest

    storage = torch.arange(11, dtype=torch.float32)
    view = storage[1:8]  # starts at a 4-byte offset: a view, not a copy
    assert tensor_digest(view) == tensor_digest(view.clone())
    half = torch.arange(11, dtype=torch.float16)[1:8]  # a 2-byte offset: not 4-byte aligned
    assert tensor_digest(half) == tensor_digest(half.clone())
    recorder = OpRecorder(hash_tensors=True, scheme="device")
    x = torch.randn(3, 4)
    with recorder:
        (x * 2).sum()
    assert all(type(d).__name__ == "PendingDigest" for op in recorder.ops for d in op["outputs"])
    ops = recorder.finished_ops()
    assert all(isinstance(d, str) and "#" in d for op in ops for d in op["outputs"])


def test_op_recorder_labels_forward_and_backward_ops_with_their_module() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    ops = _record(model, torch.randn(2, 4), 1.0)
    by_phase = {(op["phase"], op["module"]) for op in ops if op["module"]}
    assert ("forward", "0 (Linear)") in by_phase and ("backward", "0 (Linear)") in by_phase
    assert ("backward", "1 (ReLU)") in by_phase
    assert any(op["op"] == "aten::addmm" and op["module"] == "0 (Linear)" for op in ops)


class TwoOpBlock(torch.nn.Module):
    """A module whose forward runs several ops: only the last makes its output's autograd node."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * 3.0).sin() + 1.0


def test_every_backward_op_of_a_module_is_named_by_it_not_only_its_outputs_node() -> None:
    torch.manual_seed(0)
    inner = torch.nn.Sequential(torch.nn.Linear(4, 4), TwoOpBlock())
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), TwoOpBlock(), inner)
    ops = _record(model, torch.randn(2, 4), 1.0)
    backward = [op for op in ops if op["phase"] == "backward"]
    # sin's backward is aten::cos, mul's is aten::mul: neither runs in the block's output node (add).
    cos_modules = [op["module"] for op in backward if op["op"] == "aten::cos"]
    assert cos_modules == ["2.1 (TwoOpBlock)", "1 (TwoOpBlock)"]  # backward runs the last block first
    # The innermost module names what it made, and the nesting Sequential names nothing of it.
    assert not any(op["module"] == "2 (Sequential)" for op in backward if op["op"] == "aten::cos")
    # Control: outside any module (the loss's own ops, made after the model ran) stays unnamed.
    assert any(op["module"] is None for op in backward)


def test_first_divergent_op_of_two_records() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    x = torch.randn(2, 4)
    same_a, same_b = _record(model, x, 1.0), _record(model, x, 1.0)
    assert first_divergent_op(same_a, same_b) is None
    other = _record(model, x, 2.0)  # a Python scalar that differs reaches aten::mul
    found = first_divergent_op(same_a, other)
    assert found is not None and found["op"] == "aten::mul.Tensor" and found["kind"] == "input-differs"
    assert first_divergent_op(same_a, same_a[:-1])["kind"] == "different-length"  # type: ignore[index]


@pytest.mark.slow
def test_ablation_measures_each_cpu_switch_against_default_and_the_report_draws_it(tmp_path: Path) -> None:
    db = str(tmp_path / "r.sqlite")
    code, doc = invoke("overhead", "--arch", "small-cnn", "--ablate", "--repeats", "3", "--steps", "2", "--warmup",
                       "1", "--profile-steps", "1", "--db", db)
    assert code == 0
    assert [row["mode"] for row in doc["steps"]] == ["deterministic-algorithms", "deterministic-algorithms-fill",
                                                     "deterministic"]
    assert {s["mode"] for s in doc["skipped"]} == {"no-benchmark", "cudnn-deterministic-only", "cublas-workspace",
                                                   "cublas-workspace-small", "tf32-off", "deterministic-autotune",
                                                   "inductor-deterministic", "deterministic-inductor-autotune",
                                                   "deterministic, SDPA held"}
    reasons = {s["mode"]: s["reason"] for s in doc["skipped"]}
    assert reasons["tf32-off"] == "cuDNN, cuBLAS and TF32 exist only on a GPU"
    assert reasons["inductor-deterministic"] == "Inductor benchmarks its kernels only on a GPU"
    assert reasons["deterministic, SDPA held"] == "no scaled-dot-product attention ran in this network"
    assert len({row["run_id"] for row in doc["steps"]}) == 3
    assert all(row["ratio"] > 0 and row["ratio_pairs"] == 3 and row["peak_mem_bytes"][1] > 0 for row in doc["steps"])
    report = runner.invoke(app, ["report", "--db", db, "--out", str(tmp_path / "r.html")])
    drawn = " ".join(report.stdout.split()).split("; drawn: ")[1].split(";")[0]
    assert report.exit_code == 0 and "ablation" in drawn.split(", ")
    from detprof.report.collect import collect
    from detprof.report.figures import ablation_bars, overhead_by_network

    data = collect(db)
    assert list(ablation_bars(data.overhead).data[0].x) == [row["mode"] for row in doc["steps"]]
    # Figure 9a shows only deterministic / default, not the other ablation steps
    assert len(overhead_by_network(data.overhead, data.paper).data[0].x) == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--ablate", "--modes", "default,default"], "--ablate measures every step against default; drop --modes"),
    (["--ablate-modes", "fast"], "--ablate-modes 'fast' is not accepted; use any of no-benchmark"),
    (["--ablate-modes", "tf32-off"], "names only switches that change nothing here"),
])
def test_bad_ablation_input_exits_2(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["overhead", *args, "--db", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.sqlite").exists()


@pytest.mark.slow
def test_advise_checks_each_candidate_and_recommends_one_that_passed(tmp_path: Path) -> None:
    code, doc = invoke("advise", "--arch", "small-cnn", "--steps", "2", "--max-time", "4", "--db",
                       str(tmp_path / "r.sqlite"))
    rows = {row["mode"]: row for row in doc["candidates"]}
    assert list(rows) == ["default", "deterministic-algorithms", "deterministic"]  # GPU-only ones left out on CPU
    best = doc["recommendation"]
    assert code == 0 and best is not None and rows[best["mode"]]["bitwise_identical"]
    measured = [row for row in doc["candidates"] if row["bitwise_identical"] and row["mode"] != "default"]
    assert all(row["run_id"] is not None and row["ratio"] > 0 for row in measured)
    assert best["settings"]["python"][0].startswith("torch.manual_seed")
    assert "torch.set_num_threads(1)" in best["settings"]["python"][1]
    assert best["megatron_target"] in ("under", "over", "unresolved")


@pytest.mark.slow
def test_advise_exits_1_when_no_candidate_is_reproducible(tmp_path: Path) -> None:
    code, doc = invoke("advise", "--model", f"{MODELS}:urandom_jitter_net", *SMALL, "--steps", "1", "--db",
                       str(tmp_path / "r.sqlite"))
    assert code == 1 and doc["recommendation"] is None
    assert all(row["bitwise_identical"] is False and row["run_id"] is None for row in doc["candidates"])


def _row(mode: str, ratio: float, ci: list[float] | None) -> dict[str, Any]:
    return {"mode": mode, "ratio": ratio, "ratio_ci": ci}


def test_the_recommendation_prefers_fewer_switches_within_the_noise() -> None:
    from detprof.check.advise import against_target, choose

    default = _row("default", 1.0, None)
    algorithms = _row("deterministic-algorithms", 0.98, [0.95, 1.01])
    full = _row("deterministic", 1.30, [1.25, 1.35])
    assert choose([default, algorithms, full])["mode"] == "default"  # 0.98 is not resolved below 1
    faster = _row("deterministic-autotune", 1.04, [1.02, 1.06])
    assert choose([faster, full])["mode"] == "deterministic-autotune"
    assert choose([]) is None
    assert against_target(1.04, [1.02, 1.06]) == "under" and against_target(1.3, [1.25, 1.35]) == "over"
    assert against_target(1.09, [1.05, 1.13]) == "unresolved" and against_target(None, None) == "unknown"


def test_uninitialized_memory_is_never_blamed() -> None:
    """torch.empty's bytes are whatever the allocator left: two runs differ there without meaning it.
    Dropout draws its mask into empty_like; a record must not name that op as the root cause."""
    torch.manual_seed(0)
    x = torch.randn(64, 32)

    def record() -> list[dict[str, Any]]:
        garbage = [torch.randn(64, 32) * float(i) for i in range(8)]  # leaves other bytes in freed blocks
        del garbage
        torch.manual_seed(1)
        recorder = OpRecorder(hash_tensors=True, scheme="host")
        with recorder:
            mask = torch.empty_like(x).bernoulli_(0.5)
            (x * mask).sum()
        return recorder.finished_ops()

    a, b = record(), record()
    empty = next(op for op in a if op["op"] == "aten::empty_like")
    assert empty["outputs"] == ["uninitialized float32(64, 32)"]
    bernoulli = next(op for op in a if op["op"].startswith("aten::bernoulli"))
    assert bernoulli["inputs"][0] == "uninitialized float32(64, 32)"  # read before anything wrote it
    assert not bernoulli["outputs"][0].startswith("uninitialized")  # written now: hashed again
    assert first_divergent_op(a, b) is None
    # Negative control: the same memory hashed as data can differ, which is what the marker prevents.
    recorder = OpRecorder(hash_tensors=True, scheme="host")
    assert recorder._digests(torch.empty(64, 32))[0] != "uninitialized float32(64, 32)"


@pytest.mark.slow
def test_check_and_audit_verdicts_are_stored_as_runs_that_runs_export_merge_and_the_report_see(
        tmp_path: Path) -> None:
    db = tmp_path / "verdicts.sqlite"
    code, checked = invoke("check", "--arch", "small-cnn", "--steps", "2", "--db", str(db))
    assert code == 0 and checked["bitwise_identical"] is True and checked["run_id"] == 1
    code, audited = invoke("audit", "--model", f"{MODELS}:unpool_net", *SMALL, "--steps", "1", "--db", str(db))
    assert code == 1 and audited["run_id"] == 2
    [finding] = audited["nondeterministic_ops"]
    assert finding["sites"] == [{"module": "2.unpool (MaxUnpool2d)", "phase": "forward", "count": 1}]
    listed = runner.invoke(app, ["runs", "--db", str(db), "--json"])
    verdicts = {r["kind"]: r["verdict"] for r in json.loads(listed.stdout)["runs"]}
    assert verdicts == {"check": "bitwise identical", "audit": "1 op(s) without a deterministic implementation"}
    human = runner.invoke(app, ["runs", "--db", str(db)])
    assert "check: bitwise identical" in human.stdout and "audit: 1 op(s) without" in human.stdout
    exported = runner.invoke(app, ["db", "export", "--db", str(db)]).stdout.splitlines()
    assert exported[0].startswith("run_id,uid,created_at,kind,verdict,arch")
    assert [line.split(",")[3] for line in exported[1:]] == ["check", "audit"]
    merged = tmp_path / "merged.sqlite"
    assert json.loads(runner.invoke(app, ["db", "merge", str(db), "--db", str(merged), "--json"]).stdout)[
        "runs_added"] == 2
    page = runner.invoke(app, ["report", "--db", str(merged), "--out", str(tmp_path / "r.html"), "--json"])
    assert page.exit_code == 0 and json.loads(page.stdout)["sections"]["reproducibility"] == "drawn"
    html = (tmp_path / "r.html").read_text()
    section = html[html.index("<h2>Reproducibility"):]
    assert '<span class="pass">bitwise identical</span>' in section
    assert "max_unpooling2d" in section and "2.unpool (MaxUnpool2d) (forward) x1" in section
    # Control: a store with no verdict runs says so instead of drawing an empty table.
    from tests.stores import store_with_kernels

    other = tmp_path / "plain.sqlite"
    store_with_kernels(other, ["sgemm_kernel"])
    plain = runner.invoke(app, ["report", "--db", str(other), "--out", str(tmp_path / "p.html"), "--json"])
    assert json.loads(plain.stdout)["sections"]["reproducibility"] == "no data"


def test_a_db_that_cannot_hold_the_verdict_is_refused_before_the_check_runs(tmp_path: Path) -> None:
    not_a_store = tmp_path / "notes.txt"
    not_a_store.write_text("hello")
    for command in ("check", "audit"):
        result = runner.invoke(app, [command, "--arch", "small-cnn", "--db", str(not_a_store)])
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
        assert f"cannot use {str(not_a_store)!r} as a detprof results database" in result.stderr


@pytest.mark.slow
def test_every_spelling_of_pytorch_is_one_framework_for_batch_invariance(tmp_path: Path) -> None:
    for spelling in ("PyTorch", "torch", " pytorch "):
        code, doc = invoke("check", "--batch-invariance", "--arch", "small-cnn", "--batch-sizes", "1,2",
                           "--framework", spelling, "--db", str(tmp_path / "r.sqlite"))
        assert code in (0, 1) and [row["batch_size"] for row in doc["rows"]] == [1, 2], spelling
    refused = runner.invoke(app, ["check", "--batch-invariance", "--framework", "tf", "--db", str(tmp_path / "t")])
    assert refused.exit_code == 2 and "--batch-invariance is not available with --framework tf; it works with " \
        "PyTorch" in refused.stderr


@pytest.mark.slow
def test_advise_in_a_pipe_reports_each_stage_with_the_stages_done_and_to_come(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "detprof.cli", "advise", "--arch", "small-cnn", "--steps", "1",
                           "--batch-size", "4", "--max-time", "6", "--db", str(tmp_path / "r.sqlite")],
                          capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    # the first stage at once, counted: 3 checks and the 2 measurements that may follow on a CPU
    assert lines[0].startswith("advise [0/5] ") and lines[0].endswith("check default: two trainings of 1 steps")
    counts = [line.split("]")[0] for line in lines]
    assert all(count.startswith("advise [") for count in counts), lines
    # later lines (at most one per 5 s) carry the measurements' pairs, never a count past the total
    assert all(int(c.split("[")[1].split("/")[0]) < int(c.split("/")[1]) for c in counts)
    assert "recommended:" in done.stdout
