"""detprof's pytest plugin, registered through the ``pytest11`` entry point when detprof is
installed. It does nothing until a test asks for one of its fixtures:

- ``detprof_record(arch=..., steps=3, seed=0, lr=None, mode="deterministic", ops_at=None, **workload)``
  records a training in fresh processes and returns the record (detprof.records);
- ``detprof_golden(record=None, name=None, **options)`` compares a record (made from the test's
  ``detprof`` marker and ``options`` when not given) with the golden record committed beside the
  test, ``golden/<test file>/<test>.json``; ``pytest --detprof-refresh`` writes it instead;
- ``detprof_check(arch=..., script=None, ...)`` runs ``detprof check`` (or ``check --script``);
- ``detprof_tax(limit, inconclusive="fail", arch=..., **protocol)`` is the tax gate
  (detprof.ci.tax) on a measurement made once per session and configuration.

Each fails the test with one message that carries what a person needs first: the first
divergent step, parameter and op, and what differs in how the two were made. The marker
``@pytest.mark.detprof(arch=..., steps=..., ...)`` marks a reproducibility test and gives the
fixtures its keywords as defaults. Importing this module imports neither torch nor detprof's
measuring code.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REFRESH_OPTION = "--detprof-refresh"
MARKER = "detprof"
# Keywords of the fixtures and marker that are not a workload's own fields.
RECORD_KEYWORDS = ("steps", "seed", "lr", "mode", "ops_at", "threads", "gpu", "script", "arguments")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("detprof", "detprof: reproducibility tests and golden records")
    group.addoption(REFRESH_OPTION, action="store_true", default=False,
                    help="Write the golden records of detprof_golden from this run instead of comparing with them.")
    group.addoption("--detprof-db", default=None,
                    help="Store detprof_tax's measurements here (default: a temporary store per session).")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(**options): a detprof reproducibility test; its keywords (arch, "
                                       "steps, seed, lr, mode, batch_size, ...) are the defaults of detprof_record and "
                                       "detprof_golden")


@contextmanager
def _as_test_failures() -> Iterator[None]:
    """detprof's own errors (a bad value, a missing golden record) as a failed test in one line."""
    from detprof.errors import DetprofError

    try:
        yield
    except DetprofError as error:
        pytest.fail(f"detprof: {error}", pytrace=False)


def _request(options: dict[str, Any]) -> Any:
    """A WorkloadRequest from the keywords that are a workload's (arch, batch_size, model, ...)."""
    from dataclasses import fields

    from detprof.errors import require
    from detprof.workload import WorkloadRequest

    known = {field.name for field in fields(WorkloadRequest)}
    workload = {k: v for k, v in options.items() if k not in RECORD_KEYWORDS}
    unknown = sorted(set(workload) - known)
    require(not unknown, f"detprof keyword {', '.join(unknown)} is not accepted; use {', '.join(sorted(known))} or "
                         f"{', '.join(RECORD_KEYWORDS)}")
    return WorkloadRequest(**workload)


def _marker_options(node: pytest.Item) -> dict[str, Any]:
    marker = node.get_closest_marker(MARKER)
    return dict(marker.kwargs) if marker else {}


