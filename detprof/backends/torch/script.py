"""What ``check --script`` runs in a new interpreter: the user's own training script, as
``python train.py ARGS`` would run it, watched through torch's global optimizer step hooks.

After every optimizer step (any optimizer, however the script reaches it: a plain loop, Lightning,
a Hugging Face ``Trainer``) the parameters of every optimizer seen so far are hashed and the digests
appended to a JSON-lines file, one line a step, so that what a script does afterwards (``os._exit``,
a segfault, a hang until the timeout) cannot take back what was recorded. After ``steps`` steps the
process writes its final parameters and ends at once, without running more of the script. With
``locate_step`` K it records every op of step K (from the end of step K - 1, or from the start for
K = 1) with detprof.backends.torch.oprecord and ends there.

The spec (a JSON file, the first argument) holds: ``script`` and ``arguments``; ``steps``;
``records`` (the JSON-lines path) and ``state`` (the final parameters, torch.save); optionally
``threads``, ``toggles`` (a mode's, applied before the script starts; None runs it as it is) and
``locate_step`` with ``ops`` (where the recorded ops go).
"""

from __future__ import annotations

import gc
import json
import os
import runpy
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import torch

from detprof.backends.torch.oprecord import OpRecorder, module_tracking, one_ulp_control, tensor_digests

UNNAMED = "optimizer {optimizer}, group {group}, tensor {index} ({shape})"


def optimizer_places(optimizer: torch.optim.Optimizer, number: int) -> list[tuple[torch.Tensor, str]]:
    """Each parameter of ``optimizer`` (the ``number``-th stepped) with its place in it (``UNNAMED``)."""
    return [(p, UNNAMED.format(optimizer=number, group=g, index=i, shape="x".join(map(str, p.shape)) or "scalar"))
            for g, group in enumerate(optimizer.param_groups) for i, p in enumerate(group["params"])]


def parameter_names(parameters: list[torch.Tensor], places: list[str]) -> tuple[list[str], torch.nn.Module | None]:
    """Names of ``parameters`` as the module holding most of them names them (the script's model,
    found among the live objects), and that module; a parameter no module holds keeps its place
    in its optimizer (``places``)."""
    wanted = {id(p) for p in parameters}
    best: tuple[tuple[int, int, str], torch.nn.Module, dict[int, str]] | None = None
    with warnings.catch_warnings():
        # isinstance reads __class__, and some live objects warn when touched (deprecated aliases)
        warnings.simplefilter("ignore")
        modules = [candidate for candidate in gc.get_objects() if isinstance(candidate, torch.nn.Module)]
    for candidate in modules:
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


