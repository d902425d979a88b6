"""Every op of a training step, as PyTorch's dispatcher runs it: name, phase, module, and (when
asked) a hash of each tensor it read and wrote.

A ``TorchDispatchMode`` sees the ops below autograd, forward and backward alike. The module an
op belongs to comes from hooks: in the forward pass, the innermost module whose forward is
running; in the backward pass, the module whose forward created the autograd node being run
(each module's forward hook labels the node of its output, innermost first). Comparing two such
records of the same step finds the root cause of a divergence as Megatron-LM defines it: the
first op whose output differs while its inputs matched.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

MODULE_KEY = "detprof_module"  # in autograd node metadata: the module that created the node


def tensor_digest(tensor: torch.Tensor) -> str:
    """BLAKE2b (128 bits, hex) of a tensor's dtype, shape and raw bytes."""
    digest = hashlib.blake2b(f"{tensor.dtype}|{tuple(tensor.shape)}|".encode(), digest_size=16)
    if tensor.is_sparse or tensor.device.type == "meta":
        return digest.hexdigest()
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


# Non-tensor arguments whose value can carry a difference into an op (a Python float made from
# os.urandom, say); objects such as generators are left out, since their repr names an address.
VALUE_TYPES = (bool, int, float, complex, str, torch.dtype, torch.device, torch.layout, torch.memory_format)
NONDETERMINISTIC_MESSAGE = "does not have a deterministic implementation"


def _digests(tree: Any) -> list[str]:
    leaves, _ = pytree.tree_flatten(tree)
    return [tensor_digest(leaf) if isinstance(leaf, torch.Tensor) else repr(leaf)
            for leaf in leaves if isinstance(leaf, (torch.Tensor, *VALUE_TYPES))]


def op_name(func: Any) -> str:
    """``aten::convolution`` (overload appended unless it is ``default``)."""
    schema = func._schema
    overload = func._overloadname
    return schema.name if overload in ("", "default") else f"{schema.name}.{overload}"


class OpRecorder(TorchDispatchMode):
    """Records each dispatched op as {index, op, phase, module} plus, with ``hash_tensors``, the
    digests of its inputs (tensors and plain values) and outputs, and with ``catch_nondeterministic``
    the name PyTorch gives an op that has no deterministic implementation (``nondeterministic``).
    ``phase`` is set by the caller around forward and optimizer; ops run by the autograd engine
    are ``backward``.

    ``catch_nondeterministic`` needs ``torch.use_deterministic_algorithms(True)`` without
    warn_only: PyTorch's warnings are buffered until control returns to Python, too late to tell
    which op raised them, while its error comes out of the op itself. The op is then run again
    with the check off, so the step completes and every such op is found, not only the first.
    """

    def __init__(self, hash_tensors: bool = True, catch_nondeterministic: bool = False) -> None:
        super().__init__()
        self.hash_tensors = hash_tensors
        self.catch_nondeterministic = catch_nondeterministic
        self.ops: list[dict[str, Any]] = []
        self.phase = "forward"
        self.module_stack: list[str] = []

    def _module(self) -> tuple[str, str | None]:
        node = torch._C._current_autograd_node()
        if node is not None:
            return "backward", node.metadata.get(MODULE_KEY)
        return self.phase, self.module_stack[-1] if self.module_stack else None

    def _run(self, func: Any, args: Any, kwargs: Any, record: dict[str, Any]) -> Any:
        if not self.catch_nondeterministic:
            return func(*args, **kwargs)
        try:
            return func(*args, **kwargs)
        except RuntimeError as error:
            if NONDETERMINISTIC_MESSAGE not in str(error):
                raise
            record["nondeterministic"] = str(error).split(" ")[0]
            torch.use_deterministic_algorithms(False)
            try:
                return func(*args, **kwargs)
            finally:
                torch.use_deterministic_algorithms(True)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        phase, module = self._module()
        record: dict[str, Any] = {"index": len(self.ops), "op": op_name(func), "phase": phase, "module": module}
        if self.hash_tensors:
            record["inputs"] = _digests((args, kwargs))
        out = self._run(func, args, kwargs, record)
        if self.hash_tensors:
            record["outputs"] = _digests(out)
        self.ops.append(record)
        return out


@contextmanager
def module_tracking(model: torch.nn.Module, recorder: OpRecorder) -> Any:
    """Hooks that keep ``recorder.module_stack`` on the running module in the forward pass and label
    each module's output autograd node with its name for the backward pass. Removed on exit."""
    handles = []

    def push(name: str) -> Any:
        def hook(module: Any, inputs: Any) -> None:
            recorder.module_stack.append(name)
        return hook

    def pop(name: str) -> Any:
        def hook(module: Any, inputs: Any, output: Any) -> None:
            if recorder.module_stack and recorder.module_stack[-1] == name:
                recorder.module_stack.pop()
            for leaf in pytree.tree_flatten(output)[0]:
                node = getattr(leaf, "grad_fn", None) if isinstance(leaf, torch.Tensor) else None
                if node is not None and MODULE_KEY not in node.metadata:
                    node.metadata[MODULE_KEY] = name  # innermost module first: its label stays
        return hook

    for name, module in model.named_modules():
        label = f"{name} ({type(module).__name__})" if name else type(module).__name__
        handles.append(module.register_forward_pre_hook(push(label)))
        handles.append(module.register_forward_hook(pop(label)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def first_divergent_op(ops_a: list[dict[str, Any]], ops_b: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Where two records of the same step part: the first op whose output differs while its inputs
    matched (``kind`` root-cause), or, when its inputs already differed, the first op that saw a
    difference coming from outside the dispatcher (``kind`` input-differs: a value made in Python
    or NumPy, say), or the first place the op sequences themselves differ. None when they agree."""
    for a, b in zip(ops_a, ops_b, strict=False):
        where = {"index": a["index"], "op": a["op"], "phase": a["phase"], "module": a["module"]}
        if a["op"] != b["op"]:
            return {**where, "kind": "different-ops", "other_op": b["op"]}
        if a.get("outputs") != b.get("outputs"):
            kind = "root-cause" if a.get("inputs") == b.get("inputs") else "input-differs"
            return {**where, "kind": kind}
    if len(ops_a) != len(ops_b):
        shorter = min(len(ops_a), len(ops_b))
        return {"index": shorter, "op": None, "phase": None, "module": None, "kind": "different-length"}
    return None
