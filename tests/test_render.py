"""The renderers, from the golden documents in tests/data/documents/ (real --json output): each
kind prints what its .txt holds, prints to any console (as from a notebook), and a changed value
changes what it prints. ``python tests/test_render.py --write`` regenerates the .txt files."""

from __future__ import annotations

import copy
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from detprof.render import RENDERERS, render

DOCUMENTS = Path(__file__).parent / "data" / "documents"
WIDTH = 100
OPTIONS: dict[str, dict[str, Any]] = {"merge": {"source": "COPY.sqlite"}}


def rendered(kind: str, document: Any) -> str:
    """What the renderer of ``kind`` prints for ``document`` on a plain 100-column console."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=WIDTH, color_system=None, force_terminal=False, legacy_windows=False)
    render(kind, document, console, **OPTIONS.get(kind, {}))
    return buffer.getvalue()


def golden(kind: str) -> Any:
    return json.loads((DOCUMENTS / f"{kind}.json").read_text())


def test_every_renderer_has_a_golden_document() -> None:
    assert sorted(path.stem for path in DOCUMENTS.glob("*.json")) == sorted(RENDERERS)


@pytest.mark.parametrize("kind", sorted(RENDERERS))
def test_each_renderer_prints_its_golden_document_as_recorded(kind: str) -> None:
    expected = (DOCUMENTS / f"{kind}.txt").read_text()
    assert rendered(kind, golden(kind)) == expected


def test_what_is_printed_comes_from_the_document() -> None:
    overhead = golden("overhead")
    text = rendered("overhead", overhead)
    assert f"step time x{overhead['ratio']:.3f}" in text and overhead["verdict"] in text
    for mode in overhead["modes"]:
        assert f"determinism of {mode['mode']}: {mode['determinism']}" in text
    kernels = golden("trace-kernels")
    assert f"{kernels['total_us'] / 1000:,.2f} ms in all" in rendered("trace-kernels", kernels)
    check = golden("check")
    assert ("bitwise identical" if check["bitwise_identical"] else "not identical") in rendered("check", check)


@pytest.mark.parametrize(("kind", "change"), [
    ("overhead", lambda d: d.update(ratio=d["ratio"] * 2)),
    ("check", lambda d: d.update(max_abs_diff=0.5)),
    ("trace-kernels", lambda d: d["kernels"][0].update(calls=d["kernels"][0]["calls"] + 1)),
    ("sweep", lambda d: d["counts"].update(failed=7)),
    ("stability", lambda d: d.update(accuracy_mean=0.1234)),
])
def test_control_a_changed_value_prints_differently(kind: str, change: Any) -> None:
    document = copy.deepcopy(golden(kind))
    change(document)
    assert rendered(kind, document) != (DOCUMENTS / f"{kind}.txt").read_text()


def test_a_renderer_prints_to_the_console_it_is_given_and_nowhere_else(capsys: pytest.CaptureFixture[str]) -> None:
    text = rendered("zoo", golden("zoo"))
    assert "model zoo (PyTorch)" in text and "model zoo (TensorFlow" in text
    assert capsys.readouterr().out == ""


def test_an_unknown_kind_is_named() -> None:
    with pytest.raises(KeyError, match="no renderer for 'nope'; kinds: overhead"):
        render("nope", {})


if __name__ == "__main__" and "--write" in sys.argv:
    for name in sorted(RENDERERS):
        (DOCUMENTS / f"{name}.txt").write_text(rendered(name, golden(name)))
        print(f"wrote {name}.txt")


def test_names_holding_markup_or_control_characters_print_as_they_are() -> None:
    hostile = "[/]\x1b[31mred\x00[bold]"
    shown_hostile = "[/]\\u001b[31mred\\u0000[bold]"
    check = copy.deepcopy(golden("check"))
    check["workload"]["arch"] = hostile
    check["bitwise_identical"], check["verdict"] = False, "not identical"
    check["first_divergence"] = {"step": 1, "loss_differs": True, "parameter": hostile, "parameters_differing": 1,
                                 "op": {"index": 0, "op": hostile, "phase": "forward", "module": hostile,
                                        "kind": "root-cause"}, "ops_recorded": 3}
    audit = copy.deepcopy(golden("audit"))
    audit["workload"]["arch"] = hostile
    audit["fully_deterministic"] = False
    audit["nondeterministic_ops"] = [{"op": hostile, "count": 1, "dispatched_as": [hostile], "modules": [hostile],
                                      "phases": ["forward"], "steps": [1],
                                      "sites": [{"module": hostile, "phase": "forward", "count": 1}]}]
    for kind, document in (("check", check), ("audit", audit)):
        text = rendered(kind, document)
        assert shown_hostile in text.replace("\n", "").replace(" ", "") or shown_hostile in text, text
        assert "\x1b" not in text and "\x00" not in text
    # control: a plain name is printed unchanged
    assert "small-cnn" in rendered("check", golden("check"))


def test_off_a_terminal_a_long_sentence_does_not_widen_every_line_of_the_table() -> None:
    from detprof.render.console import PIPE_WIDTH

    check = copy.deepcopy(golden("check"))
    check["verdict"], check["verdict_reasons"] = "inconclusive", ["a reason " * 40]
    buffer = io.StringIO()
    render("check", check, Console(file=buffer, width=PIPE_WIDTH, color_system=None, force_terminal=False))
    table_lines = [line for line in buffer.getvalue().splitlines() if not line.startswith(check["workload"]["arch"])]
    assert max(len(line) for line in table_lines) <= 130  # the sentence wraps at 90 columns in its cell
    assert "a reason a reason" in buffer.getvalue()  # control: it is all there, wrapped


def test_a_tensorflow_check_says_so_in_its_first_line_and_a_pytorch_one_needs_not() -> None:
    kind = "check"  # audit and batch invariance are PyTorch's alone
    document = golden(kind)
    document["framework"] = "tensorflow"
    assert "(TensorFlow)" in rendered(kind, document).splitlines()[0]
    document["framework"] = "pytorch"
    assert "PyTorch" not in rendered(kind, document) and "TensorFlow" not in rendered(kind, document)


def test_the_consoles_style_only_what_the_markup_asks_for() -> None:
    from detprof.render.console import err, out

    for console in (out, err):
        sentence = console.render_str("[yellow]noisy: step times vary by more than 10% (IQR/median) in /tmp/x[/]")
        assert [(span.start, span.end, str(span.style)) for span in sentence.spans] == [(0, len(sentence), "yellow")]


def test_advise_says_candidates_are_not_told_apart_when_their_cis_overlap_and_cheaper_when_resolved() -> None:
    from detprof.render.check import standing

    def row(label: str, ratio: float, ci: list[float] | None) -> dict[str, Any]:
        return {"mode": label, "label": label, "bitwise_identical": True, "ratio": ratio, "ratio_ci": ci}

    chosen = row("deterministic-algorithms", 1.068, [1.02, 1.12])
    overlapping = standing(chosen, [row("default", 1.0, None), chosen, row("deterministic", 1.034, [0.99, 1.08])])
    assert overlapping == ("not told apart from deterministic (x1.034, 95% CI 0.990-1.080): the CIs overlap, so the "
                           "candidate with fewer switches is named")
    resolved = standing(row("deterministic-algorithms", 1.01, [1.0, 1.02]), [row("deterministic", 1.3, [1.25, 1.35])])
    assert resolved == "resolved cheaper than deterministic (x1.300, 95% CI 1.250-1.350)"
    failed = {**row("deterministic", 1.0, [0.9, 1.1]), "bitwise_identical": False}
    assert standing(chosen, [failed]) == ""  # a candidate that failed its check is no rival


def test_off_a_terminal_progress_is_a_line_per_stage_and_updates_at_most_every_few_seconds() -> None:
    from detprof.render.console import err
    from detprof.render.progress import PIPED_LINE_INTERVAL_S, PipedProgress

    now = [100.0]
    piped = PipedProgress("advise")
    piped.clock, piped.started = (lambda: now[0]), 100.0
    with err.capture() as captured:
        piped("check default: two trainings of 3 steps", total=5, completed=0)  # the first stage: at once
        now[0] += 1
        piped("check deterministic-algorithms: two trainings", total=5, completed=1)  # a new stage: at once
        piped("overhead of deterministic-algorithms against default", total=4, completed=2)
        now[0] += 1
        piped("overhead of deterministic-algorithms against default: pair 1", total=4, completed=2)  # too soon
        now[0] += PIPED_LINE_INTERVAL_S
        piped("overhead of deterministic-algorithms against default: pair 2", total=4, completed=2)
        piped("overhead of deterministic-algorithms against default: pair 2", total=4, completed=2)  # no change
    assert captured.get().splitlines() == [
        "advise [0/5] 0 s: check default: two trainings of 3 steps",
        "advise [1/5] 1 s: check deterministic-algorithms: two trainings",
        "advise [2/4] 1 s: overhead of deterministic-algorithms against default",
        "advise [2/4] 7 s: overhead of deterministic-algorithms against default: pair 2"]
