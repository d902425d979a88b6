"""Records and their comparison: the file format and its refusals, the comparison of bits with its
known answers (a changed learning rate, ATen's CPU capability, a one-digest change, a NaN) and
negative controls, the ranking of environment differences, the weight sketch, and records kept
in the store, carried by `db merge` and moved between folders.

The records in tests/data/records are real, made on this project's 2-core CPU machine with
`detprof record --arch small-cnn --gpu cpu` (torch 2.13.0, ATen capability AVX512): the machine's
own, under ATEN_CPU_CAPABILITY=avx2 and =default, and with --lr 0.02.
"""

from __future__ import annotations

import copy
import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from detprof.records.compare import compare_records
from detprof.records.explain import ranked_differences
from detprof.records.format import FORMAT_VERSION, RecordError, read_record, sketch_distance, write_record

RECORDS = Path(__file__).parent / "data" / "records"


def record(name: str) -> dict:
    return dict(read_record(RECORDS / f"{name}.json"))


def test_a_record_compared_with_itself_is_bitwise_equal_and_its_control_was_caught() -> None:
    comparison = compare_records(record("small-cnn"), record("small-cnn"))
    assert comparison["verdict"] == "equal" and comparison["first_divergence"] is None
    assert comparison["sensitivity"]["detected"] and comparison["steps_compared"] == 3
    assert comparison["configuration_differences"] == comparison["environment_differences"] == []


def test_a_changed_learning_rate_parts_at_step_1_at_the_first_parameter() -> None:
    comparison = compare_records(record("small-cnn"), record("small-cnn-lr0.02"))
    divergence = comparison["first_divergence"]
    assert comparison["verdict"] == "differ"
    assert (divergence["step"], divergence["parameter"]) == (1, "features.0.weight")
    assert divergence["op"]["phase"] == "optimizer"  # both records hold step 1's ops: the optimizer's update
    assert comparison["configuration_differences"][0] == {"field": "learning_rate", "a": 0.01, "b": 0.02}
    growth = comparison["growth"]
    assert [row["step"] for row in growth] == [1, 2, 3]
    assert growth[0]["loss_diff"] == 0.0 and growth[-1]["loss_diff"] > 0  # the loss parts a step later
    distances = [row["weight_distance"] for row in growth]
    assert distances == sorted(distances) and distances[0] > 0  # the weights drift further apart


def test_aten_cpu_capability_is_named_first_with_the_first_op_it_changed() -> None:
    comparison = compare_records(record("small-cnn"), record("small-cnn-aten-avx2"))
    divergence = comparison["first_divergence"]
    assert divergence["step"] == 1
    assert divergence["op"]["op"] == "aten::_log_softmax" and divergence["op"]["kind"] == "root-cause"
    first = comparison["environment_differences"][0]
    assert (first["factor"], first["a"], first["b"]) == ("ATen CPU capability", "AVX512", "AVX2")
    assert comparison["configuration_differences"] == []
    # ATEN_CPU_CAPABILITY=default changes the initial weights already: no step is to blame, no op named
    before = compare_records(record("small-cnn"), record("small-cnn-aten-default"))
    assert before["first_divergence"]["step"] == 0 and "op" not in before["first_divergence"]
    assert before["environment_differences"][0]["b"] == "DEFAULT"


def test_one_changed_digest_is_found_at_its_step_and_parameter() -> None:
    a, b = record("small-cnn"), record("small-cnn")
    b["steps"][1]["params"][4] = b["steps"][1]["params"][4][:-1] + ("0" if b["steps"][1]["params"][4][-1] != "0"
                                                                     else "1")
    comparison = compare_records(a, b)
    divergence = comparison["first_divergence"]
    assert (divergence["step"], divergence["parameter"], divergence["parameters_differing"]) == \
        (2, a["parameters"][4], 1)
    assert "no op record of step 2" in comparison["op_note"]  # only step 1's ops were recorded


