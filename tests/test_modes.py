from __future__ import annotations

import pytest
import torch

from detprof.backends.torch.switches import apply_toggles, capture_nondeterministic_ops
from detprof.cli.lists import parse_modes
from detprof.modes import (
    DETERMINISTIC_CUBLAS_WORKSPACE,
    MODES,
    Toggles,
    UnknownModeError,
    environment_for,
    toggles_for,
)


def test_default_and_deterministic_toggles() -> None:
    assert toggles_for("default") == Toggles(False, False, True, None, True)
    deterministic = toggles_for("deterministic")
    assert deterministic.deterministic_algorithms and deterministic.cudnn_deterministic
    assert not deterministic.cudnn_benchmark
    assert deterministic.cublas_workspace_config == ":4096:8"
    assert deterministic.fully_deterministic_request
    # every ablation mode differs from both ends in at least one toggle
    for name in ("no-benchmark", "cudnn-deterministic", "torch-deterministic", "deterministic-nofill"):
        assert MODES[name] not in (MODES["default"], MODES["deterministic"])
    assert not MODES["deterministic-nofill"].fill_uninitialized_memory


def test_parse_modes_accepts_pairs_including_aa() -> None:
    assert parse_modes("default,deterministic") == ("default", "deterministic")
    assert parse_modes(" default , default ") == ("default", "default")
    with pytest.raises(UnknownModeError, match="unknown mode 'fast'; accepted: default, deterministic"):
        parse_modes("default,fast")
    with pytest.raises(UnknownModeError, match="two modes"):
        parse_modes("default")


def test_environment_sets_and_clears_cublas_workspace() -> None:
    user_env = {"PATH": "/bin", "CUBLAS_WORKSPACE_CONFIG": ":16:8"}
    assert "CUBLAS_WORKSPACE_CONFIG" not in environment_for(toggles_for("default"), user_env)
    env = environment_for(toggles_for("deterministic"), user_env)
    assert env["CUBLAS_WORKSPACE_CONFIG"] == DETERMINISTIC_CUBLAS_WORKSPACE
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" and env["PATH"] == "/bin"
    assert user_env["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"  # the caller's dict is not modified


def test_apply_toggles_sets_torch_flags_and_capture_names_real_ops() -> None:
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark)
    try:
        applied = apply_toggles(toggles_for("deterministic"))
        tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        assert applied == {"deterministic_algorithms": True, "deterministic_warn_only": True,
                           "cudnn_deterministic": True, "cudnn_benchmark": False, "fill_uninitialized_memory": True,
                           "cudnn_allow_tf32": tf32[0], "cuda_matmul_allow_tf32": tf32[1]}
        # with deterministic algorithms on, fresh allocations are filled with NaN
        assert torch.isnan(torch.empty(8)).all()
        # put_ with accumulate=False has no deterministic implementation: it must warn, not crash.
        with capture_nondeterministic_ops() as ops:
            tensor = torch.zeros(4)
            tensor.put_(torch.tensor([0, 1]), torch.tensor([1.0, 2.0]))
        assert ops == {"put_"}
        assert tensor.tolist() == [1.0, 2.0, 0.0, 0.0]
        applied = apply_toggles(toggles_for("default"))
        assert applied["deterministic_algorithms"] is False and applied["cudnn_benchmark"] is True
        with capture_nondeterministic_ops() as ops:
            torch.zeros(4).put_(torch.tensor([0]), torch.tensor([1.0]))
        assert ops == set()
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = True
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[1], before[2]


def test_capture_passes_other_warnings_through() -> None:
    import warnings

    with pytest.warns(UserWarning, match="unrelated"):
        with capture_nondeterministic_ops() as ops:
            warnings.warn("unrelated", UserWarning, stacklevel=1)
    assert ops == set()


def test_tf32_off_sets_both_flags_and_none_leaves_them() -> None:
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        applied = apply_toggles(toggles_for("tf32-off"))
        assert applied["cudnn_allow_tf32"] is False and applied["cuda_matmul_allow_tf32"] is False
        torch.backends.cudnn.allow_tf32 = True
        assert apply_toggles(toggles_for("default"))["cudnn_allow_tf32"] is True  # None: untouched
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
        apply_toggles(toggles_for("default"))


def test_every_ablation_step_is_a_mode_that_changes_one_thing_from_default() -> None:
    from detprof.modes import ABLATION

    default = toggles_for("default").as_dict()
    for step in ABLATION:
        changed = {k for k, v in toggles_for(step.mode).as_dict().items() if v != default[k]}
        assert changed, step.mode
        # CPU-relevant steps change only PyTorch's own switches, never cuDNN, cuBLAS or TF32
        assert step.gpu_only or changed <= {"deterministic_algorithms", "fill_uninitialized_memory",
                                            "cudnn_deterministic", "cudnn_benchmark", "cublas_workspace_config",
                                            "inductor_deterministic"}
    assert [s.mode for s in ABLATION][-1] == "deterministic"
    autotune = toggles_for("deterministic-autotune")
    assert autotune.cudnn_benchmark and autotune.cudnn_deterministic and autotune.deterministic_algorithms


def test_settings_code_runs_and_sets_what_the_mode_sets() -> None:
    from detprof.modes import settings_code

    code = settings_code(toggles_for("deterministic-nofill"), threads=1)
    assert code["environment"] == [f"export CUBLAS_WORKSPACE_CONFIG={DETERMINISTIC_CUBLAS_WORKSPACE}"]
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark, torch.get_num_threads())
    try:
        exec("\n".join(code["python"]), {"torch": torch, "SEED": 3})  # the lines as a user would paste them
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark and not torch.utils.deterministic.fill_uninitialized_memory
        assert torch.get_num_threads() == 1
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = True
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[1], before[2]
        torch.set_num_threads(before[3])
    assert settings_code(toggles_for("default"))["environment"] == []


def test_a_cpu_recipe_holds_no_switch_that_acts_only_on_a_gpu() -> None:
    from detprof.modes import settings_code

    cpu = settings_code(toggles_for("deterministic"), threads=1, on_gpu=False)
    assert cpu["environment"] == [] and not any("cudnn" in line or "tf32" in line for line in cpu["python"])
    assert "torch.use_deterministic_algorithms(True)" in cpu["python"]
    gpu = settings_code(toggles_for("deterministic"), threads=None, on_gpu=True)  # control: a GPU's has them
    assert "torch.backends.cudnn.benchmark = False" in gpu["python"] and gpu["environment"]
