"""PyTorch's determinism switches in this process: set from a mode's toggles (detprof.modes), read
back after the user's code has run, and the ops that warned they have no deterministic
implementation. Imports torch: job processes only.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from detprof.modes import Toggles


def apply_toggles(toggles: Toggles, compiled: bool = False) -> dict[str, object]:
    """Set the framework flags in this process; returns what torch now reports (with
    ``inductor_deterministic`` when ``compiled``: None where this torch has no such switch).

    ``use_deterministic_algorithms`` is set with ``warn_only=True`` so that an op without a
    deterministic implementation is reported (see ``capture_nondeterministic_ops``) instead of
    crashing the measurement.
    """
    import torch

    torch.use_deterministic_algorithms(toggles.deterministic_algorithms, warn_only=True)
    inductor = _inductor_config() if compiled else None  # importing Inductor costs a second: only when used
    if inductor is not None:
        inductor.deterministic = toggles.inductor_deterministic
    torch.backends.cudnn.deterministic = toggles.cudnn_deterministic
    torch.backends.cudnn.benchmark = toggles.cudnn_benchmark
    torch.utils.deterministic.fill_uninitialized_memory = toggles.fill_uninitialized_memory  # type: ignore[attr-defined]
    if toggles.allow_tf32 is not None:
        set_tf32(matmul=toggles.allow_tf32, cudnn=toggles.allow_tf32)
    return read_switches(compiled)


def set_tf32(matmul: bool, cudnn: bool) -> None:
    """TF32 for cuBLAS's float32 matrix products and for cuDNN's convolutions (the flags exist, and
    do nothing, on a CPU)."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = matmul
    torch.backends.cudnn.allow_tf32 = cudnn


# The switches of read_switches a mode sets, whose change by the user's code is what "the mode did
# not hold" means (the warn-only flag is detprof's own choice, not the mode's; TF32's are set only
# by a mode that names a value, Inductor's only under --compile).
WATCHED_SWITCHES = ("deterministic_algorithms", "cudnn_deterministic", "cudnn_benchmark", "fill_uninitialized_memory",
                    "cudnn_allow_tf32", "cuda_matmul_allow_tf32", "inductor_deterministic")
TF32_SWITCHES = ("cudnn_allow_tf32", "cuda_matmul_allow_tf32")


def switches_set(toggles: Toggles, applied: dict[str, object]) -> dict[str, object]:
    """The switches ``toggles`` really set, as ``apply_toggles`` read them back (``applied``): what
    the user's code must leave alone for the mode to hold. A switch the mode leaves as PyTorch has
    it (TF32 when ``allow_tf32`` is None) is not among them."""
    return {name: applied[name] for name in WATCHED_SWITCHES
            if name in applied and not (name in TF32_SWITCHES and toggles.allow_tf32 is None)}


def read_switches(compiled: bool = False) -> dict[str, object]:
    """The determinism switches as torch reports them now (with ``inductor_deterministic`` when
    ``compiled``: None where this torch has no such switch): what ``apply_toggles`` returns, and
    what a check reads back after the user's code has run, to see whether the mode held."""
    import torch

    inductor = _inductor_config() if compiled else None
    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "fill_uninitialized_memory": torch.utils.deterministic.fill_uninitialized_memory,  # type: ignore[attr-defined]
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        **({"inductor_deterministic": None if inductor is None else bool(inductor.deterministic)} if compiled else {}),
    }


def _inductor_config() -> Any:
    """torch._inductor.config when this torch has Inductor's deterministic switch, else None."""
    try:
        import torch._inductor.config as inductor
    except ImportError:
        return None
    return inductor if "deterministic" in inductor.get_config_copy() else None


_NONDETERMINISTIC_WARNING = re.compile(r"^(\S+) does not have a deterministic implementation")


@contextmanager
def capture_nondeterministic_ops() -> Iterator[set[str]]:
    """Collect the names of ops that warned they have no deterministic implementation.

    Yields a set that is filled as the body runs; other warnings pass through untouched.
    """
    found: set[str] = set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield found
    for warning in caught:
        match = _NONDETERMINISTIC_WARNING.match(str(warning.message))
        if match:
            found.add(match.group(1))
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
