"""The HTML report: content checks, then the real thing in headless Chromium (as a person would)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("plotly", reason="the report draws with plotly (the GPU machine has none unless carried)")

from detprof.cli import app  # noqa: E402
from detprof.report import build_report  # noqa: E402
from tests.stores import store_with_kernels as _store_with_kernels  # noqa: E402

runner = CliRunner()
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
EVIL = "<script>window.__xss = 1</script>evil_kernel"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--virtual-time-budget=15000"]


def _chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed, but CI must run the browser test (.ci/run installs it)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return binary


def _browse(page: Path, screenshot: Path) -> str:
    """Load the page in headless Chromium; return the DOM after its scripts ran, save a screenshot."""
    binary = _chromium()
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                             capture_output=True, text=True, timeout=180, check=True).stdout
    with tempfile.TemporaryDirectory() as profile:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1300,3800",
                        f"--screenshot={screenshot}", page.as_uri()], capture_output=True, timeout=180, check=True)
    assert screenshot.stat().st_size > 10_000
    return dom


def _assert_rendered(dom: str, charts: int) -> None:
    body = re.search(r"<body[^>]*>", dom)
    assert body is not None
    assert f'data-expected-charts="{charts}"' in body.group(0)
    assert f'data-rendered="{charts}"' in body.group(0), body.group(0)
    assert "data-js-errors" not in re.search(r"<html[^>]*>", dom).group(0)  # type: ignore[union-attr]


def test_figure_8_shows_default_against_deterministic_unless_told_which_run(tmp_path: Path) -> None:
    """The campaign's last runs are checks and ablations; Figure 8 must still be vgg19's comparison."""
    from detprof.report.collect import collect

    db = tmp_path / "f8.sqlite"
    paper_run = _store_with_kernels(db, ["vgg_conv"], arch="vgg19")
    nofill = _store_with_kernels(db, ["nofill_conv"], ("default", "deterministic-nofill"), arch="vgg19")
    _store_with_kernels(db, ["ablation_conv"], ("default", "cublas-workspace"), arch="vgg19")  # newest
    chosen = collect(db).comparison
    assert chosen is not None and chosen.run_label.startswith(f"run {paper_run} ")
    assert chosen.labels[1] == "deterministic"
    named = collect(db, kernels_run=nofill).comparison
    assert named is not None and named.run_label.startswith(f"run {nofill} ")
    made = runner.invoke(app, ["report", "--db", str(db), "--out", str(tmp_path / "r.html"), "--kernels-run", "99"])
    assert made.exit_code == 2 and "--kernels-run 99 is not accepted" in made.stderr


def test_figure_9a_sets_kernel_time_beside_step_time_and_the_paper_beside_kernel_time(tmp_path: Path) -> None:
    from detprof.report.collect import collect
    from detprof.report.figures import overhead_by_network

    db = tmp_path / "f9.sqlite"
    _store_with_kernels(db, ["a"], arch="vgg19", reliable=True)
    _store_with_kernels(db, ["a"], arch="mobilenet", reliable=False)  # coverage outside 90-110%
    data = collect(db)
    figure = overhead_by_network(data.overhead, data.paper)
    assert figure is not None
    bars = [t for t in figure.data if t.type == "bar"]
    step = [t for t in bars if t.xaxis == "x"]
    kernel = [t for t in bars if t.xaxis == "x2"]
    assert sorted(step[0].x) == ["mobilenet", "vgg19"] and list(step[0].y) == [1.2, 1.2]
    assert list(kernel[0].x) == ["vgg19"] and list(kernel[0].y) == [1.5]  # mobilenet's are not vouched for
    diamonds = [t for t in figure.data if t.type == "scatter" and t.name and t.name.startswith("paper")]
    assert diamonds and all(t.xaxis == "x2" for t in diamonds)  # the paper's kernel time beside kernel time
    unreliable = [t for t in figure.data if t.type == "scatter" and t.mode == "text"]
    assert unreliable and list(unreliable[0].text) == ["kernel times<br>unreliable"]


def test_report_is_offline_escaped_and_says_what_has_no_data(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    _store_with_kernels(db, [EVIL, "aten::mm"])
    result = build_report(str(db), tmp_path / "report.html")
    page = result.path.read_text()
    assert result.sections["figure_9a"] == "drawn" and result.sections["figure_9b"] == "no data"
    assert "No medium-cnn runs yet" in page
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;evil_kernel" in page
    assert "<script>window.__xss" not in page
    # plotly.js is inlined: no element loads anything from elsewhere
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page)
    assert "Plotly.newPlot" in page and len(page) > 4_000_000
    assert "Published by the paper, not measured by detprof" in page and "1.85" in page


def test_report_without_runs_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "--db", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "x.html")])
    assert result.exit_code == 2 and "no runs yet" in result.stderr


@pytest.mark.slow
def test_report_of_a_cpu_run_renders_in_chromium(tmp_path: Path) -> None:
    db = str(tmp_path / "cpu.sqlite")
    run = runner.invoke(app, ["overhead", "--arch", "small-cnn", "--batch-size", "8", "--warmup", "1", "--steps", "3",
                              "--repeats", "2", "--profile-steps", "1", "--db", db, "--json"])
    assert run.exit_code == 0, run.stderr
    made = runner.invoke(app, ["report", "--db", db, "--out", str(tmp_path / "cpu.html"), "--json"])
    assert made.exit_code == 0, made.stderr
    dom = _browse(tmp_path / "cpu.html", ARTIFACTS / "report_cpu_run.png")
    _assert_rendered(dom, charts=2)  # Figure 9a and Figure 8; no medium-cnn runs for 9b
    assert "small-cnn" in dom and "No medium-cnn runs yet" in dom


@pytest.mark.slow
def test_report_of_imported_a100_and_v100_traces_renders_in_chromium(shared_traces: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "traces.sqlite")
    for name in ("a100_diff_control", "v100_diff_test"):
        imported = runner.invoke(app, ["import", str(shared_traces / f"{name}.json.gz"), "--label", name[:4],
                                       "--db", db])
        assert imported.exit_code == 0, imported.stderr
    made = runner.invoke(app, ["report", "--db", db, "--out", str(tmp_path / "traces.html")])
    assert made.exit_code == 0, made.stderr
    dom = _browse(tmp_path / "traces.html", ARTIFACTS / "report_imported_traces.png")
    _assert_rendered(dom, charts=1)  # Figure 8 from the two traces
    assert "NVIDIA A100-PG509-200" in dom and "Tesla V100-SXM2-16GB" in dom
    assert "Only in 2:v100" in dom and "No overhead runs of networks yet" in dom


@pytest.mark.slow
def test_report_of_stability_experiments_renders_in_chromium(tmp_path: Path) -> None:
    db = str(tmp_path / "stability.sqlite")
    for extra in (["--variant", "algo+impl"], ["--variant", "control"], ["--variant", "algo+impl", "--fix", "init"]):
        trained = runner.invoke(app, ["stability", *extra, "--runs", "2", "--epochs", "1", "--db", db])
        assert trained.exit_code == 0, trained.stderr
    made = runner.invoke(app, ["report", "--db", db, "--out", str(tmp_path / "stability.html"), "--json"])
    assert made.exit_code == 0, made.stderr
    sections = json.loads(made.stdout)["sections"]
    assert sections["stability"] == sections["per_class"] == "drawn" and sections["figure_9a"] == "no data"
    dom = _browse(tmp_path / "stability.html", ARTIFACTS / "report_stability.png")
    _assert_rendered(dom, charts=2)
    assert "Stability experiments" in dom and "init, shuffle, augment, dropout" in dom
    assert "algo+impl[fixed: init]" in dom  # a --fix run is drawn and listed under its own name


@pytest.mark.slow
def test_report_of_a_celeba_experiment_draws_the_subgroup_figure(tmp_path: Path) -> None:
    from tests.test_stability import _write_celeba

    _write_celeba(tmp_path / "celeba")
    db = str(tmp_path / "celeba.sqlite")
    trained = runner.invoke(app, ["stability", "--task", "celeba", "--data-dir", str(tmp_path / "celeba"), "--runs",
                                  "2", "--epochs", "1", "--batch-size", "4", "--db", db])
    assert trained.exit_code == 0, trained.stderr
    made = runner.invoke(app, ["report", "--db", db, "--out", str(tmp_path / "celeba.html"), "--json"])
    sections = json.loads(made.stdout)["sections"]
    assert sections["subgroups"] == "drawn" and sections["stability"] == "drawn"
    dom = _browse(tmp_path / "celeba.html", ARTIFACTS / "report_celeba.png")
    expected = re.search(r'data-expected-charts="(\d+)"', dom)
    assert expected is not None and int(expected.group(1)) >= 2
    _assert_rendered(dom, charts=int(expected.group(1)))
    assert "Subgroup spread" in dom and "Female" in dom


@pytest.mark.slow
def test_escaped_names_do_not_execute_in_the_browser(tmp_path: Path) -> None:
    db = tmp_path / "evil.sqlite"
    _store_with_kernels(db, [EVIL, "aten::mm"])
    page = build_report(str(db), tmp_path / "evil.html").path
    dom = _browse(page, ARTIFACTS / "report_escaping.png")
    _assert_rendered(dom, charts=2)
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;evil_kernel" in dom


def test_the_api_refuses_to_write_the_report_over_its_store(tmp_path: Path) -> None:
    from detprof.report import ReportError
    from detprof.store import ResultStore

    db = tmp_path / "r.sqlite"
    _store_with_kernels(db, ["aten::mm"])
    before = db.read_bytes()
    with pytest.raises(ReportError, match="is the results database"):
        build_report(db, db)
    with ResultStore(db) as store, pytest.raises(ReportError, match="its wal file"):
        build_report(store, str(db) + "-wal")
    assert db.read_bytes() == before
    assert build_report(db, tmp_path / "ok.html").path.exists()  # the negative control


def test_kernel_figures_of_a_run_flagged_unreliable_carry_the_caveat_everywhere(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from detprof import build_report
    from detprof.cli import app
    from tests.stores import store_with_kernels

    db = tmp_path / "r.sqlite"
    flagged = store_with_kernels(db, ["ReluBackward0", "sgemm"], reliable=False)
    page = tmp_path / "flagged.html"
    build_report(db, page)
    assert "flagged unreliable" in page.read_text() and 'class="caveat"' in page.read_text()
    shown = CliRunner().invoke(app, ["kernels", "--run", str(flagged), "--db", str(db)]).stdout
    assert "caution, this run's kernel times" in shown
    def exported_kernel_ratios() -> list[str]:
        import csv
        import io

        text = CliRunner().invoke(app, ["db", "export", "--db", str(db)]).stdout
        return [row["kernel_ratio"] for row in csv.DictReader(io.StringIO(text))]

    assert exported_kernel_ratios() == [""]  # not stated beside the flag
    # control: a run whose kernel times hold is preferred for Figure 8, and carries no caveat
    reliable = store_with_kernels(db, ["ReluBackward0", "sgemm"], reliable=True)
    page = tmp_path / "reliable.html"
    build_report(db, page)
    assert 'class="caveat"' not in page.read_text()
    shown = CliRunner().invoke(app, ["kernels", "--run", str(reliable), "--db", str(db)]).stdout
    assert "caution" not in shown
    assert exported_kernel_ratios() == ["", "1.5"]


def test_the_ablation_chart_is_drawn_from_ablation_runs_only(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    # plain comparisons and advise's measurements of the same switches: no ablation was asked for
    _store_with_kernels(db, ["k"], ("default", "deterministic-algorithms"), part_of="advise")
    _store_with_kernels(db, ["k"], ("default", "deterministic"))
    assert build_report(db, tmp_path / "plain.html").sections["ablation"] == "no data"
    # an ablation stored before runs said what they were part of counts by its command line
    _store_with_kernels(db, ["k"], ("default", "deterministic-algorithms"), command="detprof overhead --ablate")
    _store_with_kernels(db, ["k"], ("default", "deterministic"), part_of="ablation")
    assert build_report(db, tmp_path / "ablated.html").sections["ablation"] == "drawn"


def test_stability_bars_carry_the_cis_they_have_and_no_cap_where_there_is_none() -> None:
    from detprof.report.figures import stability_by_variant

    def experiment(variant: str, runs: int, churn: float, ci: list[float] | None) -> dict:
        return {"label": "digits small-cnn", "variant": variant, "runs": runs,
                "measures": {"accuracy_std": 0.01, "churn": churn, "churn_ci": ci, "l2": 1.0,
                             "l2_ci": [0.9, 1.1] if ci else None}}

    figure = stability_by_variant([experiment("algo+impl", 10, 0.2, [0.15, 0.25]), experiment("control", 2, 0.1, None)])
    assert figure is not None
    churn = next(bar for bar in figure.data if bar.xaxis == "x2")
    assert list(churn.error_y.array) == [pytest.approx(5.0), None] and churn.error_y.width == 0
    alone = stability_by_variant([experiment("algo+impl", 10, 0.2, [0.15, 0.25])])
    assert alone is not None and next(bar for bar in alone.data if bar.xaxis == "x2").error_y.width == 4
    two_runs = stability_by_variant([experiment("control", 2, 0.1, None)])
    assert two_runs is not None and all(bar.error_y.array is None for bar in two_runs.data)


def test_each_charts_data_is_written_into_the_page_once() -> None:
    import plotly.graph_objects as go

    from detprof.report.page import _figure

    figure = go.Figure(go.Bar(x=["default", "deterministic"], y=[1.0, 1.2345678], name="unique-trace-name"))
    body, script = _figure(figure, "chart-x", "no data")
    assert 'id="chart-x"' in body and script.count("unique-trace-name") == 1 and script.count("1.2345678") == 1
    assert _figure(None, "chart-y", "nothing measured")[1] == ""  # control: no figure, no script


@pytest.mark.slow
def test_report_of_inference_runs_draws_the_grid_the_cost_and_the_sampler_trainer_chart(tmp_path: Path) -> None:
    """The three infer documents (real output, tests/data/documents) stored as their verdict kinds: each
    draws its chart, the cost with the published anchors as other systems' GPU figures, and the page
    renders every chart in Chromium."""
    from detprof.check.record import store_verdict

    db = str(tmp_path / "inference.sqlite")
    documents = Path(__file__).parent / "data" / "documents"
    for kind in ("inference", "inference-cost", "inference-mismatch"):
        store_verdict(kind, json.loads((documents / f"{kind}.json").read_text()), db)
    made = runner.invoke(app, ["report", "--db", db, "--out", str(tmp_path / "inference.html"), "--json"])
    assert made.exit_code == 0, made.stderr
    sections = json.loads(made.stdout)["sections"]
    assert sections["inference_grid"] == sections["inference_cost"] == sections["sampler_trainer"] == "drawn"
    assert sections["figure_9a"] == "no data"
    dom = _browse(tmp_path / "inference.html", ARTIFACTS / "report_inference.png")
    _assert_rendered(dom, charts=3)
    assert "GPU, published" in dom and "bitwise equal" in dom
    # Negative control: a store without inference runs draws none of the three.
    empty = str(tmp_path / "checks.sqlite")
    store_verdict("check", json.loads((documents / "check.json").read_text()), empty)
    plain = runner.invoke(app, ["report", "--db", empty, "--out", str(tmp_path / "plain.html"), "--json"])
    assert {json.loads(plain.stdout)["sections"][key] for key in ("inference_grid", "inference_cost",
                                                                  "sampler_trainer")} == {"no data"}
