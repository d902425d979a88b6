"""Stability experiments for real: digits, small CNN, training in fresh processes on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from detprof.cli import app
from detprof.stability.data import load_digits
from detprof.stability.variants import FIXED_SEED, SOURCES, VariantError, resolve_variant, source_seeds

runner = CliRunner()
QUICK = ["--task", "digits", "--epochs", "1", "--json"]


def _stability(args: list[str]) -> dict:
    result = runner.invoke(app, ["stability", *args])
    assert result.exit_code == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def test_variants_fix_exactly_the_sources_they_name() -> None:
    assert resolve_variant("algo+impl").fixed == () and resolve_variant("algo+impl").mode == "default"
    assert resolve_variant("algo").mode == "deterministic"
    assert resolve_variant("impl").fixed == SOURCES and resolve_variant("control").mode == "deterministic"
    assert resolve_variant("algo", "shuffle,init").fixed == ("init", "shuffle")
    seeds = [source_seeds(resolve_variant("algo", "init"), run) for run in range(3)]
    assert all(s["init"] == FIXED_SEED for s in seeds)
    assert len({s["shuffle"] for s in seeds}) == 3 and len({s["dropout"] for s in seeds}) == 3
    assert seeds[0]["shuffle"] != seeds[0]["augment"]  # sources draw from different streams
    with pytest.raises(VariantError, match="accepted: init, shuffle, augment, dropout"):
        resolve_variant("algo", "init,labels")


def test_digits_split_is_fixed_and_stratified() -> None:
    a, b = load_digits(), load_digits()
    assert a.x_train.shape == (1437, 1, 8, 8) and a.x_test.shape == (360, 1, 8, 8)
    assert np.array_equal(a.y_test, b.y_test) and a.x_train.max() <= 1.0
    assert set(np.bincount(a.y_test)) <= {35, 36, 37}


def test_control_is_bitwise_reproducible_and_algo_impl_is_not(tmp_path: Path) -> None:
    db = str(tmp_path / "s.sqlite")
    control = _stability([*QUICK, "--variant", "control", "--runs", "2", "--db", db])
    assert control["runs"] == 2 and control["churn"] == 0.0 and control["l2"] == 0.0
    assert control["accuracy_std"] == 0.0 and control["mode"] == "deterministic"
    noisy = _stability([*QUICK, "--variant", "algo+impl", "--runs", "2", "--db", db])
    assert noisy["churn"] > 0.0 and noisy["l2"] > 0.0
    assert 0.0 < noisy["accuracy_mean"] <= 1.0 and len(noisy["per_class_std"]) == 10
    # fixing every source by hand is the control experiment's seeding, in deterministic mode
    by_hand = _stability([*QUICK, "--variant", "algo", "--fix", "init,shuffle,augment,dropout", "--runs", "2",
                          "--db", db])
    assert by_hand["churn"] == 0.0 and by_hand["accuracies"] == control["accuracies"]


def test_runs_are_added_not_redone_and_weights_load_safely(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    first = _stability([*QUICK, "--variant", "algo", "--runs", "2", "--db", str(db)])
    more = _stability([*QUICK, "--variant", "algo", "--runs", "3", "--db", str(db)])
    assert more["runs"] == 3 and more["accuracies"][:2] == first["accuracies"]
    weights = sorted((db.parent / "stability" / more["experiment"]).glob("run*/weights.pt"))
    assert len(weights) == 3
    state = torch.load(weights[0], map_location="cpu", weights_only=True)
    assert any(name.endswith("weight") for name in state)
    predictions = np.load(db.parent / "stability" / more["experiment"] / "run0" / "predictions.npy")
    assert predictions.shape == (more["test_examples"],)


def test_batch_norm_changes_the_experiment(tmp_path: Path) -> None:
    db = str(tmp_path / "s.sqlite")
    plain = _stability([*QUICK, "--variant", "control", "--runs", "1", "--db", db])
    with_bn = _stability([*QUICK, "--variant", "control", "--runs", "1", "--bn", "--db", db])
    assert plain["experiment"] != with_bn["experiment"] and with_bn["recipe"]["batch_norm"] is True


def test_order_only_varies_nothing_but_the_shuffling_order(tmp_path: Path) -> None:
    summary = _stability([*QUICK, "--order-only", "--batch-size", "64", "--runs", "2", "--db", str(tmp_path / "o")])
    assert summary["variant"] == "order-only" and summary["mode"] == "deterministic"
    assert summary["fixed"] == ["init", "augment", "dropout"]
    assert summary["recipe"]["dropout"] == 0.0 and summary["recipe"]["augment_shift"] == 0
    assert summary["churn"] > 0.0  # a different order of mini-batches trains a different model
    clash = runner.invoke(app, ["stability", "--order-only", "--variant", "algo", "--db", str(tmp_path / "o")])
    assert clash.exit_code == 2 and "--order-only sets the variant" in clash.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--task", "imagenet"], "unknown task 'imagenet'; accepted: digits"),
    (["--variant", "chaos"], "unknown variant 'chaos'; accepted: algo+impl, algo, impl, control"),
    (["--fix", "weights"], "unknown noise source 'weights'"),
    (["--runs", "0"], "--runs 0 is not accepted"),
    (["--epochs", "0"], "--epochs 0 is not accepted"),
    (["--lr", "-1"], "--lr -1.0 is not accepted"),
])
def test_bad_input_exits_2_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["stability", *args, "--db", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
