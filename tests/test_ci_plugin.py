"""detprof's pytest plugin, run as a user runs it: pytest in a new process (pytest's own
``pytester``), the plugin loaded through its entry point, real trainings in fresh processes.

The golden tests: a golden record written with --detprof-refresh passes, and fails with the first
divergence when the seed or the learning rate changes (the negative controls); a missing golden
record fails without the refresh option. The tax gate: one real measurement judged against a limit
far above it (pass), below its interval (fail), and inside it (inconclusive, a failure, or a pass
with a warning when asked). The example CI workflow: its pytest line, with its environment, passes
on its committed golden record.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "ci"

pytestmark = pytest.mark.slow

GOLDEN_TESTS = '''
import pytest

pytestmark = pytest.mark.detprof(arch="small-cnn", steps=1, ops_at=(1,))


def test_same(detprof_golden):
    comparison = detprof_golden(name="golden.json")  # None when --detprof-refresh wrote it
    assert comparison is None or comparison["verdict"] == "equal"


def test_other_seed(detprof_golden):
    detprof_golden(name="golden.json", seed=1)


def test_other_learning_rate(detprof_golden):
    detprof_golden(name="golden.json", lr=0.02)
'''


def test_a_golden_record_passes_and_fails_with_the_first_divergence_when_seed_or_lr_change(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_golden=GOLDEN_TESTS)
    missing = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "test_same")
    missing.assert_outcomes(failed=1)
    missing.stdout.fnmatch_lines(["*golden record '*golden.json' does not exist; run with --detprof-refresh*"])
    assert not (pytester.path / "golden.json").exists()

    written = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "test_same", "--detprof-refresh")
    written.assert_outcomes(passed=1)
    assert (pytester.path / "golden.json").is_file()

    compared = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    compared.assert_outcomes(passed=1, failed=2)
    text = compared.stdout.str()
    # another learning rate: the same initial weights, parted by the first update
    assert "first divergent step 1: parameter features.0.weight" in text
    assert "made with learning_rate 0.01 vs 0.02" in text
    # another seed: other initial weights, before any step
    assert "first divergent step 0: parameter features.0.weight" in text and "made with seed 0 vs 1" in text


TAX_TESTS = '''
import pytest

pytestmark = pytest.mark.detprof(arch="small-cnn", repeats=3, warmup_steps=1, timed_steps=4, profile_steps=0)


def test_far_above(detprof_tax):
    assert detprof_tax(100.0).outcome == "pass"


def test_below(detprof_tax):
    low, high = detprof_tax(100.0).ci  # the same measurement: one per session and configuration
    detprof_tax(low * 0.9)


def test_inside(detprof_tax):
    low, high = detprof_tax(100.0).ci
    detprof_tax((low + high) / 2)


def test_inside_counted_as_a_pass(detprof_tax):
    low, high = detprof_tax(100.0).ci
    assert detprof_tax((low + high) / 2, inconclusive="pass").outcome == "inconclusive"
'''


def test_the_tax_gate_passes_fails_and_is_inconclusive_on_one_real_measurement(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_tax=TAX_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", "--detprof-db",
                                           str(pytester.path / "tax.sqlite"))
    result.assert_outcomes(passed=2, failed=2, warnings=1)
    text = result.stdout.str()
    assert "determinism tax fail: x" in text and "is over the limit" in text
    assert "determinism tax inconclusive, counted as a failure" in text
    assert "determinism tax inconclusive, counted as a pass" in text  # the warning
    assert text.count("PASSED test_tax.py::test_far_above") == 1
    from detprof.store import open_store

    with open_store(str(pytester.path / "tax.sqlite")) as store:
        assert list(store.list_runs()["kind"]) == ["overhead"]  # four tests, one measurement


def _workflow() -> tuple[dict[str, str], list[str]]:
    """The example workflow's environment and its pytest command."""
    import yaml

    job = next(iter(yaml.safe_load((EXAMPLE / "determinism.yml").read_text())["jobs"].values()))
    line = next(step["run"] for step in job["steps"] if "run" in step and "pytest" in step["run"])
    return {k: str(v) for k, v in job.get("env", {}).items()}, shlex.split(line)


def _has_avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not _has_avx2(), reason="the committed golden record pins ATen and MKL to AVX2")
def test_the_example_workflow_passes_on_its_committed_golden_record(pytester: pytest.Pytester,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    environment, command = _workflow()
    assert command[:3] == ["python", "-m", "pytest"] and "examples/ci" in command
    shutil.copytree(EXAMPLE, pytester.path / "examples" / "ci")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    result = pytester.runpytest_subprocess(*command[3:])
    result.assert_outcomes(passed=2)


CHECK_TESTS = '''
import pytest

MODELS = {models!r}

pytestmark = pytest.mark.detprof(steps=2, input_shape=(3, 16, 16), batch_size=4)


def test_a_deterministic_model(detprof_check):
    document = detprof_check(model=MODELS + ":unpool_net", mode="default")
    assert document["verdict"] == "identical"


def test_unseeded_noise(detprof_check):
    detprof_check(model=MODELS + ":noise_at_known_op_net")
'''


def test_the_check_fixture_passes_a_reproducible_model_and_names_the_op_of_one_that_is_not(
        pytester: pytest.Pytester) -> None:
    models = str(REPO / "tests" / "data" / "models" / "check_models.py")
    pytester.makepyfile(test_check=CHECK_TESTS.format(models=models))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*detprof check: not identical*", "*first divergent step 1*",
                                 "*first divergent op aten::randn* in body.noise*root-cause*"])
