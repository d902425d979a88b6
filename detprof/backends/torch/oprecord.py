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

from contextlib import contextmanager
from typing import Any

import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from detprof.backends.torch.digests import device_digest, digest_prefix, host_digest, resolve_digests

MODULE_KEY = "detprof_module"  # in autograd node metadata: the module that created the node


# Non-tensor arguments whose value can carry a difference into an op (a Python float made from
# os.urandom, say); objects such as generators are left out, since their repr names an address.
VALUE_TYPES = (bool, int, float, complex, str, torch.dtype, torch.device, torch.layout, torch.memory_format)
NONDETERMINISTIC_MESSAGE = "does not have a deterministic implementation"


# Ops whose output is uninitialized memory: its bytes are whatever the allocator left there, so they
# differ between runs without meaning anything (in default mode, Dropout's empty_like once showed up
# as the "root cause"). Their outputs, and what reads them before anything writes them, are recorded
# by dtype and shape only.
UNINITIALIZED_OPS = frozenset({"aten::empty", "aten::empty_like", "aten::empty_strided", "aten::new_empty",
                               "aten::new_empty_strided", "aten::empty_permuted"})
UNINITIALIZED = "uninitialized "


def _storage_key(tensor: torch.Tensor) -> int | None:
    try:
        return int(tensor.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError):  # sparse, meta and other storage-less tensors
        return None


class PendingDigest:
    """A tensor's digest still on its device: ``OpRecorder.finished_ops`` turns it into a string."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


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

    def __init__(self, hash_tensors: bool = True, catch_nondeterministic: bool = False,
                 scheme: str = "device", source: Any = None) -> None:
        super().__init__()
        self.source = source  # None, or a function giving the user's file and line of the op (user_source)
        self.hash_tensors = hash_tensors
        self.scheme = scheme
        self.catch_nondeterministic = catch_nondeterministic
        self.ops: list[dict[str, Any]] = []
        self.phase = "forward"
        self.module_stack: list[str] = []
        # Digests stay on the device until the step is over: copying each to the host would make
        # every op wait for the device (and copying the tensors themselves, as detprof once did,
        # moved about 68 GB per recorded step of vgg19 at 224x224, batch 64).
        self._prefixes: list[str] = []
        self._pending: list[torch.Tensor | None] = []
        self._uninitialized: set[int] = set()  # storages made by UNINITIALIZED_OPS and not written since

    def _digests(self, tree: Any, written: bool = False, uninitialized: bool = False) -> list[Any]:
        """Digests of the tensors (and plain values) in ``tree``. ``written``: these are an op's
        outputs, whose storage now holds data; ``uninitialized``: an op's outputs that hold none."""
        leaves, _ = pytree.tree_flatten(tree)
        found: list[Any] = []
        for leaf in leaves:
            key = _storage_key(leaf) if isinstance(leaf, torch.Tensor) else None
            if key is not None and uninitialized:
                self._uninitialized.add(key)
            elif key is not None and written:
                self._uninitialized.discard(key)
            if isinstance(leaf, torch.Tensor) and key is not None and key in self._uninitialized:
                found.append(UNINITIALIZED + digest_prefix(leaf))
            elif isinstance(leaf, torch.Tensor) and self.scheme == "host":
                found.append(host_digest(leaf))
            elif isinstance(leaf, torch.Tensor):
                found.append(PendingDigest(len(self._pending)))
                self._prefixes.append(digest_prefix(leaf))
                self._pending.append(device_digest(leaf))
            elif isinstance(leaf, VALUE_TYPES):
                found.append(repr(leaf))
        return found

    def finished_ops(self) -> list[dict[str, Any]]:
        """The recorded ops with every digest as a string (one copy per device for all of them)."""
        if self._pending:
            strings = resolve_digests(self._prefixes, self._pending)
            for op in self.ops:
                for key in ("inputs", "outputs"):
                    if key in op:
                        op[key] = [strings[d.index] if isinstance(d, PendingDigest) else d for d in op[key]]
            self._prefixes, self._pending = [], []
        return self.ops

    def _module(self) -> tuple[str, str | None]:
        node = torch._C._current_autograd_node()
        if node is not None:
            return "backward", node.metadata.get(MODULE_KEY)  # type: ignore[attr-defined]  # a dict at run time
        return self.phase, self.module_stack[-1] if self.module_stack else None

    def _run(self, func: Any, args: Any, kwargs: Any, record: dict[str, Any]) -> Any:
        if not self.catch_nondeterministic:
            return func(*args, **kwargs)
        # torch._C's own setter, not torch.use_deterministic_algorithms: a check watches calls to that
        # one as the user's (detprof.backends.torch.observe.SwitchCalls).
        set_deterministic = torch._C._set_deterministic_algorithms
        user_turned_off = not torch.are_deterministic_algorithms_enabled()
        if user_turned_off:
            # The code under audit switched the check off: note where, and still ask this op.
            record["switched_off"] = True
            set_deterministic(True)
        try:
            try:
                return func(*args, **kwargs)
            except RuntimeError as error:
                if NONDETERMINISTIC_MESSAGE not in str(error):
                    raise
                record["nondeterministic"] = str(error).split(" ")[0]
                set_deterministic(False)
                try:
                    return func(*args, **kwargs)
                finally:
                    set_deterministic(True)
        finally:
            if user_turned_off:
                set_deterministic(False)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        phase, module = self._module()
        record: dict[str, Any] = {"index": len(self.ops), "op": op_name(func), "phase": phase, "module": module}
        if self.source is not None:
            record["source"] = self.source()
        if self.hash_tensors:
            record["inputs"] = self._digests((args, kwargs))
        out = self._run(func, args, kwargs, record)
        if self.hash_tensors:
            record["outputs"] = self._digests(out, written=True, uninitialized=func._schema.name in UNINITIALIZED_OPS)
        self.ops.append(record)
        return out