def test_a_nan_in_both_records_is_inconclusive_not_equal() -> None:
    a = record("small-cnn")
    a["steps"][2]["loss"] = "nan"
    a["steps"][2]["nonfinite"] = ["classifier.1.weight"]
    comparison = compare_records(a, copy.deepcopy(a))
    assert comparison["verdict"] == "inconclusive"
    assert "NaN" in comparison["verdict_reasons"][0]


def test_a_comparison_that_misses_its_1_ulp_control_is_inconclusive() -> None:
    a = record("small-cnn")
    a["ulp_control"] = {**a["ulp_control"], "params": a["steps"][0]["params"]}  # a control that changed nothing
    assert compare_records(a, record("small-cnn"))["verdict"] == "inconclusive"


def test_models_with_other_parameters_differ_at_step_0() -> None:
    a, b = record("small-cnn"), record("small-cnn")
    b["parameters"] = [*b["parameters"][:-1], "classifier.renamed"]
    divergence = compare_records(a, b)["first_divergence"]
    assert divergence["structure"] == "parameters"
    assert (divergence["parameter"], divergence["other"]) == ("classifier.3.bias", "classifier.renamed")


def test_records_of_other_workloads_formats_or_damaged_files_are_refused_in_one_line(tmp_path: Path) -> None:
    other = record("small-cnn")
    other["workload"] = {**other["workload"], "batch_size": 8}
    with pytest.raises(RecordError, match=r"different workloads \(batch_size 16 vs 8\)"):
        compare_records(record("small-cnn"), other)
    newer = {**record("small-cnn"), "format_version": FORMAT_VERSION + 1}
    (tmp_path / "newer.json").write_text(json.dumps(newer))
    (tmp_path / "damaged.json").write_text((RECORDS / "small-cnn.json").read_text()[:5000])
    (tmp_path / "damaged.json.gz").write_bytes(gzip.compress((RECORDS / "small-cnn.json").read_bytes())[:3000])
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    no_steps = record("small-cnn")
    del no_steps["steps"]
    (tmp_path / "no-steps.json").write_text(json.dumps(no_steps))
    expected = {"newer.json": "has format version 2, newer than this detprof reads (up to 1)",
                "damaged.json": "is damaged", "damaged.json.gz": "is damaged", "other.json": "is not a detprof record",
                "no-steps.json": "is damaged: it has no steps", "missing.json": "no such file"}
    for name, words in expected.items():
        with pytest.raises(RecordError) as raised:
            read_record(tmp_path / name)
        assert words in str(raised.value) and "\n" not in str(raised.value)


def test_a_gzipped_record_reads_back_whole(tmp_path: Path) -> None:
    original = record("small-cnn")
    path = write_record(original, tmp_path / "r.json.gz")  # type: ignore[arg-type]
    assert path.read_bytes()[:2] == b"\x1f\x8b" and read_record(path) == original


def test_environment_differences_of_another_device_rank_after_this_devices() -> None:
    a = {"torch": "2.13.0", "cuda": "12.8", "threads": 1, "aten_cpu_capability": "AVX512"}
    b = {"torch": "2.13.0", "cuda": "13.0", "threads": 2, "aten_cpu_capability": "AVX512"}
    ranked = ranked_differences(a, b, {"cpu"})
    assert [row["factor"] for row in ranked] == ["CPU threads", "CUDA version"]
    assert [row["relevant"] for row in ranked] == [True, False]
    assert [row["factor"] for row in ranked_differences(a, b, {"cuda"})] == ["CUDA version", "CPU threads"]
    assert ranked_differences(a, dict(a), {"cpu"}) == []  # negative control


