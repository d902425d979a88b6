"""Which scaled-dot-product-attention backend runs: ``--sdpa-backend`` restricts PyTorch's choice
to one, and ``AttentionProbe`` records the ones that actually ran during a step.

PyTorch picks a fused kernel (flash, memory-efficient, cuDNN) when the inputs and the device allow
and falls back to the math implementation (plain matmuls and softmax) otherwise; which one ran
decides both the speed and whether the backward is deterministic, so a run records it rather
than assuming it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

# The fused aten ops that SDPA dispatches to, by backend. The math backend has no op of its own:
# it decomposes into matmuls and a softmax before reaching the dispatcher.
FUSED_OPS = {
    "_scaled_dot_product_flash_attention": "flash",
    "_scaled_dot_product_flash_attention_for_cpu": "flash",
    "_scaled_dot_product_efficient_attention": "efficient",
    "_scaled_dot_product_cudnn_attention": "cudnn",
    "_scaled_dot_product_fused_attention_overrideable": "overrideable",
}


def attention_context(backend: str) -> AbstractContextManager[Any]:
    """A context in which SDPA may use only ``backend`` (detprof.workload.resolve.SDPA_BACKENDS;
    "auto" leaves PyTorch's choice alone)."""
    if backend == "auto":
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    chosen = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION,
              "efficient": SDPBackend.EFFICIENT_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}[backend]
    return sdpa_kernel([chosen])


class _SdpaCalls(TorchFunctionMode):
    """Counts calls of torch.nn.functional.scaled_dot_product_attention."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.nn.functional.scaled_dot_product_attention:
            self.calls += 1
        return func(*args, **(kwargs or {}))


class _FusedOps(TorchDispatchMode):
    """Collects the backends of the fused attention ops that reach the dispatcher."""

    def __init__(self) -> None:
        super().__init__()
        self.backends: set[str] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = func._schema.name.split("::")[-1]
        if name in FUSED_OPS:
            self.backends.add(FUSED_OPS[name])
        return func(*args, **(kwargs or {}))


class AttentionProbe:
    """Around one forward pass: ``backends`` is then the sorted list of SDPA backends that ran
    ("math" for calls that reached no fused op), empty when the model calls no SDPA."""

    def __init__(self) -> None:
        self._calls, self._fused = _SdpaCalls(), _FusedOps()
        self.backends: list[str] = []

    def __enter__(self) -> AttentionProbe:
        self._calls.__enter__()
        self._fused.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._fused.__exit__(*exc)
        self._calls.__exit__(*exc)
        found = set(self._fused.backends)
        if self._calls.calls and not found:
            found.add("math")
        self.backends = sorted(found)
