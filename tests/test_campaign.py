"""benchmarks/gpu_campaign.py: its plan fits the budget in the order of value, a step cut at the
budget keeps its finished pairs, and the dry run (the whole pipeline on the CPU at tiny sizes)
returns what it measured, even when the budget is far too small."""

from __future__ import annotations

import importlib.util
import json
import re
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
CAMPAIGN = REPO / "benchmarks" / "gpu_campaign.py"
ORDER = ["vgg19", "vgg19 kernels", "vgg19-nofill", "mobilenet", "medium-cnn-k1", "medium-cnn-k7",
         "resnet50", "densenet121", "gpt2-small", "vit-b16", "aa-resnet50", "infer gpt2-small batch",
         "infer gpt2-small cost", "check vgg19 default", "check vgg19 world-size 1", "check vgg19 restart",
         "audit vgg19", "mobilenet-nofill", "medium-cnn-k3", "medium-cnn-k5", "vgg19-tf32-off", "stability algo+impl",
         "pytest -m gpu (fast)"]
EXTRAS = ("mobilenet-nofill", "medium-cnn-k3", "medium-cnn-k5", "vgg19-tf32-off", "stability algo+impl",
          "pytest -m gpu (fast)")


def _campaign() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_campaign", CAMPAIGN)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_campaign"] = module
    spec.loader.exec_module(module)
    return module


def _plan(*args: str) -> tuple[int, list[tuple[str, float, float]], str]:
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_campaign.sh"), "--plan", *args],
                          capture_output=True, text=True, timeout=60)
    rows = [(m.group(1).strip(), float(m.group(2)), float(m.group(3))) for m in
            re.finditer(r"^\s*\d+\s+(.+?)\s+\d+\s+(\d+)s\s+(\d+)s", done.stdout, re.MULTILINE)]
    return done.returncode, rows, done.stdout


def test_the_gpu_plan_fits_the_default_budget_in_the_order_of_value() -> None:
    code, rows, text = _plan()
    assert code == 0 and "fits the budget" in text, text
    assert [name for name, _, _ in rows] == ORDER
    campaign = _campaign()
    available = campaign.DEFAULT_BUDGET_S - campaign.RESERVE_S
    required = [row for row in rows if row[0] not in EXTRAS]
    assert required[-1][2] <= available and campaign.RESERVE_S == 30
    assert [name for name, _, _ in rows[-len(EXTRAS):]] == list(EXTRAS)  # the extras come last
    assert "(extra: runs if a faster machine leaves the time)" in text
    assert all(later >= earlier for (_, _, earlier), (_, _, later) in zip(rows, rows[1:], strict=False))
    # Negative control: a budget that cannot hold the plan says so, and exits 1.
    code, _, text = _plan("--budget", "300")
    assert code == 1 and "does NOT fit: the tail will be dropped" in text and "(over the budget" in text


def test_estimates_follow_the_work_and_calibration_scales_what_is_left() -> None:
    campaign = _campaign()
    cost, sizes = campaign.GPU_COST, campaign.GPU_SIZES
    three, one_pair = campaign.overhead_cost(cost, "vgg19", sizes, ("default", "deterministic"), 3, 2)
    six, _ = campaign.overhead_cost(cost, "vgg19", sizes, ("default", "deterministic"), 6, 2)
    unprofiled, _ = campaign.overhead_cost(cost, "vgg19", sizes, ("default", "deterministic"), 3, 0)
    small, _ = campaign.overhead_cost(cost, "mobilenet", sizes, ("default", "deterministic"), 3, 2)
    assert one_pair < three < six and unprofiled < three and small < three  # more processes, more profiling, bigger
    assert six - three < three  # pairs past the third are not profiled: cheaper than the first three
    calibration = campaign.Calibration()
    assert calibration.factor == 1.0
    step = campaign.Step("vgg19", [], estimate_s=40.0, processes=7, status="ok", wall_s=60.0)
    calibration.add(step)
    calibration.add(campaign.Step("x", [], estimate_s=10.0, processes=1, status="failed (exit 2)", wall_s=1.0))
    assert calibration.factor == pytest.approx(1.5)  # a failed step says nothing about the machine's speed