def test_the_weight_sketch_estimates_the_distance_of_two_weight_sets() -> None:
    torch = pytest.importorskip("torch")
    from detprof.backends.torch.sketch import weight_sketch

    generator = torch.Generator().manual_seed(0)
    weights = [torch.randn(300, 700, generator=generator), torch.randn(50, generator=generator)]
    ratios = []
    for _ in range(12):
        noise = [1e-6 * torch.randn(w.shape, generator=generator) for w in weights]
        moved = [w + n for w, n in zip(weights, noise, strict=True)]
        true = float(torch.sqrt(sum(((m.double() - w.double()) ** 2).sum() for m, w in zip(moved, weights,
                                                                                           strict=True))))
        ratios.append(sketch_distance(weight_sketch(weights), weight_sketch(moved)) / true)
    assert 0.9 < float(np.mean(ratios)) < 1.1 and max(abs(r - 1) for r in ratios) < 0.3
    shifted = [w + 1e-6 for w in weights]  # a constant shift too: a structured difference
    true = 1e-6 * np.sqrt(sum(w.numel() for w in weights))
    assert abs(sketch_distance(weight_sketch(weights), weight_sketch(shifted)) / true - 1) < 0.3
    assert sketch_distance(weight_sketch(weights), weight_sketch([w.clone() for w in weights])) == 0.0


def test_a_stored_record_survives_db_merge_and_a_moved_file_compares_equal(tmp_path: Path) -> None:
    from detprof.check.record import store_verdict
    from detprof.errors import DetprofError
    from detprof.records.stored import comparison_document, load_record, record_document
    from detprof.store.transfer import merge_store

    original = read_record(RECORDS / "small-cnn.json")
    first, second = tmp_path / "one.sqlite", tmp_path / "two.sqlite"
    store_verdict("record", record_document(original, "small-cnn.json"), str(second))  # run 1 there
    store_verdict("record", record_document(read_record(RECORDS / "small-cnn-lr0.02.json"), None), str(first))
    run_id = store_verdict("record", record_document(original, "small-cnn.json"), str(first))
    assert run_id == 2
    merged = merge_store(str(second), first)
    assert merged["runs_added"] == 2
    carried = [load_record(f"run:{n}", str(second))[0] for n in (1, 2, 3)]
    assert [compare_records(original, r)["verdict"] for r in carried] == ["equal", "differ", "equal"]
    moved = tmp_path / "elsewhere" / "deeper"
    moved.mkdir(parents=True)
    shutil.copy(RECORDS / "small-cnn.json", moved / "golden.json")
    assert compare_records(original, read_record(moved / "golden.json"))["verdict"] == "equal"
    with pytest.raises(DetprofError, match="no run with id 9"):
        load_record("run:9", str(second))
    compared = store_verdict("compare", comparison_document(compare_records(original, original)), str(second))
    with pytest.raises(RecordError, match=f"run {compared} is a compare run, not a record"):
        load_record(f"run:{compared}", str(second))


def _cli(args: list[str], cwd: Path, **environment: str) -> tuple[int, dict]:
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "detprof.cli", *args, "--json"], capture_output=True, text=True,
                          cwd=cwd, timeout=600, env={**os.environ, **environment})
    return done.returncode, json.loads(done.stdout)


