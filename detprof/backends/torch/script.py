"""What ``check --script`` runs in a new interpreter: the user's own training script, as
``python train.py ARGS`` would run it, watched through torch's global optimizer step hooks.

After every optimizer step (any optimizer, however the script reaches it: a plain loop, Lightning,
a Hugging Face ``Trainer``), and at every ``detprof.step(model)`` of a loop that updates its weights
itself, that optimizer's parameters and its model's buffers are hashed (and, before its first step,
their initial values), with the loss its ``backward`` was called on, the threads and the switches
as they are now; each step is appended to a JSON-lines file, one line a step, so that what a script
does afterwards (``os._exit``, a segfault, a hang until the timeout) cannot take back what was
recorded. After ``steps`` steps the process writes its final parameters and ends at once, without
running more of the script. With ``locate_step`` K it records every op of step K (from the end of
step K - 1, or from the start for K = 1) with detprof.backends.torch.oprecord, with its module and
the script's own line, and ends there.

The spec (JSON, read from the pipe ``--spec-fd`` names) holds: ``script`` and ``arguments``;
``steps``; ``records_fd`` (an inherited descriptor for the JSON lines) and ``secret`` (carried by
every line, so that the parent can tell them from lines the script wrote); ``state`` (the final
parameters, torch.save); optionally
``threads``, ``toggles`` (a mode's, applied before the script starts; None runs it as it is) and
``locate_step`` with ``ops`` (where the recorded ops go).
"""

from __future__ import annotations

import functools
import gc
import json
import os
import runpy
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from detprof import marker
from detprof.backends.torch.digests import one_ulp_control, tensor_digests
from detprof.backends.torch.environment import environment_fingerprint
from detprof.backends.torch.observe import SwitchCalls, observe_step
from detprof.backends.torch.oprecord import OpRecorder, global_module_tracking, resolve_module_labels, user_source
from detprof.backends.torch.sketch import weight_sketch
from detprof.backends.torch.switches import read_switches
from detprof.backends.torch.watched import WatchedRun

UNNAMED = "group {group}, tensor {index} ({shape})"


def parameter_names(parameters: list[torch.Tensor], places: list[str]) -> tuple[list[str], torch.nn.Module | None]:
    """Names of ``parameters`` as the module holding most of them names them (the script's model,
    found among the live objects), and that module; a parameter no module holds keeps its place
    in its optimizer (``places``)."""
    wanted = {id(p) for p in parameters}
    best: tuple[tuple[int, int, str], torch.nn.Module, dict[int, str]] | None = None
    for candidate in _live_modules():
        named = {id(p): name for name, p in candidate.named_parameters() if id(p) in wanted}
        if not named:
            continue
        # The most parameters first; among equals the outermost wrapper (the longest names), then
        # the class name, so that both runs choose alike whatever order the objects come in.
        key = (len(named), sum(len(n) for n in named.values()), type(candidate).__qualname__)
        if best is None or key > best[0]:
            best = (key, candidate, named)
    names_of = best[2] if best else {}
    names = [names_of.get(id(p)) or place for p, place in zip(parameters, places, strict=True)]
    return names, best[1] if best else None


def _live_modules() -> list[torch.nn.Module]:
    """Every live ``nn.Module`` of the process. isinstance reads ``__class__``: some live objects
    warn when touched (deprecated aliases), and a dead ``weakref.proxy`` (torch.compile leaves
    some) raises ReferenceError; both are passed over."""
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for candidate in gc.get_objects():
            try:
                if isinstance(candidate, torch.nn.Module):
                    found.append(candidate)
            except ReferenceError:
                continue
    return found


@dataclass
class Stepper:
    """One optimizer (or the ``detprof.step`` marker of one model) in one thread: its parameters,
    their names, its model's buffers, and the steps it took."""

    key: str  # "optimizer 0"; "Thread-2: optimizer 0" off the main thread; "detprof.step 0"
    params: list[torch.Tensor]
    names: list[str]
    buffers: list[torch.Tensor] = field(default_factory=list)
    buffer_names: list[str] = field(default_factory=list)
    steps: int = 0


