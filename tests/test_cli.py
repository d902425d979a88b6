"""The CLI through typer's CliRunner: help, JSON output, and exit code 2 for user mistakes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from detprof.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
COMMANDS = sorted(get_command(app).commands)  # type: ignore[attr-defined]


def test_every_command_has_help_and_appears_in_the_command_docs() -> None:
    readme = (REPO / "docs" / "cli.md").read_text()
    assert {"overhead", "kernels", "runs", "gpus", "zoo"} <= set(COMMANDS)
    for name in COMMANDS:
        command = get_command(app).commands[name]  # type: ignore[attr-defined]
        assert command.help, f"{name} has no help text"
        assert f"detprof {name}" in readme, f"docs/cli.md does not show `detprof {name}`"
        # a group (`db`): each of its commands
        for words in [[name, sub] for sub in getattr(command, "commands", {})] or [[name]]:
            result = runner.invoke(app, [*words, "--help"])
            assert result.exit_code == 0
            assert "--json" in result.output, words
            assert f"detprof {' '.join(words)}" in readme, f"docs/cli.md does not show `detprof {' '.join(words)}`"


def test_zoo_json_lists_arch_framework_params_input() -> None:
    result = runner.invoke(app, ["zoo", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    vgg19 = next(r for r in rows if r["arch"] == "vgg19")
    assert vgg19 == {**vgg19, "framework": "pytorch", "params": 143_667_240, "input": [3, 224, 224]}


def test_gpus_json_is_a_list() -> None:
    result = runner.invoke(app, ["gpus", "--json"])
    assert result.exit_code == 0
    assert isinstance(json.loads(result.stdout)["gpus"], list)


@pytest.mark.parametrize(("args", "message"), [
    (["--arch", "alexnet"], r"unknown arch 'alexnet'; accepted: vgg16"),
    (["--arch", "medium-cnn", "--kernel-size", "0"], r"--kernel-size 0 is not accepted; use 1 to 7"),
    (["--arch", "medium-cnn", "--kernel-size", "9"], r"--kernel-size 9 is not accepted; use 1 to 7"),
    (["--batch-size", "0"], r"--batch-size 0 is not accepted; use an integer from 1 to 65,536"),
    (["--batch-size", "1000000000"], r"--batch-size 1000000000 is not accepted; use an integer from 1 to 65,536"),
    (["--image-size", "1000000000"], r"--image-size 1000000000 is not accepted; use at most 4,096 pixels"),
    (["--batch-size", "60000", "--image-size", "4096"], r"--batch-size 60000 at 4096x4096 is not accepted: its "
                                                        r"input alone is 11,250.0 GiB and this machine has"),
    (["--seed", "-1"], r"--seed -1 is not accepted; use an integer from 0 to 4,294,967,295"),
    (["--seed", str(10**30)], r"--seed 1000000000000000000000000000000 is not accepted"),
    (["--threads", str(10**9)], r"--threads 1000000000 is not accepted; this machine has \d+ CPUs"),
    (["--bn"], r"--bn applies to small-cnn only; resnet18"),
    (["--kernel-size", "5"], r"--kernel-size applies to medium-cnn only; resnet18 has no kernel size"),
    (["--job-timeout", "inf"], r"--job-timeout inf is not accepted; use seconds > 0, at most 604,800"),
    (["--gpu", ""], r"--gpu '' is not accepted; give a value"),
    (["--db", "/proc/detprof/x.sqlite"], r"cannot use '/proc/detprof/x.sqlite' as a detprof results database"),
    (["--steps", "-3"], r"--steps -3 is not accepted; use 1 to 100,000"),
    (["--repeats", "0"], r"--repeats 0 is not accepted"),
    (["--modes", "default,turbo"], r"unknown mode 'turbo'; accepted: default, deterministic"),
    (["--modes", "default"], r"--modes takes two modes"),
    (["--arch", "medium-cnn", "--image-size", "32"], r"--image-size 32 is too small for medium-cnn; use >= 64"),
    (["--gpu", "v100"], r"GPU 'v100' is not on this machine; available: .*cpu"),
])
def test_overhead_bad_input_exits_2_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    import torch

    if "--gpu" in args and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    db = [] if "--db" in args else ["--db", str(tmp_path / "r.sqlite")]
    result = runner.invoke(app, ["overhead", *args, *db])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), result.stderr  # no plan line before the error
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r.sqlite").exists()  # nothing ran, nothing stored


@pytest.mark.parametrize("command", [["kernels"], ["runs"]])
def test_reading_commands_without_runs_exit_2(command: list[str], tmp_path: Path) -> None:
    result = runner.invoke(app, [*command, "--db", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 2
    assert "no runs yet" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_unreadable_database_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"\x00garbage" * 500)
    for command in (["kernels"], ["runs"]):
        result = runner.invoke(app, [*command, "--db", str(bad)])
        assert result.exit_code == 2
        assert "cannot use" in result.stderr and "Traceback" not in result.stderr


def test_kernels_rejects_top_zero(tmp_path: Path) -> None:
    result = runner.invoke(app, ["kernels", "--top", "0", "--db", str(tmp_path / "x.sqlite")])
    assert result.exit_code == 2 and "--top 0 is not accepted" in result.stderr


def test_kernels_on_any_trace_file(shared_traces: Path) -> None:
    result = runner.invoke(app, ["kernels", "--trace", str(shared_traces / "a100_alexnet_train.json.gz"),
                                 "--top", "3", "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kind"] == "gpu" and report["device"] == "NVIDIA A100-PG509-200"
    assert [k["name"] for k in report["kernels"]][-1] == "(others)" and len(report["kernels"]) == 4
    assert sum(k["total_us"] for k in report["kernels"]) == pytest.approx(report["total_us"])
    human = runner.invoke(app, ["kernels", "--trace", str(shared_traces / "a100_alexnet_train.json.gz")])
    assert human.exit_code == 0 and "by category" in human.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["kernels", "--trace", "/no/such/trace.json"], "cannot read trace '/no/such/trace.json'"),
    (["kernels", "--trace", "pyproject.toml"], "is not a JSON Chrome trace"),
    (["kernels", "--trace", "pyproject.toml", "--scope", "some"],
     "--scope 'some' is not accepted; use one of steps, all"),
    (["diff", "1", "/no/such.json"], "no results database"),
    (["diff", "/no/a.json", "/no/b.json"], "'/no/a.json' is neither a run id"),
    (["import", "/no/such.json"], "cannot read trace"),
])
def test_trace_commands_reject_bad_input(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, [*args, "--db", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_empty_trace_says_so_instead_of_an_empty_table(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text('{"traceEvents": [{"ph": "X", "cat": "user_annotation", "name": "x", "ts": 0, "dur": 1}]}')
    result = runner.invoke(app, ["kernels", "--trace", str(empty)])
    assert result.exit_code == 2 and "no GPU kernels, memory copies or CPU ops" in result.stderr


def test_import_then_kernels_runs_and_diff(shared_traces: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "imported.sqlite")
    a100 = json.loads(runner.invoke(app, ["import", str(shared_traces / "a100_diff_control.json.gz"),
                                          "--db", db, "--json"]).stdout)
    v100 = json.loads(runner.invoke(app, ["import", str(shared_traces / "v100_diff_test.json.gz"),
                                          "--label", "v100", "--db", db, "--json"]).stdout)
    assert (a100["run_id"], v100["run_id"]) == (1, 2)
    assert a100["device"] == {"kind": "cuda", "name": "NVIDIA A100-PG509-200"}
    stored = json.loads(runner.invoke(app, ["kernels", "--run", "2", "--top", "5", "--db", db, "--json"]).stdout)
    assert stored["mode"] == "v100" and stored["device"]["name"] == "Tesla V100-SXM2-16GB"
    direct = json.loads(runner.invoke(app, ["kernels", "--trace", str(shared_traces / "v100_diff_test.json.gz"),
                                            "--top", "5", "--json"]).stdout)
    assert [k["total_us"] for k in stored["kernels"]] == pytest.approx([k["total_us"] for k in direct["kernels"]])
    runs = json.loads(runner.invoke(app, ["runs", "--db", db, "--json"]).stdout)["runs"]
    assert [r["kind"] for r in runs] == ["trace", "trace"]

    by_run = json.loads(runner.invoke(app, ["diff", "1", "2:v100", "--db", db, "--json"]).stdout)
    by_file = json.loads(runner.invoke(app, ["diff", str(shared_traces / "a100_diff_control.json.gz"),
                                             str(shared_traces / "v100_diff_test.json.gz"), "--json"]).stdout)
    assert by_run["counts"] == by_file["counts"] and by_run["counts"]["added"] > 0
    assert [d["name"] for d in by_run["diff"]] == [d["name"] for d in by_file["diff"]]
    deltas = [abs(d["delta_us"]) for d in by_run["diff"]]
    assert deltas == sorted(deltas, reverse=True)
    assert by_run["total_us_b"] - by_run["total_us_a"] == pytest.approx(v100["modes"][0]["kernel_ms"] * 1000
                                                                         - a100["modes"][0]["kernel_ms"] * 1000)


HEAVY = ("torch", "pandas", "numpy", "scipy")


def heavy_modules_after(args: list[str]) -> list[str]:
    """The heavy libraries loaded by a fresh interpreter that ran ``detprof ARGS`` (and nothing else)."""
    script = ("import sys; from typer.testing import CliRunner; from detprof.cli import app; "
              f"result = CliRunner().invoke(app, {args!r}); "
              f"assert result.exit_code == 0, result.output; print([m for m in {HEAVY!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return list(json.loads(done.stdout.strip().replace("'", '"')))


def test_trace_commands_import_no_torch_pandas_numpy_or_scipy(shared_traces: Path) -> None:
    # torch's import costs about a second, scipy's most of another: only commands that measure should pay them
    trace = str(shared_traces / "a100_alexnet_train.json.gz")
    assert heavy_modules_after(["kernels", "--trace", trace, "--json"]) == []
    assert heavy_modules_after(["kernels", "--trace", trace, "--top", "3"]) == []  # the tables too
    assert "torch" in heavy_modules_after(["zoo", "--json"])  # control: a command that builds models loads torch


@pytest.mark.parametrize(("args", "line"), [
    (["overhead", "--batch-size", "abc"], "detprof: error: --batch-size 'abc' is not accepted; use an integer"),
    (["overhead", "--batch-size", "1.5"], "detprof: error: --batch-size '1.5' is not accepted; use an integer"),
    (["kernels", "--top", "abc"], "detprof: error: --top 'abc' is not accepted; use an integer"),
    (["overhead", "--precision", "x"], "detprof: error: --precision 'x' is not accepted; use a number"),
    (["overhead", "--nosuchflag"], "detprof: error: detprof overhead: no such option: --nosuchflag"),
    (["nosuchcommand"], "detprof: error: no such command 'nosuchcommand'. Commands: advise, audit, check, compare, db, "
                        "diff, gpus"),
    (["db", "nosuch"], "detprof: error: detprof db: no such command 'nosuch'. Commands: export, merge."),
    (["db", "merge", "--nope"], "detprof: error: detprof db merge: no such option: --nope"),
    (["zoo", "extra"], "detprof: error: detprof zoo: got unexpected extra argument"),
])
def test_parser_errors_are_one_line_naming_the_value(args: list[str], line: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), result.stderr


def test_only_detprofs_own_errors_are_user_mistakes() -> None:
    """A ValueError from a bug is not a one-line user error: it keeps its traceback."""
    from detprof.errors import ArgumentError, DetprofError
    from detprof.gpus import GpuSelectionError
    from detprof.kernels import TraceError
    from detprof.modes import UnknownModeError
    from detprof.stability.data import DatasetError
    from detprof.store import StoreError
    from detprof.zoo import UnknownArchError

    for error in (GpuSelectionError, TraceError, UnknownModeError, ArgumentError, DatasetError, StoreError,
                  UnknownArchError):
        assert issubclass(error, DetprofError)
    from detprof import cli

    assert cli.USER_ERRORS == (DetprofError,)
    with pytest.raises(ValueError, match="a bug"):
        with cli.user_errors():
            raise ValueError("a bug in a library")


def test_help_still_works_and_exits_0() -> None:
    result = runner.invoke(app, ["overhead", "--help"])
    assert result.exit_code == 0 and "--precision" in result.stdout


def test_imported_traces_give_time_per_step_only_when_they_say_how_many_steps(shared_traces: Path,
                                                                               tmp_path: Path) -> None:
    db = str(tmp_path / "i.sqlite")
    stepped = json.loads(runner.invoke(app, ["import", str(shared_traces / "a100_diff_control.json.gz"), "--db", db,
                                             "--json"]).stdout)
    assert stepped["protocol"] == {"profile_steps": 6, "steps_known": True}  # ProfilerStep#N annotations
    report = json.loads(runner.invoke(app, ["kernels", "--run", "1", "--db", db, "--json"]).stdout)
    assert report["kernel_ms_per_step"] == pytest.approx(report["kernel_ms_total"] / 6)
    plain = json.loads(runner.invoke(app, ["import", str(shared_traces / "a100_alexnet_train.json.gz"), "--db", db,
                                           "--json"]).stdout)
    assert plain["protocol"]["steps_known"] is False and plain["command"].startswith("detprof import")
    report = json.loads(runner.invoke(app, ["kernels", "--run", "2", "--db", db, "--json"]).stdout)
    assert report["kernel_ms_per_step"] is None and report["kernel_ms_total"] > 0
    human = runner.invoke(app, ["kernels", "--run", "2", "--db", db])
    assert "ms of kernel time in the whole trace" in " ".join(human.stdout.split())


def test_api_functions_take_an_open_store_and_leave_it_open(shared_traces: Path, tmp_path: Path) -> None:
    from detprof.store import ResultStore
    from detprof.trace_import import API_COMMAND, import_trace
    from detprof.views import kernel_report

    with ResultStore(tmp_path / "s.sqlite", create=True) as store:
        imported = import_trace(str(shared_traces / "a100_alexnet_train.json.gz"), store)
        assert imported["command"] == API_COMMAND  # from Python, no made-up command line
        report = kernel_report(store, imported["run_id"], None, 3)
        assert report["run_id"] == imported["run_id"] and store.latest_run_id() == imported["run_id"]


@pytest.mark.parametrize(("out", "message"), [
    ("{tmp}", "is a directory; give a file path such as"),
    ("/proc/detprof-report.html", "cannot be written"),
    ("{tmp}/file.txt/report.html", "cannot create its folder"),
])
def test_report_out_that_cannot_be_written_exits_2_in_one_line(out: str, message: str, shared_traces: Path,
                                                                tmp_path: Path) -> None:
    db = str(tmp_path / "r.sqlite")
    runner.invoke(app, ["import", str(shared_traces / "a100_alexnet_train.json.gz"), "--db", db])
    (tmp_path / "file.txt").write_text("a file, not a folder")
    result = runner.invoke(app, ["report", "--db", db, "--out", out.format(tmp=tmp_path)])
    assert result.exit_code == 2 and "Traceback" not in result.stderr, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_output_fits_80_columns_without_cutting_numbers(shared_traces: Path) -> None:
    wide = CliRunner(env={"COLUMNS": "80"})
    zoo = wide.invoke(app, ["zoo"])
    assert "138,357,544" in zoo.stdout and "…" not in zoo.stdout and "pytorch" not in zoo.stdout
    assert "[1] resnet18-cifar: CIFAR stem" in zoo.stdout  # notes under the table
    assert max(len(line) for line in zoo.stdout.splitlines()) <= 80
    trace = wide.invoke(app, ["kernels", "--trace", str(shared_traces / "v100_diff_test.json.gz"), "--top", "5",
                              "--stats"])
    assert trace.exit_code == 0 and "…" not in trace.stdout and "148,554.0" in trace.stdout
    assert max(len(line) for line in trace.stdout.splitlines()) <= 80
    assert "total µs" in " ".join(trace.stdout.split()) or "total\n" in trace.stdout


def test_in_a_pipe_no_name_or_title_is_wrapped(shared_traces: Path) -> None:
    trace = str(shared_traces / "a100_alexnet_train.json.gz")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    piped = subprocess.run([sys.executable, "-m", "detprof.cli", "kernels", "--trace", trace, "--top", "3"],
                           capture_output=True, text=True, env=env, check=True).stdout.splitlines()
    assert piped[0] == (f"{trace}: top 3 of GPU kernels and memory copies, 66.20 ms in all "
                        "(NVIDIA A100-PG509-200, scope steps)")  # the title is one line of its own
    assert any(re.match(r"Memcpy HtoD \(Pageable -> Device\) +memory copy/set", line) for line in piped)
    assert any(line.startswith("ampere_sgemm_32x32_sliced1x4_tn ") for line in piped)
    # Control: a narrow terminal width, which a user asks for with $COLUMNS, still folds names.
    narrow = subprocess.run([sys.executable, "-m", "detprof.cli", "kernels", "--trace", trace, "--top", "3"],
                            capture_output=True, text=True, env={**env, "COLUMNS": "60"}, check=True).stdout
    assert "ampere_sgemm_32x32_sliced1x4_tn " not in narrow and max(map(len, narrow.splitlines())) <= 60


USER_MODEL = '''
from torch import nn


def build(num_classes):
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, num_classes))


def not_a_model(num_classes):
    return 42


def broken(num_classes):
    raise RuntimeError("no weights here")
'''


@pytest.mark.parametrize(("ref", "message"), [
    ("nope.py:build", "--model 'nope.py': no such file"),
    ("{dir}/net.py:missing", "has no function 'missing'"),
    ("{dir}/net.py:not_a_model", "returned int, not a torch.nn.Module"),
    ("{dir}/net.py:broken", "raised RuntimeError: no weights here"),
    ("{dir}/net.py", "is not accepted; use MODULE:FUNCTION"),
    ("no_such_module_anywhere:build", "module 'no_such_module_anywhere' cannot be imported"),
])
def test_a_bad_model_reference_exits_2_in_one_line(ref: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "net.py").write_text(USER_MODEL)
    result = runner.invoke(app, ["overhead", "--model", ref.format(dir=tmp_path), "--db", str(tmp_path / "u.sqlite")])
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "u.sqlite").exists()


@pytest.mark.slow
def test_overhead_of_your_own_model(tmp_path: Path) -> None:
    (tmp_path / "net.py").write_text(USER_MODEL)
    result = runner.invoke(app, ["overhead", "--model", f"{tmp_path}/net.py:build", "--input-shape", "3,16,16",
                                 "--num-classes", "5", "--steps", "2", "--warmup", "1", "--repeats", "3",
                                 "--profile-steps", "1", "--db", str(tmp_path / "u.sqlite"), "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["workload"]["model_ref"] == f"{tmp_path}/net.py:build" and doc["workload"]["input_shape"] == [3, 16, 16]
    assert doc["workload"]["num_classes"] == 5 and doc["ratio"] > 0 and doc["failed_jobs"] == []
    assert doc["modes"][0]["kernel_ms"] > 0


@pytest.mark.parametrize("command", [["report", "--out"], ["db", "export", "-o"]])
@pytest.mark.parametrize("suffix", ["", "-wal", "-shm"])
def test_no_output_can_overwrite_the_results_database(command: list[str], suffix: str, tmp_path: Path) -> None:
    """`report --out STORE` once replaced the store with HTML and exited 0."""
    import sqlite3

    from tests.stores import store_with_kernels

    db = tmp_path / "r.sqlite"
    store_with_kernels(db, ["aten::mm"])
    target = tmp_path / f"r.sqlite{suffix}"
    before = target.read_bytes() if target.exists() else None
    result = runner.invoke(app, [*command, str(target), "--db", str(db)])
    assert result.exit_code == 2 and "is the results database" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (target.read_bytes() if target.exists() else None) == before
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    # Negative control: another file is written as asked.
    if command[0] == "report":
        pytest.importorskip("plotly")
    elsewhere = tmp_path / ("out.html" if command[0] == "report" else "runs.csv")
    assert runner.invoke(app, [*command, str(elsewhere), "--db", str(db)]).exit_code == 0 and elsewhere.exists()


def test_the_workload_options_are_declared_once_and_read_alike_in_every_command_that_trains() -> None:
    from detprof.cli.common import WORKLOAD_NAMES

    group = get_command(app)
    flags = {"--arch", "--model", "--input-shape", "--num-classes", "--kernel-size", "--bn", "--batch-size",
             "--image-size", "--seq-len", "--sdpa-backend", "--workload", "--compile"}
    helps = {}
    for name in ("overhead", "check", "audit", "advise"):
        options = {opt: param.help for param in group.commands[name].params for opt in param.opts}  # type: ignore[attr-defined]
        assert flags <= set(options), name
        helps[name] = {flag: options[flag] for flag in flags}
    assert helps["overhead"] == helps["check"] == helps["audit"] == helps["advise"]
    assert len(WORKLOAD_NAMES) == len(flags)
    # control: stability trains too, but with its own recipe's options, not the workload's
    stability = {opt for param in group.commands["stability"].params for opt in param.opts}  # type: ignore[attr-defined]
    assert not flags <= stability


def test_help_lists_the_commands_in_the_order_a_user_meets_them() -> None:
    result = runner.invoke(app, ["--help"])
    listed = [line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line.strip()]
    assert listed[:3] == ["overhead", "kernels", "diff"] and listed[-3:] == ["runs", "gpus", "zoo"]
    assert sorted(listed) == sorted(get_command(app).commands)  # every command, once



def test_runs_and_kernels_read_a_store_that_mixes_verdicts_and_measurements(tmp_path: Path) -> None:
    from detprof.check.record import store_verdict
    from tests.stores import store_with_kernels

    db = tmp_path / "mixed.sqlite"
    measured = store_with_kernels(db, ["sgemm"])
    check = json.loads((Path(__file__).parent / "data" / "documents" / "check.json").read_text())
    store_verdict("check", check, str(db))  # the newest run is now a verdict, with no kernel rows
    listed = runner.invoke(app, ["runs", "--db", str(db)]).stdout
    assert "default,deterministic" in listed and "nan" not in listed and "check: bitwise identical" in listed
    shown = runner.invoke(app, ["kernels", "--db", str(db)])
    assert shown.exit_code == 0 and f"run {measured}, mode deterministic" in shown.stdout, shown.stderr


@pytest.mark.parametrize("command", [["report", "--out"], ["db", "export", "-o"]])
def test_no_output_can_overwrite_the_store_through_a_hard_link_or_a_symlink(command: list[str],
                                                                             tmp_path: Path) -> None:
    import os
    import sqlite3

    from tests.stores import store_with_kernels

    db = tmp_path / "r.sqlite"
    store_with_kernels(db, ["aten::mm"])
    hard, soft = tmp_path / "elsewhere" / "hard.html", tmp_path / "soft.html"
    hard.parent.mkdir()
    os.link(db, hard)
    os.symlink(db, soft)
    for target in (hard, soft):
        result = runner.invoke(app, [*command, str(target), "--db", str(db)])
        assert result.exit_code == 2 and "is the results database" in result.stderr, result.stderr
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    # control: a copy of the store is another file, and is written over as asked
    copy = tmp_path / "copy.html"
    copy.write_bytes(db.read_bytes())
    assert runner.invoke(app, [*command, str(copy), "--db", str(db)]).exit_code == 0


def test_the_stop_line_names_what_the_stopped_command_kept() -> None:
    from detprof.cli.errors import Terminated, interrupted_line

    check = interrupted_line([Terminated()], "check")
    assert check == ("detprof: terminated (SIGTERM): the check stopped before its verdict: its runs were ended and "
                     "nothing was stored")
    assert "resume the sweep" in interrupted_line([KeyboardInterrupt()], "sweep")
    assert "sweep" not in interrupted_line([KeyboardInterrupt()], "overhead")


def test_the_version_is_the_installed_packages() -> None:
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"detprof {version('detprof')}\n"


def test_the_readme_holds_two_set_up_commands_and_ci_runs_the_second_verbatim() -> None:
    readme = (REPO / "README.md").read_text()
    set_up = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    blocks = set_up.split("```")[1::2]
    assert len(blocks) == 1, "the set-up section holds one code block"
    commands = [line for line in blocks[0].splitlines() if line.strip()]
    assert len(commands) == 2 and commands[0].endswith("detprof overhead")
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines(), ".ci/run must run the README's test command as written"