@pytest.mark.slow
def test_a_step_cut_at_the_budget_keeps_its_finished_pairs(tmp_path: Path) -> None:
    campaign_module = _campaign()
    campaign = campaign_module.Campaign(tmp_path / "out", 600, dry_run=True)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "campaign.log").write_text("")
    argv = [sys.executable, "-m", "detprof.cli", "overhead", "--arch", "small-cnn", "--gpu", "cpu", "--db",
            str(campaign.db), "--json", "--batch-size", "4", "--steps", "200", "--warmup", "1", "--repeats", "50",
            "--profile-steps", "1"]
    step = campaign_module.Step("long", argv, estimate_s=1000.0, processes=101, result="long.json", pair_s=5.0)
    limit = 15
    campaign.run_step(step, limit_s=limit)  # 50 pairs of 200 steps take minutes (one CI machine ran 50 pairs
    # of 20 steps inside 40 s); the first pair a few seconds
    assert step.status == "cut short (budget)" and step.wall_s < limit + campaign_module.TERM_GRACE_S
    document = json.loads((campaign.results / "long.json").read_text())  # taken from the store
    assert document["partial"] is True and document["ratio_pairs"] >= 1
    with sqlite3.connect(campaign.db) as connection:
        jobs = connection.execute("SELECT COUNT(*) FROM jobs WHERE status='ok'").fetchone()[0]
    assert jobs >= 2 * document["ratio_pairs"]
    assert "long: cut short (budget)" in (campaign.results / "steps.txt").read_text()
    __import__("shutil").rmtree(campaign.work)  # finish() would have removed it