def describe_comparison(comparison: dict[str, Any]) -> str:
    """A comparison in a few lines: the verdict, where the two records parted, how far apart they
    ended, and the first differences in how they were made."""
    from detprof.check.verdict_kinds import op_words

    a, b = comparison["labels"]
    lines = [f"{a} vs {b}: {comparison['verdict']} ({comparison['steps_compared']} step(s) compared)"]
    lines += [f"  {reason}" for reason in comparison["verdict_reasons"]]
    divergence = comparison.get("first_divergence")
    if divergence:
        if divergence.get("structure"):
            lines.append(f"  the models' {divergence['structure']} differ ({divergence['parameter']} vs "
                         f"{divergence['other']})")
        else:
            total = comparison["growth"][0]["parameters"] if comparison.get("growth") else "?"
            lines.append(f"  first divergent step {divergence['step']}: parameter {divergence['parameter']} "
                         f"({divergence['parameters_differing']} of {total} differ), "
                         f"loss {'differs' if divergence['loss_differs'] else 'equal'}")
        op = divergence.get("op")
        if op:
            lines.append(f"  first divergent op {op_words(op)}")
        elif comparison.get("op_note"):
            lines.append(f"  {comparison['op_note']}")
    if comparison.get("growth"):
        last = comparison["growth"][-1]
        distance = "" if last["weight_distance"] is None else f", weights ~{last['weight_distance']:.3g} apart (L2)"
        loss = "" if last["loss_diff"] is None else f"|Δ loss| {last['loss_diff']:.3g}"
        lines.append(f"  by step {last['step']}: {last['parameters_differing']} parameter(s) differ, {loss}{distance}")
    for row in comparison.get("configuration_differences") or []:
        lines.append(f"  made with {row['field']} {row['a']} vs {row['b']}")
    for row in [r for r in comparison.get("environment_differences") or [] if r["relevant"]][:3]:
        lines.append(f"  environment: {row['factor']} {row['a']} vs {row['b']}")
    return "\n".join(lines)