@pytest.mark.slow
def test_small_cnn_records_from_fresh_processes_are_equal_and_a_changed_lr_is_named(tmp_path: Path) -> None:
    db = str(tmp_path / "r.sqlite")
    code, first = _cli(["record", "--arch", "small-cnn", "--gpu", "cpu", "-o", "a.json", "--db", db], tmp_path)
    assert code == 0 and first["file"] == "a.json" and first["run_id"] == 1
    environment = first["record"]["environment"]
    assert environment["threads"] == 1 and environment["torch"] and environment["aten_cpu_capability"]
    assert first["record"]["configuration"]["learning_rate"] == 0.01  # the workload's own, read back
    code, golden = _cli(["record", "--arch", "small-cnn", "--gpu", "cpu", "-o", "b.json", "--golden", "a.json",
                         "--db", db], tmp_path)
    assert code == 0 and golden["golden"]["comparison"]["verdict"] == "equal"
    code, changed = _cli(["record", "--arch", "small-cnn", "--gpu", "cpu", "--lr", "0.02", "-o", "c.json",
                          "--golden", "a.json", "--db", db], tmp_path)
    divergence = changed["golden"]["comparison"]["first_divergence"]
    assert code == 1 and (divergence["step"], divergence["parameter"]) == (1, "features.0.weight")
    code, compared = _cli(["compare", "run:1", "b.json", "--db", db], tmp_path)
    assert code == 0 and compared["verdict"] == "equal" and compared["run_id"] == 4
    runs = _cli(["runs", "--db", db], tmp_path)[1]["runs"]
    assert [run["kind"] for run in runs] == ["compare", "record", "record", "record"]
    code, refreshed = _cli(["record", "--arch", "small-cnn", "--gpu", "cpu", "--lr", "0.02", "--golden", "g.json",
                            "--refresh", "--ops-at", "none", "--steps", "1", "--db", db], tmp_path)
    assert code == 0 and refreshed["golden"]["action"] == "written" and (tmp_path / "g.json").is_file()
    assert read_record(tmp_path / "g.json")["ops"] == {}


@pytest.mark.slow
def test_gpt2_small_records_from_fresh_processes_are_equal_and_a_changed_lr_is_named() -> None:
    from detprof.records.make import make_record
    from detprof.workload import WorkloadRequest

    tiny = WorkloadRequest(arch="gpt2-small", batch_size=2, sequence_length=16, num_classes=512)
    first, second = (make_record(tiny, gpu="cpu", steps=1, ops_at=()) for _ in range(2))
    assert compare_records(first, second)["verdict"] == "equal"
    changed = compare_records(first, make_record(tiny, gpu="cpu", steps=1, ops_at=(), learning_rate=0.02))
    divergence = changed["first_divergence"]
    assert (divergence["step"], divergence["parameter"]) == (1, first["parameters"][0])
    assert changed["op_note"].startswith("no op record of step 1")


@pytest.mark.slow
def test_records_under_two_aten_cpu_capabilities_rank_the_capability_first(tmp_path: Path) -> None:
    from detprof.records.make import make_record
    from detprof.workload import WorkloadRequest

    own = make_record(WorkloadRequest(arch="small-cnn"), gpu="cpu", steps=1)
    if own["environment"]["aten_cpu_capability"] == "DEFAULT":
        pytest.skip("this CPU's capability is ATen's default: there is no second one to compare")
    code, capped = _cli(["record", "--arch", "small-cnn", "--gpu", "cpu", "--steps", "1", "-o", "d.json"], tmp_path,
                        ATEN_CPU_CAPABILITY="default")
    comparison = compare_records(own, capped["record"])
    first = comparison["environment_differences"][0]
    assert code == 0 and first["factor"] == "ATen CPU capability" and first["b"] == "DEFAULT"
    assert comparison["configuration_differences"] == []


@pytest.mark.slow
def test_a_scripts_records_are_equal_across_interpreters_and_a_changed_argument_is_named() -> None:
    from detprof.records.make import make_script_record

    script = str(Path(__file__).parents[1] / "examples" / "scripts" / "train_loop.py")
    first = make_script_record(script, steps=2, ops_at=(), threads=1)
    again = make_script_record(script, steps=2, ops_at=(), threads=1)
    assert first["workload"] == {"arch": "train_loop.py", "script": "train_loop.py"}
    assert first["digest_scheme"] == "device" and first["environment"]["threads"] == 1
    assert all(step.get("sketch") for step in first["steps"])
    same = compare_records(first, again)
    assert same["verdict"] == "equal" and same["configuration_differences"] == []
    changed = compare_records(again, make_script_record(script, ["--lr", "0.1"], steps=2, ops_at=(), threads=1))
    divergence = changed["first_divergence"]
    assert (divergence["step"], divergence["parameter"]) == (1, "0.weight")
    assert changed["configuration_differences"][0] == {"field": "arguments", "a": [], "b": ["--lr", "0.1"]}
    assert changed["growth"][-1]["weight_distance"] > 0


