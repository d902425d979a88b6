"""benchmarks/gpu_campaign.sh --dry-run: the GPU campaign's whole pipeline on the CPU at tiny sizes,
so that the one run a GPU session gets does not fail on something a CPU could have caught."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNS = ["vgg19", "aa-resnet50", "resnet50", "mobilenet-v2", "densenet121", "mobilenet", "medium-cnn-k1",
        "medium-cnn-k3", "medium-cnn-k5", "medium-cnn-k7"]


@pytest.mark.slow
def test_the_campaign_dry_run_measures_everything_and_returns_at_most_eight_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    process = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_campaign.sh"), "--dry-run", "--out", str(out),
                              "--budget", "600"], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert process.returncode == 0, process.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8, files  # what the device tool brings back
    assert {"campaign.log", "environment.txt", "pytest_gpu.txt", "results.tar.gz", "summary.md",
            "report.html"} <= set(files)
    with tarfile.open(out / "results.tar.gz") as archive:
        members = {Path(m.name).name: m for m in archive.getmembers()}
        steps = archive.extractfile(members["steps.txt"]).read().decode()  # type: ignore[union-attr]
        documents = {name: json.loads(archive.extractfile(members[f"{name}.json"]).read())  # type: ignore[union-attr]
                     for name in RUNS}
        assert "campaign.sqlite" in members and "vgg19-top20-deterministic.json" in members
        stability = {v: json.loads(archive.extractfile(members[f"stability-{v}.json"]).read())  # type: ignore[union-attr]
                     for v in ("algo+impl", "algo", "impl", "control", "order-only")}
    assert "skipped" not in steps and all(": exit 0 in " in line for line in steps.splitlines()), steps
    for name, doc in documents.items():
        assert doc["ratio"] is not None, name
        for mode in doc["modes"]:
            assert mode["bitwise_identical_across_repeats"] is not None, (name, mode["mode"])
    assert documents["medium-cnn-k7"]["workload"]["kernel_size"] == 7
    assert documents["aa-resnet50"]["modes"][0]["mode"] == "default#1"
    assert stability["control"]["churn"] == 0.0 and stability["control"]["runs"] == 3
    assert stability["order-only"]["recipe"]["batch_size"] == 1437
    assert stability["algo"]["paired_with"]["variant"] == "algo+impl"
    summary = (out / "summary.md").read_text()
    assert "| vgg19 |" in summary and "| 7 |" in summary and "not measured" not in summary
    assert "| control | deterministic | 3 |" in summary
    assert "equal_to_full_parse=True" in (out / "campaign.log").read_text()
    assert "chart" in (out / "report.html").read_text()[:5_000_000]
    assert "| medium-cnn-k7 | deterministic | yes | 0 | — |" in summary
    assert "audit vgg19: fully deterministic" in summary
    assert "advise medium-cnn k=7: " in summary