def _shown(path: Path, root: Path) -> str:
    """A golden record's path as a reader finds it: relative to pytest's root folder when under it."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def golden_path(node: pytest.Item, name: str | None = None) -> Path:
    """Where a test's golden record lives: ``name`` beside the test file, or
    ``golden/<test file's stem>/<test name>.json`` there (the name's unsafe characters as _)."""
    folder = Path(str(node.fspath)).parent
    if name:
        return folder / name
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", node.name).strip("_")
    return folder / "golden" / Path(str(node.fspath)).stem / f"{safe}.json"


@pytest.fixture
def detprof_record(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """A function that records a training in fresh processes and returns the record; its keywords
    (arch, steps, seed, lr, mode, ops_at, threads, gpu and the workload's fields, or script and
    arguments for a training script run as it is) default to the test's ``detprof`` marker's."""

    def record(script: str | None = None, arguments: tuple[str, ...] = (), **options: Any) -> Any:
        from detprof.records.make import make_record, make_script_record

        chosen = {**_marker_options(request.node), **options}
        script = script or chosen.pop("script", None)
        with _as_test_failures():
            if script is not None:
                return make_script_record(script, tuple(arguments or chosen.get("arguments", ())),
                                          int(chosen.get("steps", 3)), chosen.get("mode"), chosen.get("threads"),
                                          tuple(chosen.get("ops_at", (1,))))
            return make_record(_request(chosen), mode=chosen.get("mode", "deterministic"),
                               gpu=chosen.get("gpu", "cpu"), steps=int(chosen.get("steps", 3)),
                               seed=int(chosen.get("seed", 0)), learning_rate=chosen.get("lr"),
                               ops_at=chosen.get("ops_at"), threads=chosen.get("threads"))

    return record


@pytest.fixture
def detprof_golden(request: pytest.FixtureRequest, detprof_record: Callable[..., Any]) -> Callable[..., Any]:
    """A function that compares a record with the test's golden record and fails the test when they
    are not bitwise equal (with the first divergence), or writes the golden record under
    ``--detprof-refresh``. Returns the comparison document (None when it wrote)."""
    refresh = bool(request.config.getoption(REFRESH_OPTION))

    def golden(record: Any = None, name: str | None = None, **options: Any) -> dict[str, Any] | None:
        from detprof.records.compare import EQUAL
        from detprof.records.golden import against_golden, require_golden

        path = golden_path(request.node, name)
        with _as_test_failures():
            known = require_golden(path, refresh, REFRESH_OPTION)  # before anything is measured
            made = record if record is not None else detprof_record(**options)
            outcome = against_golden(made, path, refresh, known, _shown(path, request.config.rootpath))
        comparison = outcome["comparison"]
        if comparison is None:
            request.node.user_properties.append(("detprof_golden", f"{outcome['action']} {path}"))
            return None
        if comparison["verdict"] != EQUAL:
            pytest.fail(describe_comparison(comparison), pytrace=False)
        return comparison  # type: ignore[no-any-return]

    return golden


@pytest.fixture
def detprof_check(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """A function that runs ``detprof check`` (two trainings in fresh processes, or with ``script``
    a script run twice) and fails the test unless they are bitwise identical; returns the check
    document. Keywords: arch and the workload's fields, mode, steps, seed, gates ({"threads": (1, 2)},
    ...), locate_op, and for a script: script, arguments, threads."""

    def check(script: str | None = None, arguments: tuple[str, ...] = (), **options: Any) -> dict[str, Any]:
        from detprof.check.verdict import EXIT_CODES

        chosen = {**_marker_options(request.node), **options}
        with _as_test_failures():
            if script is not None:
                from detprof.check.script import AS_IS, run_script_check

                document = run_script_check(script, arguments, int(chosen.get("steps", 10)),
                                            chosen.get("mode", AS_IS), chosen.get("threads"),
                                            bool(chosen.get("locate_op", True)))
            else:
                from detprof.check import run_check

                gates = chosen.pop("gates", None)
                locate = bool(chosen.pop("locate_op", True))
                document = run_check(_request(chosen), chosen.get("mode", "deterministic"), chosen.get("gpu", "cpu"),
                                     gates, int(chosen.get("steps", 10)), int(chosen.get("seed", 0)), locate)
        if EXIT_CODES[document["verdict"]] != 0:
            pytest.fail(_describe_check(dict(document)), pytrace=False)
        return dict(document)

    return check


def _describe_check(document: dict[str, Any]) -> str:
    from detprof.check.verdict_kinds import divergence_findings

    lines = [f"detprof check: {document['verdict']}"] + [f"  {r}" for r in document.get("verdict_reasons") or []]
    return "\n".join(lines + [f"  {line}" for line in divergence_findings(document.get("first_divergence"))])


_MEASURED: dict[tuple[Any, ...], dict[str, Any]] = {}  # one overhead measurement per configuration and session


@pytest.fixture
def detprof_tax(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """A function ``tax(limit, inconclusive="fail", arch=..., **protocol)`` that gates the cost of
    determinism (detprof.ci.tax) and returns the TaxVerdict: it fails the test when the ratio's 95%
    CI is over ``limit``, and when it holds it unless ``inconclusive="pass"`` (then it warns). The
    measurement (``detprof overhead``; ``protocol``: repeats, max_time_s, timed_steps, ...) is made
    once per session and configuration, so several limits cost one measurement."""
    db = request.config.getoption("--detprof-db")

    def tax(limit: float, inconclusive: str = "fail", **options: Any) -> Any:
        from detprof.ci.tax import INCONCLUSIVE, judge_document, require_limit

        chosen = {**_marker_options(request.node), **options}
        with _as_test_failures():
            require_limit(limit, inconclusive, "limit")
            protocol = {k: chosen.pop(k) for k in list(chosen) if k in _PROTOCOL_KEYWORDS}
            gpu = chosen.pop("gpu", "cpu")
            key = (tuple(sorted(chosen.items())), tuple(sorted(protocol.items())), gpu)
            if key not in _MEASURED:
                from detprof.overhead import run_overhead

                store = db or str(tmp_path_factory.getbasetemp() / "detprof-tax.sqlite")
                _MEASURED[key] = dict(run_overhead(_request(chosen), gpu=gpu, db=store, **protocol))
            verdict = judge_document(_MEASURED[key], limit, inconclusive)
        request.node.user_properties.append(("detprof_tax", verdict.sentence))
        if not verdict.passed:
            pytest.fail(verdict.sentence, pytrace=False)
        if verdict.outcome == INCONCLUSIVE:
            warnings.warn(verdict.sentence, pytest.PytestWarning, stacklevel=2)
        return verdict

    return tax


_PROTOCOL_KEYWORDS = frozenset({"warmup_steps", "timed_steps", "profile_steps", "repeats", "threads", "seed",
                                "precision", "max_time_s", "modes"})