ACCUMULATE_GRAD_SEQUENCE = 2**64 - 1  # what autograd gives the leaf nodes that accumulate .grad


def _sequence(node: Any) -> int:
    return int(node._sequence_nr())


def label_created_nodes(roots: list[Any], name: str, since: int) -> None:
    """Label with ``name`` every autograd node a module's forward created: from its outputs' nodes
    back through the graph, over nodes newer than ``since`` (its inputs' newest node; sequence
    numbers grow as nodes are made); a node an inner module labelled first keeps its label
    (innermost wins). So an op of the backward pass is named by its module whatever node of the
    module's forward ran it. Leaf nodes (AccumulateGrad) and older nodes end the walk."""
    stack, seen = list(roots), set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        sequence = _sequence(node)
        if sequence == ACCUMULATE_GRAD_SEQUENCE or sequence <= since:
            continue
        # An inner module's node keeps its label; behind it may lie this module's own nodes.
        node.metadata.setdefault(MODULE_KEY, name)
        stack.extend(next_node for next_node, _ in node.next_functions)


def _stack_hooks(recorder: OpRecorder, started: list[int]) -> tuple[Any, Any]:
    """The forward pre-hook and hook that keep ``recorder.module_stack`` on the running module and
    label the autograd nodes its forward created (``label_created_nodes``); each is called as
    ``hook(label, inputs)`` and ``hook(label, output)``. ``started`` holds, per running module,
    the newest autograd node of its inputs (sequence number)."""

    def push(label: str, inputs: Any) -> None:
        recorder.module_stack.append(label)
        started.append(max((_sequence(leaf.grad_fn) for leaf in pytree.tree_flatten(inputs)[0]
                            if isinstance(leaf, torch.Tensor) and leaf.grad_fn is not None), default=-1))

    def pop(label: str, output: Any) -> None:
        if recorder.module_stack and recorder.module_stack[-1] == label:
            recorder.module_stack.pop()
        since = started.pop() if started else -1
        roots = [leaf.grad_fn for leaf in pytree.tree_flatten(output)[0]
                 if isinstance(leaf, torch.Tensor) and leaf.grad_fn is not None]
        label_created_nodes(roots, label, since)

    return push, pop


def module_label(name: str, module: torch.nn.Module) -> str:
    """How a record names a module: ``features.3 (Conv2d)``, or the class alone for the root."""
    return f"{name} ({type(module).__name__})" if name else type(module).__name__


@contextmanager
def module_tracking(model: torch.nn.Module, recorder: OpRecorder) -> Any:
    """Hooks that keep ``recorder.module_stack`` on the running module in the forward pass and label
    each module's output autograd node with its name for the backward pass. Removed on exit."""
    handles = []
    push, pop = _stack_hooks(recorder, [])
    for name, module in model.named_modules():
        label = module_label(name, module)
        handles.append(module.register_forward_pre_hook(lambda _m, inputs, label=label: push(label, inputs)))
        handles.append(module.register_forward_hook(lambda _m, _i, output, label=label: pop(label, output)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


UNRESOLVED_MODULE = "\0module {id}\0{kind}"  # a module seen before its model was known, resolved afterwards


@contextmanager
def global_module_tracking(recorder: OpRecorder) -> Any:
    """``module_tracking`` for every module of the process, through torch's global module hooks:
    for a script whose model is not known yet (its first step). Modules are labelled by identity
    (UNRESOLVED_MODULE) until ``resolve_module_labels`` names them."""
    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    push, pop = _stack_hooks(recorder, [])

    def label(module: torch.nn.Module) -> str:
        return UNRESOLVED_MODULE.format(id=id(module), kind=type(module).__name__)

    handles = [register_module_forward_pre_hook(lambda module, inputs: push(label(module), inputs)),
               register_module_forward_hook(lambda module, _i, output: pop(label(module), output))]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def resolve_module_labels(ops: list[dict[str, Any]], model: torch.nn.Module | None) -> None:
    """Name the modules ``global_module_tracking`` labelled by identity, as ``model`` names them
    (a module outside it keeps its class name alone)."""
    named = {} if model is None else {UNRESOLVED_MODULE.format(id=id(m), kind=type(m).__name__): module_label(n, m)
                                      for n, m in model.named_modules()}
    for op in ops:
        label = op.get("module")
        if label and label.startswith("\0module "):
            op["module"] = named.get(label) or label.rsplit("\0", 1)[-1]


def user_source(folder: str) -> Any:
    """A function giving the innermost frame of the caller's stack in a file under ``folder`` (the
    user's script and its modules), as ``train.py:124 get_batch``; None when there is none."""
    import os
    import sys

    root = os.path.abspath(folder) + os.sep

    def where() -> str | None:
        frame = sys._getframe(1)
        while frame is not None:
            filename = frame.f_code.co_filename
            if filename.startswith(root) and "site-packages" not in filename:
                return f"{os.path.relpath(filename, root)}:{frame.f_lineno} {frame.f_code.co_name}"
            frame = frame.f_back  # type: ignore[assignment]
        return None

    return where