def test_the_summary_is_written_when_a_step_left_an_error_document_or_an_empty_file(tmp_path: Path) -> None:
    """A step cut at the budget before its first pair leaves the error document ``--json`` printed;
    the summary says "not measured" for it and still shows every other run (seen in a CI run)."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "vgg19.json").write_text((REPO / "tests" / "data" / "documents" / "overhead.json").read_text())
    (results / "vgg19-nofill.json").write_text(json.dumps({"document_version": 1, "error": {
        "message": "interrupted before the first pair", "exit_code": 130}}))
    (results / "mobilenet.json").write_text("")
    (results / "steps.txt").write_text("vgg19: ok, exit 0 in 41s\nvgg19-nofill: cut short (budget), exit 130\n")
    out = tmp_path / "summary.md"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "campaign_checks.py"), "summary", str(results),
                           "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = {line.split(" | ")[1]: line for line in out.read_text().splitlines() if line.startswith("| vgg19 | default")}
    assert "not measured" in rows["default vs deterministic-nofill"]
    assert "not measured" not in rows["default vs deterministic"]  # the control: a real run is shown
    assert "vgg19-nofill: cut short (budget)" in out.read_text()


def _run_dry(tmp_path: Path, budget: int) -> tuple[Path, str, dict[str, dict], list[dict]]:
    out = tmp_path / "out"
    process = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_campaign.sh"), "--dry-run", "--out", str(out),
                              "--budget", str(budget)], capture_output=True, text=True, timeout=budget + 300,
                             cwd=tmp_path)
    assert process.returncode == 0, process.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8, files  # what the device tool brings back
    assert {"campaign.log", "environment.txt", "results.tar.gz", "summary.md"} <= set(files)
    with tarfile.open(out / "results.tar.gz") as archive:
        archive.extractall(tmp_path / "returned", filter="data")
    results = tmp_path / "returned" / "results"
    steps = (results / "steps.txt").read_text()
    documents = {p.stem: json.loads(p.read_text()) for p in results.glob("*.json") if p.read_text().strip()}
    with sqlite3.connect(results / "campaign.sqlite") as connection:
        runs = [json.loads(r[0]) for r in connection.execute("SELECT summary_json FROM runs ORDER BY id")]
    # a report draws stored runs: a budget cut before the first pair finished leaves none to draw
    assert ("report.html" in files) == bool(runs), (files, len(runs))
    return out, steps, documents, runs


@pytest.mark.slow
def test_a_dry_run_with_a_budget_far_too_small_measures_vgg19_and_returns_what_it_has(tmp_path: Path) -> None:
    budget = 55  # the 30 s reserve, the environment, and about 20 s for vgg19 (it takes longer): the rest must go
    out, steps, documents, runs = _run_dry(tmp_path, budget)
    log = (out / "campaign.log").read_text()
    # the budget holds by the campaign's own clock (its log's last stamp), however busy the machine
    stamps = [int(line[1:line.index("s]")]) for line in log.splitlines() if line.startswith("[") and "s]" in line]
    assert stamps and stamps[-1] <= budget + 5, stamps[-1]
    lines = steps.splitlines()
    assert lines[0].startswith(("vgg19: ok", "vgg19: cut short (budget)")), steps  # the first step always runs
    vgg19 = documents.get("vgg19", {"error": "none written"})
    if lines[0].startswith("vgg19: ok"):
        assert vgg19["ratio"] is not None and vgg19["arch"] == "vgg19"
    else:  # a busy machine: cut at the budget, it keeps the pairs it finished (or says none finished)
        assert "error" in vgg19 or (vgg19["partial"] is True and vgg19["ratio_pairs"] >= 1), vgg19
    assert "dropped (budget)" in steps and "pytest -m gpu (fast): dropped (budget)" in steps  # the tail goes
    dropped = [line.split(":")[0] for line in lines if "dropped" in line]
    assert dropped == ORDER[len(ORDER) - len(dropped):], dropped  # ... and only the tail, never the middle
    for run in runs:  # every stored run keeps what it finished; a cut one says so
        assert run["ratio_pairs"] >= 1
        assert run["partial"] is (run["precision"]["stopped_by"] == "interrupted")
    cut = [line.split(":")[0] for line in lines if "cut short" in line]
    for name in cut:  # a step cut before its first pair finished stored nothing: no document, or the error one
        document = documents.get(name, {"error": "none written"})
        assert "error" in document or (document["partial"] is True and document["ratio_pairs"] >= 1), document
    summary = (out / "summary.md").read_text()
    assert "## Steps" in summary and "vgg19" in summary
    if runs:
        assert "| vgg19 | default vs deterministic |" in summary
        assert "default vs deterministic-nofill, kernel time" in summary  # which comparison stands beside the paper
        assert "chart" in (out / "report.html").read_text()[:5_000_000]


@pytest.mark.slow
def test_the_whole_dry_run_measures_every_step(tmp_path: Path) -> None:
    out, steps, documents, runs = _run_dry(tmp_path, 900)
    assert "dropped" not in steps and "failed" not in steps and "cut short" not in steps, steps
    assert [line.split(":")[0] for line in steps.splitlines() if not line.startswith(("report", "summary"))] == ORDER
    for name in ("vgg19", "vgg19-nofill", "mobilenet", "medium-cnn-k7", "resnet50", "aa-resnet50"):
        doc = documents[name]
        assert doc["ratio"] is not None and doc["partial"] is False, name
        for mode in doc["modes"]:
            assert mode["bitwise_identical_across_repeats"] is not None, (name, mode["mode"])
    assert documents["vgg19"]["kernel_ratio_pairs"] == 3 and documents["vgg19"]["kernel_ratio_ci"] is not None
    assert [m["mode"] for m in documents["vgg19-nofill"]["modes"]] == ["default", "deterministic-nofill"]
    assert documents["vgg19-tf32-off"]["modes"][1]["toggles"]["allow_tf32"] is False
    assert documents["medium-cnn-k7"]["workload"]["kernel_size"] == 7
    for name in ("gpt2-small", "vit-b16"):  # today's networks, after the paper's, with the attention backend that ran
        assert documents[name]["ratio"] is not None and all(m["attention_backends"] for m in documents[name]["modes"])
    assert documents["gpt2-small"]["workload"]["sequence_length"] == 16
    assert documents["aa-resnet50"]["modes"][0]["mode"] == "default#1"
    assert documents["vgg19-top20-deterministic"]["mode"] == "deterministic"
    # The GPU-only paths a CPU can still reach: op location (a model that depends on the thread count
    # by construction, at 1 and 2 threads) and
    # the audit's catch of an op without a deterministic implementation.
    located = documents["check-vgg19-default"]
    assert located["bitwise_identical"] is False and located["first_divergence"]["op"]
    assert [side["threads_run"] for side in located["runs"]] == [[1], [2]]
    repeated = documents["check-vgg19-world-size-1"]  # run to run as DDP over one process
    assert repeated["bitwise_identical"] is True and repeated["world_sizes"] == [1, 1]
    restarted = documents["check-vgg19-restart"]  # the restart gate: straight vs saved after step 1 and resumed
    assert restarted["bitwise_identical"] is True and restarted["restart_at"] == 1
    assert any("max_unpool" in o["op"] for o in documents["audit-vgg19"]["nondeterministic_ops"])
    assert documents["stability-algo+impl"]["runs"] == 2
    # the inference row: the grid's batch, position and padding rows with --locate-op, and the mode's cost
    grid = documents["infer-gpt2-small-batch"]
    assert [row["row"] for row in grid["rows"]] == ["batch", "position", "padding"] and grid["sensitivity"]["caught"]
    assert all(cell.get("op") for row in grid["rows"] for cell in row["cells"] if cell["verdict"] != "bitwise")
    assert [row["batch_size"] for row in documents["infer-gpt2-small-cost"]["rows"]] == [8]
    summary = (out / "summary.md").read_text()
    assert "not measured" not in summary.split("## Steps")[0], summary
    log = (out / "campaign.log").read_text()
    assert "equal_to_full_parse=True" in log and "equal_to_full_parse=False" not in log
    # the fast scan took a GPU trace in torch 2.11's layout, though this CPU's own traces hold no GPU work
    assert "synthetic compact trace scope=all: kind=gpu parser=kineto-scan" in log
    assert len(runs) == 16  # the overhead steps, each one stored run, and the two inference verdicts
