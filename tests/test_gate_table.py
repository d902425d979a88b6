"""The check's gate table (detprof.check.gates) as a unit: parsing, typed pairs from the API,
exclusions, the one-varying-factor rule, and the options and refusals that read it; and gradient
accumulation's step against the whole batch's, in process."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from detprof.check.gates import GATES, differing_factor, parse_gates, settle_gates
from detprof.cli import app
from detprof.errors import ArgumentError


def test_every_gate_is_an_option_of_check_with_its_help() -> None:
    result = CliRunner().invoke(app, ["check", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for gate in GATES:
        assert gate.option in result.stdout, gate.option


@pytest.mark.parametrize("gate", GATES, ids=[gate.name for gate in GATES])
def test_a_pair_spelled_back_as_text_parses_to_itself(gate: object) -> None:
    examples = {"threads": "1", "device": "cpu,cuda", "compile": "eager,compiled", "restart": "3", "workers": "0,2",
                "world-size": "1,2", "bucket-cap": "1,25", "accumulate": "1,4"}
    pair = gate.parse(examples[gate.name])  # type: ignore[attr-defined]
    assert gate.parse(gate.spell(pair)) == pair  # type: ignore[attr-defined]


def test_the_api_takes_typed_pairs_and_refuses_a_misspelt_gate_or_a_bad_value() -> None:
    assert settle_gates({"accumulate": (1, 4)}) == {"accumulate": (1, 4)}
    with pytest.raises(ArgumentError, match="no gate 'acumulate'"):
        settle_gates({"acumulate": (1, 4)})
    with pytest.raises(ArgumentError, match="--workers '0,99' is not accepted"):
        settle_gates({"workers": (0, 99)})
    # control: the same value, well spelt, passes
    assert settle_gates({"workers": (0, 2)}) == {"workers": (0, 2)}


def test_only_one_gate_may_vary_and_the_factor_is_the_one_that_does() -> None:
    settled = settle_gates({"threads": (1, 1), "accumulate": (1, 4)})
    assert differing_factor(settled) == "accumulate"
    assert differing_factor(settle_gates({"threads": (2, 2)})) == "none"
    with pytest.raises(ArgumentError, match="--accumulate changes one factor, the micro-batches of one optimizer step; "
                                            "give --threads one value"):
        settle_gates({"threads": (1, 2), "accumulate": (1, 4)})


def test_excluded_combinations_and_implied_gates() -> None:
    with pytest.raises(ArgumentError, match="drop --locate-op"):
        settle_gates({"accumulate": (2, 2)}, locate_op=True)
    with pytest.raises(ArgumentError, match="drop --compile"):
        settle_gates({"world-size": (2, 2)}, compiled=True)
    assert settle_gates({"bucket-cap": (1.0, 25.0)})["world-size"] == (2, 2)  # buckets need processes


def test_the_command_line_text_is_parsed_only_through_the_table() -> None:
    assert parse_gates({"--threads": "1,2", "--accumulate": "4", "--workers": None}) == \
        {"threads": (1, 2), "accumulate": (4, 4)}
    with pytest.raises(ArgumentError, match="--accumulate '0,4' is not accepted; use 1 to 1024 micro-batches"):
        parse_gates({"--accumulate": "0,4"})


@pytest.mark.parametrize(("args", "message"), [
    (["--script", "train.py", "--accumulate", "1,2"], "--script runs your script as it is; drop --accumulate"),
    (["--batch-invariance", "--accumulate", "2"], "--batch-invariance compares batch sizes in one run; drop --accu"),
    (["--accumulate", "2", "--world-size", "2"], "--accumulate splits each step's batch"),
    (["--accumulate", "3"], "--batch-size 16 is not accepted with --accumulate 3"),
    (["--accumulate", "2", "--framework", "tf"], "--accumulate is not available with --framework tf; it works with "
                                                 "PyTorch"),
])
def test_bad_accumulation_options_exit_2_in_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["check", "--gpu", "cpu", *(["--arch", "small-cnn"] if "--script" not in args
                                                                  else []), *args])
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_accumulated_gradients_are_the_whole_batchs_up_to_rounding() -> None:
    from detprof.backends.torch.training import build_training
    from detprof.gpus import select_device
    from detprof.workload import WorkloadRequest, build_workload

    workload = build_workload(WorkloadRequest(arch="small-cnn", batch_norm=False, batch_size=8), select_device("cpu"))
    grads, losses = [], []
    for micro_batches in (1, 4):
        training = build_training(workload, 0, torch.device("cpu"))
        training.micro_batches = micro_batches
        training.optimizer.zero_grad(set_to_none=True)
        losses.append(training.accumulated() if micro_batches > 1 else training.loss().detach())
        if micro_batches == 1:
            training.loss().backward()
        grads.append([p.grad.clone() for p in training.model.parameters()])  # type: ignore[union-attr]
    # the known answer: the mean of four quarter-batch means is the batch mean, the same gradient
    assert torch.allclose(losses[0], losses[1], rtol=1e-6, atol=0)
    for whole, accumulated in zip(*grads, strict=True):
        assert torch.allclose(whole, accumulated, rtol=1e-4, atol=1e-7)
    # control: one micro-batch alone is not the batch's gradient
    training = build_training(workload, 0, torch.device("cpu"))
    training.optimizer.zero_grad(set_to_none=True)
    from detprof.backends.torch.training import Batch, example_slice

    training.loss(Batch(example_slice(training.batch.inputs, 0, 2), example_slice(training.batch.targets, 0, 2))) \
        .backward()
    assert not all(torch.allclose(g, p.grad, rtol=1e-4, atol=1e-7)  # type: ignore[arg-type]
                   for g, p in zip(grads[0], training.model.parameters(), strict=True))