class StepWatch:
    """The hooks and records of one watched run of a script.

    Steps are counted per process (a forked child's steps are named, never counted), per thread
    and per optimizer (``Stepper``), under one lock; each record hashes its own optimizer's
    parameters, so two threads training two models cannot interleave into a false difference. The
    loss of each step is what the step's ``backward`` was called on in that thread."""

    def __init__(self, run: WatchedRun) -> None:
        self.run = run
        self.pid = os.getpid()
        self.steps_wanted = run.spec.steps
        self.locate_step = run.spec.locate_step
        # the descriptor the parent opened for this run's records (no path the script could find in argv)
        self.records = os.fdopen(run.records_fd, "a", encoding="utf-8")
        self.secret = run.secret
        self.lock = threading.RLock()
        self.local = threading.local()  # per thread: the losses backward was called on since its last step
        self.steppers: dict[int, Stepper] = {}  # by id of the optimizer, or of the model given to detprof.step
        self.per_thread: dict[str, int] = {}
        self.model: torch.nn.Module | None = None
        self.count = 0
        # a record's digests are the device scheme's on every device, so that a CPU's compares with a GPU's
        self.scheme = "device" if run.spec.record else "host"
        self.device = "cpu"  # where the first tracked parameter lives, as check names devices
        self.recorder: OpRecorder | None = None
        self.tracking: Any = None
        self.calls = SwitchCalls()
        self.expected: dict[str, object] | None = None
        self.ended = False

    def write(self, record: dict[str, Any]) -> None:
        self.records.write(json.dumps({**record, "watch": self.secret}) + "\n")
        self.records.flush()

    def install(self) -> None:
        """Apply the spec's threads and mode, and register the global optimizer step hooks, the
        loss watch on ``torch.autograd.backward`` and the ``detprof.step`` marker."""
        if self.run.spec.threads:
            torch.set_num_threads(self.run.spec.threads)
        if self.run.toggles is not None:
            from detprof.backends.torch.switches import apply_toggles, switches_set
            from detprof.modes import Toggles

            toggles = Toggles(**self.run.toggles)
            self.expected = switches_set(toggles, apply_toggles(toggles))
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        register_optimizer_step_pre_hook(self.guarded(self.before_step))
        register_optimizer_step_post_hook(self.guarded(self.after_step))
        self.calls.install()
        backward = torch.autograd.backward
        note_loss = self.guarded(self.note_loss)

        @functools.wraps(backward)
        def watched_backward(tensors: Any, *args: Any, **kwargs: Any) -> Any:
            note_loss(tensors)
            return backward(tensors, *args, **kwargs)

        torch.autograd.backward = watched_backward  # type: ignore[assignment]
        marker.WATCH = self
        self.write({"started": time.time(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                    "switches_set": self.expected})
        if self.locate_step == 1:
            self.start_recording()

    def guarded(self, hook: Any) -> Any:
        """``hook`` such that an exception inside detprof's own code ends the run as a failure of the
        watch, never as the script's own error."""

        def call(*args: Any) -> Any:
            try:
                return hook(*args)
            except Exception as error:  # a bug of detprof's, reported as such by the parent
                self.end("watch-failed", error=f"{type(error).__name__}: {error}"[:2000],
                         detail=traceback.format_exc()[-4000:])
            return None

        return call

    def mine(self) -> bool:
        """True in the watched process; in a forked child, its step is named in the records and skipped."""
        if os.getpid() == self.pid:
            return True
        self.write({"child_step": os.getpid()})
        return False

    def note_loss(self, tensors: Any) -> None:
        if os.getpid() != self.pid or not isinstance(tensors, torch.Tensor) or tensors.numel() != 1:
            return
        losses = getattr(self.local, "losses", None)
        if losses is None:
            losses = self.local.losses = []
        losses.append(float(tensors.detach().float()).hex())

    def start_recording(self) -> None:
        """Record every op from here to the end of step ``locate_step``: its module through torch's
        global module hooks (named once the model is known) and the script's own line."""
        self.recorder = OpRecorder(hash_tensors=True, scheme=self.scheme,
                                   source=user_source(str(Path(self.run.spec.script).resolve().parent)))
        self.tracking = global_module_tracking(self.recorder)
        self.tracking.__enter__()
        self.recorder.__enter__()

    def before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if os.getpid() != self.pid:
            return
        with self.lock:
            if id(optimizer) not in self.steppers:
                places = _optimizer_tensors(optimizer)
                self.track(optimizer, [p for _, p in places], "optimizer", [place for place, _ in places])
            if self.recorder is not None:
                self.recorder.phase = "optimizer"

    def after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if not self.mine():
            return
        with self.lock:
            self.record_step(self.steppers[id(optimizer)])

    def marked_step(self, model: Any) -> None:
        """``detprof.step(model)``: the end of one step of a loop that updates ``model`` itself."""
        if not self.mine():
            return
        with self.lock:
            if id(model) not in self.steppers:
                tensors = list(model.parameters()) if isinstance(model, torch.nn.Module) else list(model)
                if not all(isinstance(t, torch.Tensor) for t in tensors):
                    self.end("refused", error="detprof.step() takes the model the step trained (an nn.Module) or "
                                              "the tensors it updated")
                self.track(model, tensors, "detprof.step", [f"tensor {i}" for i in range(len(tensors))],
                           initial=False)
            self.record_step(self.steppers[id(model)])

    def track(self, owner: Any, params: list[torch.Tensor], kind: str, places: list[str], initial: bool = True) -> None:
        """Start watching an optimizer (or a marked model) met for the first time: name its tensors,
        find its model's buffers, and record their digests before its first step."""
        if not params:
            self.end("refused", error=f"the script steps an optimizer that holds no parameters ({type(owner).__name__}"
                                      "): there is nothing to compare")
        thread = threading.current_thread()
        number = self.per_thread.get(thread.name, 0)
        self.per_thread[thread.name] = number + 1
        key = f"{kind} {number}" if thread is threading.main_thread() else f"{thread.name}: {kind} {number}"
        names, model = parameter_names(params, places)
        if thread is not threading.main_thread():
            names = [f"{key}: {name}" for name in names]  # threads race to their first step: name by thread
        taken = {name for stepper in self.steppers.values() for name in stepper.names}
        names = [f"{name} ({key})" if name in taken else name for name in names]
        model = owner if isinstance(owner, torch.nn.Module) else model
        stepper = Stepper(key, params, names)
        if model is not None:
            stepper.buffer_names = [name for name, _ in model.named_buffers()]
            stepper.buffers = [buffer for _, buffer in model.named_buffers()]
        self.steppers[id(owner)] = stepper
        if self.model is None:
            self.model = model
        if any(p.is_cuda for p in params):
            self.scheme = "device"  # hashed where they live, copied once (oprecord.DIGEST_SCHEMES)
        if self.device == "cpu" and params[0].is_cuda:
            self.device = torch.cuda.get_device_name(params[0].device)
        if initial:
            with torch.no_grad():
                self.write({"initial": key, "params": tensor_digests(params, self.scheme),
                            "buffers": tensor_digests(stepper.buffers, self.scheme)})

    def record_step(self, stepper: Stepper) -> None:
        """Hash the stepper's tensors after its step, write the step, and stop or start recording ops
        as the spec asks."""
        if self.recorder is not None and self.count + 1 == self.locate_step:
            return self.finish_recording()
        stepper.steps += 1
        self.count += 1
        self.calls.step = self.count + 1
        losses = getattr(self.local, "losses", None) or []
        self.local.losses = []
        record = observe_step(None, stepper.params, stepper.names, stepper.buffers, stepper.buffer_names, self.scheme,
                              self.expected)
        record.update({"step": stepper.steps, "key": stepper.key, "names": stepper.names,
                       "buffer_names": stepper.buffer_names, "scheme": self.scheme, "device": self.device,
                       "loss": ",".join(losses) if losses else None})
        if self.count == 1:
            record["ulp_control"] = one_ulp_control(stepper.params, stepper.names, self.scheme)
        if self.run.spec.record:
            record["sketch"] = weight_sketch(stepper.params)
        self.write(record)
        if self.locate_step is not None and self.count + 1 == self.locate_step:
            self.start_recording()
        elif self.count >= self.steps_wanted:
            self.end("steps")

    def finish_recording(self) -> None:
        assert self.recorder is not None
        self.recorder.__exit__(None, None, None)
        self.tracking.__exit__(None, None, None)
        ops = self.recorder.finished_ops()
        resolve_module_labels(ops, self.model)
        Path(self.run.ops).write_text(json.dumps({"step": self.locate_step, "ops": ops}))
        self.recorder = None
        self.end("located")

    def end(self, how: str, error: str | None = None, exit_code: int | None = None, detail: str | None = None) -> None:
        """Write the final parameters and the end record, and end the process now: the rest of the
        script, its atexit handlers and threads, never run."""
        with self.lock:
            if self.ended:
                os._exit(0)
            self.ended = True
            if self.recorder is not None:
                self.recorder.__exit__(None, None, None)
                self.recorder = None
            if self.steppers and how not in ("located", "watch-failed", "refused"):
                torch.save({name: p.detach().cpu().clone() for stepper in self.steppers.values()
                            for name, p in zip(stepper.names, stepper.params, strict=True)}, self.run.state)
            ended: dict[str, Any] = {"ended": how, "steps": self.count, "error": error, "exit_code": exit_code,
                                     "detail": detail, "switch_calls": self.calls.since(0)}
            if self.run.spec.record and self.steppers:  # read as the script left them
                first = next(iter(self.steppers.values())).params[0]
                ended["environment"] = environment_fingerprint(first.device, read_switches())
            self.write(ended)
            self.records.close()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> list[tuple[str, torch.Tensor]]:
    """Each parameter of ``optimizer`` with its place in it (``UNNAMED``)."""
    return [(UNNAMED.format(group=g, index=i, shape="x".join(map(str, p.shape)) or "scalar"), p)
            for g, group in enumerate(optimizer.param_groups) for i, p in enumerate(group["params"])]


def last_error_line(error: BaseException) -> str:
    """The line Python prints last for an uncaught ``error``: ``Type: message``."""
    lines = [line.strip() for line in traceback.format_exception_only(type(error), error) if line.strip()]
    return lines[-1] if lines else type(error).__name__


def run_script(run: WatchedRun) -> None:
    """Run the spec's script as ``__main__`` with its arguments, watched; never returns."""
    watch = StepWatch(run)
    script = str(Path(run.spec.script).resolve())
    sys.argv = [run.spec.script, *run.spec.arguments]
    sys.path[0] = str(Path(script).parent)  # as `python train.py` sets it
    watch.install()
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as stop:
        code = stop.code
        if code is None or code == 0:
            watch.end("returned", exit_code=0)
        watch.end("failed", error=f"SystemExit: {code}", exit_code=code if isinstance(code, int) else 1)
    except BaseException as error:  # whatever the script raised is its failure, reported in one line
        traceback.print_exc()
        watch.end("failed", error=last_error_line(error), exit_code=1)
    watch.end("returned", exit_code=0)


def main(argv: list[str]) -> int:
    from detprof.process.processes import die_with_parent_in

    arguments = die_with_parent_in(argv)
    at = arguments.index("--spec-fd")
    with os.fdopen(int(arguments[at + 1]), "rb") as pipe:  # the spec, through a pipe the parent wrote
        run = WatchedRun.from_json(json.loads(pipe.read()))
    run_script(run)
    return 0  # not reached: run_script ends the process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
