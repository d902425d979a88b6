"""Where two decodings of one prompt part (``detprof infer --locate-op``): the first module whose
output for that prompt's token differs while its input matched, and the ops it ran.

A ``RowProbe`` hooks every module of the model. It stays idle until the decoding loop arms it for
the one forward that computes the step where the logits first differ, naming the prompt's row in
that batch and the column of its token; then each module's input and output row for that token
(the slice ``[row, column]`` of any tensor shaped (batch, tokens, ...)) is kept on the host, with
the ops dispatched while the module was the innermost one running. The two sides' modules are
matched by name and call order, so a batch of 8 and a prompt alone compare the same token's rows;
the first to finish with a differing row is the innermost, earliest one.

A compiled model is probed with its hooks run outside Dynamo (``torch._dynamo.disable``), so that
the graph breaks at every module boundary and each module's rows are real tensors: Inductor then
fuses ops within a module, never across two, and the ops are named from the eager side (a
dispatch mode would make Dynamo run the model eagerly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from detprof.infer.divergence import ModuleRow

# Ops that only re-describe memory (no arithmetic): left out of a module's ops, which name what computes.
VIEW_OPS = frozenset({"aten::view", "aten::t", "aten::_unsafe_view", "aten::reshape", "aten::transpose",
                      "aten::expand", "aten::permute", "aten::slice", "aten::select", "aten::unsqueeze",
                      "aten::squeeze", "aten::alias", "aten::detach", "aten::as_strided", "aten::split",
                      "aten::split_with_sizes", "aten::unbind", "aten::lift_fresh", "aten::clone",
                      "aten::contiguous", "aten::_to_copy", "aten::empty", "aten::empty_like", "aten::new_empty"})


class _OpNames(TorchDispatchMode):
    """Appends each dispatched op's name (views aside) to the innermost running module's record."""

    def __init__(self, probe: RowProbe) -> None:
        super().__init__()
        self.probe = probe

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        if self.probe.stack:
            name = str(func._schema.name)
            ops = self.probe.stack[-1].ops
            if name not in ops and name not in VIEW_OPS:
                ops.append(name)
        return func(*args, **(kwargs or {}))


class RowProbe:
    """See the module docstring. ``arm(row, column, batch, tokens)`` before the forward of interest,
    ``disarm()`` after; ``records`` then holds its module calls in the order they finished."""

    def __init__(self, model: torch.nn.Module, compiled: bool = False) -> None:
        self.records: list[ModuleRow] = []
        self.stack: list[ModuleRow] = []
        self.target: tuple[int, int, int, int] | None = None
        self.compiled = compiled  # the model will run compiled: hooks outside Dynamo, no op names
        self._mode: _OpNames | None = None
        self._handles = []
        enter, leave = self._enter, self._leave
        if compiled:
            enter, leave = torch._dynamo.disable(enter), torch._dynamo.disable(leave)  # type: ignore[attr-defined]
        for name, module in model.named_modules():
            label = name or "(model)"
            self._handles.append(module.register_forward_pre_hook(
                lambda m, inputs, label=label: enter(label, m, inputs)))
            self._handles.append(module.register_forward_hook(
                lambda m, inputs, output, label=label: leave(output)))

    def arm(self, row: int, column: int, batch: int, tokens: int) -> None:
        self.target = (row, column, batch, tokens)
        if not self.compiled:
            self._mode = _OpNames(self)
            self._mode.__enter__()

    def disarm(self) -> None:
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
        self._mode, self.target = None, None

    def remove(self) -> None:
        self.disarm()
        for handle in self._handles:
            handle.remove()

    def _row(self, value: Any) -> np.ndarray | None:
        assert self.target is not None
        row, column, batch, tokens = self.target
        leaves = pytree.tree_leaves(value)
        if not any(isinstance(leaf, torch.Tensor) for leaf in leaves) and hasattr(value, "__dict__"):
            leaves = pytree.tree_leaves(vars(value))  # an output object of attributes (a user's model's)
        tensors = [leaf for leaf in leaves if isinstance(leaf, torch.Tensor) and leaf.is_floating_point()
                   and leaf.dim() >= 2 and leaf.shape[0] == batch]
        for leaf in tensors:
            if leaf.shape[1] == tokens:
                return leaf[row, column].detach().float().cpu().numpy().copy()
        for leaf in tensors:  # the last column's logits alone (logits_to_keep=1), as (batch, 1, vocabulary)
            if leaf.dim() == 3 and leaf.shape[1] == 1 and column == tokens - 1:
                return leaf[row, 0].detach().float().cpu().numpy().copy()
        return None

    def _enter(self, label: str, module: torch.nn.Module, inputs: Any) -> None:
        if self.target is None:
            return
        self.stack.append(ModuleRow(label, type(module).__name__, input=self._row(inputs)))

    def _leave(self, output: Any) -> None:
        if self.target is None or not self.stack:
            return
        record = self.stack.pop()
        record.output = self._row(output)
        self.records.append(record)  # in the order modules finish: a module before the module holding it


@dataclass(frozen=True)
class ProbeAt:
    """Where a decoding arms its probe: at step ``step`` of prompt ``prompt`` (its index in the spec)."""

    probe: RowProbe
    prompt: int
    step: int