def test_a_damaged_record_is_refused_in_one_line_or_compared_never_a_traceback() -> None:
    """Fields of a real record replaced at random by values of other types (a seeded search): each
    result is refused as damaged, or compares and prints; no other exception escapes."""
    import io
    import random

    from rich.console import Console

    from detprof.records.format import check_record
    from detprof.records.stored import comparison_document
    from detprof.render import render

    base, other = record("small-cnn"), record("small-cnn-aten-avx2")

    def places(value: object, prefix: tuple = ()) -> list[tuple]:
        found: list[tuple] = []
        items = value.items() if isinstance(value, dict) else enumerate(value[:2]) if isinstance(value, list) else []
        for key, inner in items:
            found += [(*prefix, key), *places(inner, (*prefix, key))]
        return found

    paths = places(base)
    chance = random.Random(0)
    refused = compared = 0
    for _ in range(150):
        damaged = copy.deepcopy(base)
        path = chance.choice(paths)
        holder = damaged
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = chance.choice([None, 1, "x", [], {}, [1], {"a": 1}, -1.5, True, float("nan"), [[1]]])
        try:
            checked = check_record(damaged, "damaged.json")
        except RecordError as error:
            assert "\n" not in str(error)
            refused += 1
            continue
        for pair in ((checked, other), (other, checked), (checked, checked)):
            try:
                render("compare", comparison_document(compare_records(*pair)), Console(file=io.StringIO()))
            except RecordError:
                pass
        compared += 1
    assert refused > 20 and compared > 20  # both ways were taken


def test_a_record_path_that_cannot_be_written_is_named_in_one_line(tmp_path: Path) -> None:
    from detprof.records.format import require_writable

    (tmp_path / "folder").mkdir()
    (tmp_path / "file.json").write_text("{}")
    with pytest.raises(RecordError, match="it is a folder"):
        require_writable(tmp_path / "folder")
    with pytest.raises(RecordError, match="is a file, not a folder"):
        require_writable(tmp_path / "file.json" / "record.json", "--golden")
    require_writable(tmp_path / "new" / "deeper" / "record.json")  # a folder to be made is fine
    with pytest.raises(RecordError, match="could not be written to '/proc/detprof-record.json'") as raised:
        write_record(record("small-cnn"), "/proc/detprof-record.json")  # type: ignore[arg-type]
    assert "\n" not in str(raised.value)


def test_the_parents_sketch_of_an_array_is_the_backends_sketch_of_the_same_tensors() -> None:
    torch = pytest.importorskip("torch")
    import base64

    from detprof.backends.torch.sketch import weight_sketch
    from detprof.records.format import array_sketch

    generator = torch.Generator().manual_seed(1)
    tensors = [torch.randn(1500, 700, generator=generator), torch.randn(33, generator=generator)]  # past one period
    flat = np.concatenate([t.numpy().ravel() for t in tensors])
    ours, theirs = (np.frombuffer(base64.b64decode(text), "<f8")
                    for text in (array_sketch(flat), weight_sketch(tensors)))
    assert np.allclose(ours, theirs, rtol=1e-12, atol=1e-12)


INFERENCE_MODELS = str(Path(__file__).parent / "data" / "inference" / "models.py")


