"""What a check run records of each training step, read after the user's code has run: the digests
of every parameter and buffer, which of them hold a NaN or an infinity, the CPU threads the step
ran with, and any determinism switch that is no longer as the mode set it (together with every call
the user's code made to change one).

A check compares what actually ran, not what was asked: a script may pin its own threads, a
workload may turn deterministic algorithms off inside its step, a NaN may sit in a buffer. Each of
those is recorded here, per step, so that the parent can refuse to pass a check that could not have
seen a difference (detprof.check.verdict).
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from typing import Any

import torch

from detprof.backends.torch.digests import tensor_digests
from detprof.backends.torch.switches import read_switches

EXTRA_STATE_SUFFIX = " (extra state, pickled)"


def tensor_state(state: Any) -> dict[str, torch.Tensor]:
    """A state dict as tensors on the host: each tensor detached, and each value a module's
    ``get_extra_state`` put there (any picklable object) as the bytes of its pickle, so that it is
    compared bit for bit too; an object that cannot be pickled is left out."""
    import pickle

    tensors: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        if isinstance(value, torch.Tensor):
            tensors[name] = value.detach().cpu()
            continue
        try:
            tensors[name + EXTRA_STATE_SUFFIX] = torch.frombuffer(bytearray(pickle.dumps(value)), dtype=torch.uint8)
        except Exception:  # noqa: BLE001 - an unpicklable extra state holds nothing to compare
            continue
    return tensors


def nonfinite_names(tensors: list[torch.Tensor], names: list[str]) -> list[str]:
    """Names of the floating-point ``tensors`` holding a NaN or an infinity (one copy to the host for all)."""
    floating = [(name, t) for name, t in zip(names, tensors, strict=True) if t.is_floating_point() and t.numel()]
    by_device: dict[str, list[tuple[str, torch.Tensor]]] = {}
    with torch.no_grad():
        for name, tensor in floating:
            by_device.setdefault(str(tensor.device), []).append((name, (~torch.isfinite(tensor.detach())).any()))
        flagged = {name for flags in by_device.values()  # one copy to the host per device
                   for (name, _), bad in zip(flags, torch.stack([f for _, f in flags]).cpu().tolist(), strict=True)
                   if bad}
    return [name for name, _ in floating if name in flagged]


def changed_switches(expected: dict[str, object], compiled: bool = False) -> dict[str, list[object]]:
    """Each switch of ``expected`` (what the mode set: detprof.modes.switches_set) that now reads
    otherwise, as ``{switch: [set, now]}``; empty when the mode held."""
    now = read_switches(compiled)
    return {key: [was, now[key]] for key, was in expected.items() if key in now and was != now[key]}


TORCH_FOLDER = os.path.dirname(torch.__file__) + os.sep


class SwitchCalls:
    """Records the calls user code makes to ``torch.use_deterministic_algorithms`` and
    ``torch.set_num_threads`` once installed (after detprof has applied the mode and threads), with
    the step they came in: a switch turned off and back on inside a step leaves no trace in a
    read-back after the step, but it does here. Calls from torch's own code are not the user's and
    are left out. Thread-safe; the originals still run."""

    # Each patched function, the switch it sets, and how to read that switch back after the call.
    PATCHED = {"use_deterministic_algorithms": ("deterministic_algorithms", torch.are_deterministic_algorithms_enabled),
               "set_num_threads": ("threads", torch.get_num_threads)}

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.step = 1  # the step being run: calls before the first step count as step 1's
        self._lock = threading.Lock()
        self._originals: dict[str, Any] = {}

    def install(self) -> SwitchCalls:
        for name in self.PATCHED:
            original = getattr(torch, name)
            self._originals[name] = original
            setattr(torch, name, self._wrapped(name, original))
        return self

    def uninstall(self) -> None:
        for name, original in self._originals.items():
            setattr(torch, name, original)
        self._originals = {}

    def _wrapped(self, name: str, original: Any) -> Any:
        switch, read_back = self.PATCHED[name]

        @functools.wraps(original)
        def call(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            if sys._getframe(1).f_code.co_filename.startswith(TORCH_FOLDER):
                return result  # torch's own (Dynamo puts the switch back as it found it after every frame)
            shown = ", ".join([*(repr(a) for a in args), *(f"{k}={v!r}" for k, v in kwargs.items())])
            with self._lock:
                self.calls.append({"step": self.step, "call": f"torch.{name}({shown})", "switch": switch,
                                   "after": read_back()})
            return result

        return call

    def since(self, start: int) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.calls[start:])


def observe_step(loss: Any, parameters: list[torch.Tensor], parameter_names: list[str], buffers: list[torch.Tensor],
                 buffer_names: list[str], scheme: str, expected_switches: dict[str, object] | None,
                 compiled: bool = False) -> dict[str, Any]:
    """One step's record: ``loss`` (its exact bits in hex; omitted when None), ``params`` and
    ``buffers`` (digests, digests.DIGEST_SCHEMES), ``nonfinite`` (names of tensors holding a NaN or
    an infinity), ``threads`` (torch's intra-op threads now) and, when ``expected_switches`` is given
    and a switch no longer holds its value, ``switches_changed``."""
    with torch.no_grad():
        record: dict[str, Any] = {"params": tensor_digests(parameters, scheme),
                                  "buffers": tensor_digests(buffers, scheme)}
    if loss is not None:
        record["loss"] = float(loss).hex()
    record["nonfinite"] = nonfinite_names([*parameters, *buffers], [*parameter_names, *buffer_names])
    record["threads"] = torch.get_num_threads()
    if expected_switches is not None:
        changed = changed_switches(expected_switches, compiled)
        if changed:
            record["switches_changed"] = changed
    return record
