"""Bad input, for every command: exit 2 and ONE line on stderr naming the bad value, before any
measurement starts, whether stderr is a terminal or a pipe; under --json the error is also the one
JSON document on stdout."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

# One bad value per command (and per db subcommand), each with the words its error must contain.
BAD = {
    "overhead": (["overhead", "--arch", "nope"], "unknown arch 'nope'"),
    "kernels": (["kernels", "--trace", "missing.json"], "missing.json"),
    "diff": (["diff", "missing-a.json", "missing-b.json"], "missing-a.json"),
    "import": (["import", "missing.json"], "missing.json"),
    "report": (["report", "--out", ""], "--out '' is not accepted"),
    "stability": (["stability", "--runs", "1"], "--runs 1 is not accepted"),
    "check": (["check", "--arch", "nope"], "unknown arch 'nope'"),
    "audit": (["audit", "--arch", "nope"], "unknown arch 'nope'"),
    "advise": (["advise", "--arch", "nope"], "unknown arch 'nope'"),
    "infer": (["infer", "--rows", "batch,nope"], "--rows 'batch,nope' is not accepted"),
    "record": (["record", "--arch", "small-cnn", "--ops-at", "4"], "--ops-at 4 is not accepted; use steps from 1 to 3"),
    "compare": (["compare", str(Path(__file__).parent / "data" / "records" / "small-cnn.json"), "missing.json"],
                "record 'missing.json' is not accepted: no such file"),
    "sweep": (["sweep", "missing.toml"], "missing.toml"),
    "runs": (["runs", "--db", "missing.sqlite"], "no results database at 'missing.sqlite'"),
    "gpus": (["gpus", "--nope"], "no such option: --nope"),
    "zoo": (["zoo", "--nope"], "no such option: --nope"),
    "db merge": (["db", "merge", "missing.sqlite"], "'missing.sqlite' is not a file"),
    "db export": (["db", "export", "--db", "missing.sqlite"], "no results database at 'missing.sqlite'"),
}


def _run(args: list[str], cwd: Path, terminal: bool) -> tuple[int, str, str]:
    """Run detprof; stderr a pipe, or a pseudo-terminal as in an interactive shell. (exit, stdout, stderr)"""
    argv = [sys.executable, "-m", "detprof.cli", *args]
    env = {**os.environ, "COLUMNS": "100"}
    if not terminal:
        done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=120, env=env)
        return done.returncode, done.stdout, done.stderr
    leader, follower = pty.openpty()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=follower, cwd=cwd, env=env, text=True)
    os.close(follower)
    stdout = process.communicate(timeout=120)[0]
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.returncode, stdout, b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.mark.slow
@pytest.mark.parametrize("terminal", [False, True], ids=["pipe", "terminal"])
@pytest.mark.parametrize("command", sorted(BAD))
def test_bad_input_exits_2_in_one_line_and_as_json(command: str, terminal: bool, tmp_path: Path) -> None:
    args, words = BAD[command]
    code, stdout, stderr = _run(args, tmp_path, terminal)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, (code, stderr)
    assert len(lines) == 1 and stderr.strip() == lines[0], stderr  # no blank line before it either
    assert lines[0].startswith("detprof: error: ") and words in lines[0], lines[0]
    assert "\x1b[" not in lines[0]  # no colour codes around the one line
    assert stdout == ""  # nothing on stdout without --json
    assert not list(tmp_path.rglob("*.sqlite")) and not (tmp_path / ".detprof").exists()  # nothing measured
    if command in ("gpus", "zoo"):
        return  # their bad input is an unknown option: --json below would be just another
    code, stdout, stderr = _run([*args, "--json"], tmp_path, terminal)
    assert code == 2
    document = json.loads(stdout)  # exactly one JSON document
    assert document == {"document_version": 1,
                        "error": {"message": lines[0].removeprefix("detprof: error: "), "exit_code": 2}}


def test_a_json_error_document_can_fail_its_negative_control(tmp_path: Path) -> None:
    """The checks above can fail: a good command under --json prints its document, not an error."""
    code, stdout, _ = _run(["zoo", "--json"], tmp_path, terminal=False)
    assert code == 0 and "error" not in json.loads(stdout)


LIMITS = [
    (["overhead", "--steps", "100000000000"], "--steps 100000000000 is not accepted; use 1 to 100,000"),
    (["overhead", "--warmup", "1000001"], "--warmup 1000001 is not accepted"),
    (["overhead", "--profile-steps", "100000"], "--profile-steps 100000 is not accepted"),
    (["overhead", "--repeats", "99999999999999999999"], "--repeats 99999999999999999999 is not accepted"),
    (["overhead", "--max-time", "inf"], "--max-time inf is not accepted"),
    (["overhead", "--job-timeout", "1e12"], "--job-timeout 1000000000000.0 is not accepted"),
    (["stability", "--runs", "10000000000"], "--runs 10000000000 is not accepted; use 2 to 1,000"),
    (["stability", "--epochs", "100000000000"], "--epochs 100000000000 is not accepted; use 1 to 10,000"),
    (["stability", "--run-timeout", "inf"], "--run-timeout inf is not accepted"),
    (["overhead", "--arch", ""], "--arch '' is not accepted; give a value"),
    (["report", "--out="], "--out '' is not accepted; give a value"),
    (["import", "t.json", "--label", ""], "--label '' is not accepted; give a value"),
    (["stability", "--fix", ""], "--fix '' is not accepted; give a value"),
    (["diff", "", "b.json"], "an empty argument ('', argument 2) is not accepted"),
    # digits that str.isdigit() takes and int() does not: one parser reads every whole number
    (["check", "--arch", "small-cnn", "--workers", "\u00b2,1"], "--workers '\u00b2,1' is not accepted"),
    (["check", "--arch", "small-cnn", "--world-size", "\u00b2"], "--world-size '\u00b2' is not accepted"),
    (["check", "--arch", "small-cnn", "--threads", "\u00b2"], "--threads '\u00b2' is not accepted"),
    (["check", "--arch", "small-cnn", "--batch-invariance", "--batch-sizes", "\u00b2"],
     "--batch-sizes '\u00b2' is not accepted"),
    (["overhead", "--gpu", "\u00b2"], "GPU '\u00b2' is not on this machine"),
    (["overhead", "--arch", "small-cnn", "--input-shape", "3,\u00b2,4"], "--input-shape '3,\u00b2,4' is not accepted"),
    (["diff", "\u00b2", "1"], "'\u00b2' is neither a run id"),
    (["check", "--arch", "small-cnn", "--workers", "\u0663"], "--workers '\u0663' is not accepted"),
    (["record", "--steps", "1001"], "--steps 1001 is not accepted; use 1 to 1000"),
    (["record", "--lr", "-0.1"], "--lr -0.1 is not accepted; use a learning rate above 0"),
    (["record", "--lr", "nan"], "--lr nan is not accepted"),
    (["record", "--ops-at", "1,x"], "--ops-at '1,x' is not accepted; use step numbers"),
    (["record", "--refresh"], "--refresh is not accepted without --golden"),
    (["record", "--golden", "missing-golden.json"], "golden record 'missing-golden.json' does not exist; run with "
                                                    "--refresh"),
    (["overhead", "--max-tax", "0"], "--max-tax 0 is not accepted; use a ratio of step times above 0"),
    (["overhead", "--max-tax", "1.35", "--inconclusive", "maybe"], "--inconclusive 'maybe' is not accepted"),
    (["overhead", "--inconclusive", "pass"], "--inconclusive is not accepted without --max-tax"),
    (["infer", "--record", "r.json", "--rows", "batch"], "--record decodes the reference once; drop --rows"),
    (["infer", "--record", "r.json", "--cost"], "--record decodes the reference once; drop --cost"),
]


@pytest.mark.parametrize(("args", "message"), LIMITS)
def test_values_no_real_use_reaches_and_empty_values_are_refused(args: list[str], message: str,
                                                                 tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from detprof.cli import app

    result = CliRunner().invoke(app, [*args, "--db", str(tmp_path / "r.sqlite")] if args[0] != "diff" else args)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "r.sqlite").exists()


def test_a_bad_busy_timeout_is_named(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from detprof.cli import app
    from detprof.store import ResultStore

    ResultStore(tmp_path / "r.sqlite", create=True).close()
    runner = CliRunner()
    bad = runner.invoke(app, ["runs", "--db", str(tmp_path / "r.sqlite")], env={"DETPROF_DB_BUSY_TIMEOUT": "abc"})
    assert bad.exit_code == 2 and "$DETPROF_DB_BUSY_TIMEOUT='abc' is not accepted" in bad.stderr
    good = runner.invoke(app, ["runs", "--db", str(tmp_path / "r.sqlite")], env={"DETPROF_DB_BUSY_TIMEOUT": "5"})
    assert good.exit_code == 0  # the negative control


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised() -> None:
    from detprof.store.transfer import spreadsheet_safe

    assert spreadsheet_safe('=HYPERLINK("http://x","y")') == '\'=HYPERLINK("http://x","y")'
    assert [spreadsheet_safe(v) for v in ("+1", "-2", "@SUM(A1)", "\tx")] == ["'+1", "'-2", "'@SUM(A1)", "'\tx"]
    assert [spreadsheet_safe(v) for v in ("vgg19", -1.5, None, "a=b")] == ["vgg19", -1.5, None, "a=b"]


def test_names_from_a_trace_print_safely_in_the_terminal(tmp_path: Path) -> None:
    """A kernel name with U+202E would reverse the rest of its line on screen, and [/bold] is rich markup."""
    from typer.testing import CliRunner

    from detprof.cli import app
    from tests.kineto_traces import write_kineto_trace

    names = ["evil\u202eexe.kernel", "bracket[/bold]kernel", "plain_gemm_kernel"]
    trace = write_kineto_trace(tmp_path / "t.json", [(n, 10.0) for n in names], "compact")
    shown = CliRunner().invoke(app, ["kernels", "--trace", str(trace)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.stderr
    assert "\u202e" not in shown.stdout and "evil\\u202eexe.kernel" in shown.stdout
    assert "bracket[/bold]kernel" in shown.stdout and "plain_gemm_kernel" in shown.stdout
    document = CliRunner().invoke(app, ["kernels", "--trace", str(trace), "--json"])
    assert "evil\u202eexe.kernel" in {k["name"] for k in json.loads(document.stdout)["kernels"]}  # data unchanged


def test_a_reference_is_checked_from_its_source_without_running_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from detprof.usercode import UserCodeError, parse_reference

    monkeypatch.chdir(tmp_path)
    plain = tmp_path / "plain.py"
    plain.write_text("import sys\nsys.exit('ran')\n\ndef build(num_classes):\n    return None\n\n"
                     "def _helper():\n    pass\n")
    with pytest.raises(UserCodeError, match=r"plain.py has no function 'buld' \(read from its source without "
                                            r"running it; its functions: build\)"):
        parse_reference("plain.py:buld", "--model")
    assert parse_reference("plain.py:build", "--model") == ("plain.py", "build")
    # the same module by name, found in the current folder as a child interpreter would find it
    with pytest.raises(UserCodeError, match="plain has no function 'buld'"):
        parse_reference("plain:buld", "--model")
    with pytest.raises(UserCodeError, match=r"module 'nowhere.models' cannot be imported \(no module named "
                                            "'nowhere'"):
        parse_reference("nowhere.models:build", "--workload")
    # names the source cannot show are left to the child: a star import, globals(), a module __getattr__
    for index, body in enumerate(["from os.path import *\n", "globals()['late'] = len\n",
                                  "def __getattr__(name):\n    return len\n"]):
        dynamic = tmp_path / f"dynamic{index}.py"
        dynamic.write_text(body)
        assert parse_reference(f"{dynamic.name}:late", "--model") == (dynamic.name, "late")
    # names bound under a top-level if, or by an import, count as defined
    guarded = tmp_path / "guarded.py"
    guarded.write_text("import os\nif os.name:\n    def build(n):\n        return n\nfrom json import loads as load\n")
    assert parse_reference("guarded.py:build", "--model")[1] == "build"
    assert parse_reference("guarded.py:load", "--model")[1] == "load"


# Bad names and numbers of every command that runs a framework: each is refused before one loads.
BEFORE_ANY_FRAMEWORK = [
    ["overhead", "--arch", "resnet19"], ["overhead", "--batch-size", "0"], ["overhead", "--modes", "default,foo"],
    ["overhead", "--gpu", "7"], ["overhead", "--workload", "nomod:build"], ["overhead", "--ablate-modes", "foo"],
    ["overhead", "--model", "tests/data/models/check_models.py:nope"], ["check", "--arch", "resnet19"],
    ["check", "--steps", "-1"], ["check", "--framework", "tf", "--arch", "resnet19"], ["audit", "--arch", "nope"],
    ["advise", "--arch", "nope"], ["stability", "--runs", "0"], ["stability", "--task", "nope"],
    ["sweep", "missing.toml"], ["check", "--script", "missing.py"], ["overhead", "--framework", "jax"],
    ["infer", "--arch", "resnet18"], ["infer", "--config", "missing-folder"], ["infer", "--batch-sizes", "1,8"],
    ["infer", "--model", "tests/data/inference/models.py:lookup"], ["infer", "--dtypes", "float64"],
    ["infer", "--prompts-file", "tests/data/inference/prompts.txt"],
    ["record", "--arch", "resnet19"], ["record", "--ops-at", "9"], ["record", "--golden", "missing.json"],
    ["compare", "tests/data/records/small-cnn.json", "tests/data/records/README.md"],
    ["overhead", "--max-tax", "-1"],
]


@pytest.mark.slow
@pytest.mark.parametrize("args", BEFORE_ANY_FRAMEWORK, ids=" ".join)
def test_bad_input_is_refused_before_any_framework_is_imported(args: list[str], tmp_path: Path) -> None:
    """What Python imported on the way to the refusal (its -X importtime log) holds no framework."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "detprof.cli", *args, "--db",
                           str(tmp_path / "r.sqlite")], capture_output=True, text=True, cwd=root, timeout=120)
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    refusal = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert done.returncode == 2 and len(refusal) == 1 and refusal[0].startswith("detprof: error:"), refusal
    assert not imported & {"torch", "tensorflow", "jax", "lightning", "transformers"}, sorted(imported)