class StepWatch:
    """The hooks and records of one watched run of a script."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.steps_wanted = int(spec["steps"])
        self.locate_step = spec.get("locate_step")
        self.records = open(spec["records"], "a", encoding="utf-8")  # noqa: SIM115 - open for the run's life
        self.tracked: list[torch.Tensor] = []
        self.names: list[str] = []
        self.optimizers: list[int] = []  # ids of the optimizers met, in the order first stepped
        self.model: torch.nn.Module | None = None
        self.count = 0
        self.scheme = "host"
        self.device = "cpu"  # where the first tracked parameter lives, as check names devices
        self.recorder: OpRecorder | None = None
        self.tracking: Any = None

    def write(self, record: dict[str, Any]) -> None:
        self.records.write(json.dumps(record) + "\n")
        self.records.flush()

    def install(self) -> None:
        """Apply the spec's threads and mode, and register the global optimizer step hooks."""
        if self.spec.get("threads"):
            torch.set_num_threads(int(self.spec["threads"]))
        if self.spec.get("toggles") is not None:
            from detprof.modes import Toggles, apply_toggles

            apply_toggles(Toggles(**self.spec["toggles"]))
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        register_optimizer_step_pre_hook(self.before_step)
        register_optimizer_step_post_hook(self.after_step)
        self.write({"started": time.time(), "threads": torch.get_num_threads(), "torch": torch.__version__})
        if self.locate_step == 1:
            self.start_recording()

    def start_recording(self) -> None:
        """Record every op from here to the end of step ``locate_step``; ops inside the model's
        modules are named by module once the model is known (after step 1)."""
        self.recorder = OpRecorder(hash_tensors=True, scheme=self.scheme)
        if self.model is not None:
            self.tracking = module_tracking(self.model, self.recorder)
            self.tracking.__enter__()
        self.recorder.__enter__()

    def before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self.recorder is not None:
            self.recorder.phase = "optimizer"

    def track(self, optimizer: torch.optim.Optimizer) -> None:
        """Start hashing the parameters of an optimizer stepped for the first time."""
        self.optimizers.append(id(optimizer))
        seen = {id(p) for p in self.tracked}
        fresh = [(p, place) for p, place in optimizer_places(optimizer, len(self.optimizers) - 1) if id(p) not in seen]
        names, model = parameter_names([p for p, _ in fresh], [place for _, place in fresh])
        taken = set(self.names)  # a second model may name its parameters as the first does ("0.weight")
        self.tracked += [p for p, _ in fresh]
        self.names += [f"{name} (optimizer {len(self.optimizers) - 1})" if name in taken else name for name in names]
        if self.model is None:
            self.model = model
        if any(p.is_cuda for p in self.tracked):
            self.scheme = "device"  # hashed where they live, copied once (oprecord.DIGEST_SCHEMES)
        if self.tracked and self.tracked[0].is_cuda:
            self.device = torch.cuda.get_device_name(self.tracked[0].device)

    def after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self.recorder is not None and self.count + 1 == self.locate_step:
            return self.finish_recording()
        if id(optimizer) not in self.optimizers:
            self.track(optimizer)
        self.count += 1
        with torch.no_grad():
            digests = tensor_digests(self.tracked, self.scheme)
        record: dict[str, Any] = {"step": self.count, "params": digests, "names": self.names,
                                  "optimizer": self.optimizers.index(id(optimizer)), "scheme": self.scheme,
                                  "device": self.device}
        if self.count == 1:
            record["ulp_control"] = one_ulp_control(self.tracked, self.names, self.scheme)
        self.write(record)
        if self.locate_step is not None and self.count + 1 == self.locate_step:
            self.start_recording()
        elif self.count >= self.steps_wanted:
            self.end("steps")


    def finish_recording(self) -> None:
        assert self.recorder is not None
        self.recorder.__exit__(None, None, None)
        if self.tracking is not None:
            self.tracking.__exit__(None, None, None)
        ops = self.recorder.finished_ops()
        Path(self.spec["ops"]).write_text(json.dumps({"step": self.locate_step, "ops": ops}))
        self.recorder = None
        self.end("located")

    def end(self, how: str, error: str | None = None, exit_code: int | None = None) -> None:
        """Write the final parameters and the end record, and end the process now: the rest of the
        script, its atexit handlers and threads, never run."""
        if self.recorder is not None:
            self.recorder.__exit__(None, None, None)
            self.recorder = None
        if self.tracked and how != "located":
            torch.save({name: p.detach().cpu().clone() for name, p in zip(self.names, self.tracked, strict=True)},
                       self.spec["state"])
        self.write({"ended": how, "steps": self.count, "error": error, "exit_code": exit_code})
        self.records.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def last_error_line(error: BaseException) -> str:
    """The line Python prints last for an uncaught ``error``: ``Type: message``."""
    lines = [line.strip() for line in traceback.format_exception_only(type(error), error) if line.strip()]
    return lines[-1] if lines else type(error).__name__


def run_script(spec: dict[str, Any]) -> None:
    """Run the spec's script as ``__main__`` with its arguments, watched; never returns."""
    watch = StepWatch(spec)
    script = str(Path(spec["script"]).resolve())
    sys.argv = [spec["script"], *spec.get("arguments", [])]
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
    from detprof.runner.processes import die_with_parent_in

    arguments = die_with_parent_in(argv)
    run_script(json.loads(Path(arguments[0]).read_text()))
    return 0  # not reached: run_script ends the process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