@pytest.mark.slow
def test_decoding_records_are_equal_across_processes_and_a_run_dependent_model_parts_at_token_1(
        tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from detprof.infer.run import PromptChoice
    from detprof.records.inference import make_inference_record

    prompts = PromptChoice(count=3, shortest=4, longest=9)

    def recorded(name: str, **options: object) -> dict:
        return dict(make_inference_record(model=f"{INFERENCE_MODELS}:{name}", vocab=64, prompts=prompts,
                                          new_tokens=4, **options))  # type: ignore[arg-type]

    lookup = recorded("lookup")
    assert lookup["digest_scheme"] == "logits-blake2b" and len(lookup["steps"]) == 4
    assert lookup["environment"]["aten_cpu_capability"] and lookup["parameters"] == ["prompt 0", "prompt 1",
                                                                                     "prompt 2"]
    same = compare_records(lookup, recorded("lookup"))
    assert same["verdict"] == "equal" and same["subject"] == "decoding" and same["sensitivity"]["detected"]
    other_mode = compare_records(lookup, recorded("lookup", mode="batch-invariant"))  # the same bits, told apart
    assert other_mode["verdict"] == "equal" and other_mode["configuration_differences"][0]["field"] == "mode"
    parted = compare_records(recorded("run_dependent"), recorded("run_dependent"))  # an offset drawn per process
    divergence = parted["first_divergence"]
    assert (divergence["step"], divergence["parameter"], divergence["parameters_differing"]) == (1, "prompt 0", 3)
    assert parted["growth"][0]["tokens_differing"] == 0 and parted["growth"][0]["weight_distance"] > 0
    assert parted["op_note"].startswith("an inference record holds no op record")
    path = write_record(lookup, tmp_path / "decoding.json.gz")  # type: ignore[arg-type]
    assert compare_records(lookup, read_record(path))["verdict"] == "equal"


@pytest.mark.parametrize(("change", "words"), [
    (lambda r: r["workload"].update(batch_size=8), "are of different workloads (batch_size 16 vs 8)"),
    (lambda r: r.update(format_version=FORMAT_VERSION + 1), "newer than this detprof reads"),
    (lambda r: r.pop("environment"), "is damaged: it has no environment"),
])
def test_compare_refuses_in_one_line_with_exit_2_and_a_json_error(change: object, words: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from detprof.cli import app

    other = record("small-cnn")
    change(other)  # type: ignore[operator]
    (tmp_path / "other.json").write_text(json.dumps(other))
    args = ["compare", str(RECORDS / "small-cnn.json"), str(tmp_path / "other.json"), "--db", str(tmp_path / "r.db")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1
    as_json = CliRunner().invoke(app, [*args, "--json"])
    assert as_json.exit_code == 2 and words in json.loads(as_json.stdout)["error"]["message"]
    assert not (tmp_path / "r.db").exists()  # refused before anything was stored


def test_a_compiled_record_is_compared_and_said_to_hold_no_op_record() -> None:
    a, b = record("small-cnn"), record("small-cnn-lr0.02")
    b["configuration"] = {**b["configuration"], "compiled": True}
    b["workload"] = {**b["workload"], "compiled": True}  # how it ran, not what: still comparable
    b["ops"] = {}
    comparison = compare_records(a, b)
    assert comparison["verdict"] == "differ" and "Inductor replaces the eager ops" in comparison["op_note"]
    assert {"field": "compiled", "a": False, "b": True} in comparison["configuration_differences"]


def test_records_of_your_code_in_two_folders_are_of_one_workload() -> None:
    from detprof.records.format import identity

    here, there = record("small-cnn"), record("small-cnn")
    here["workload"] = {**here["workload"], "model_ref": "/home/me/project/models/net.py:build"}
    there["workload"] = {**there["workload"], "model_ref": "checkout/models/net.py:build"}
    assert identity(here) == identity(there)  # type: ignore[arg-type]
    assert compare_records(here, there)["verdict"] == "equal"  # type: ignore[arg-type]
    other = {**there, "workload": {**there["workload"], "model_ref": "checkout/models/net.py:build_wider"}}
    with pytest.raises(RecordError, match="different workloads"):
        compare_records(here, other)  # type: ignore[arg-type]
    module = {**there, "workload": {**there["workload"], "model_ref": "mypackage.models:build"}}
    assert identity(module)["model_ref"] == "mypackage.models:build"  # type: ignore[arg-type]
