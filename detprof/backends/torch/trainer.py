"""What ``check`` and ``audit`` run inside a fresh process (detprof.process.processes).

Each entry takes a CheckSideSpec (detprof.check.spec) as JSON, reads it back (a field it does not
know fails there) and writes its result to a file; the parent compares. The model is initialised and
the synthetic batch drawn on the CPU, then moved, so that both runs start from the same bits on
any device.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

import torch

from detprof.backends.torch.checkpoint import load_checkpoint, save_checkpoint
from detprof.backends.torch.digests import one_ulp_control
from detprof.backends.torch.environment import environment_fingerprint
from detprof.backends.torch.gates import TRAINING_CHANGES
from detprof.backends.torch.observe import SwitchCalls, observe_step, tensor_state
from detprof.backends.torch.sketch import weight_sketch
from detprof.backends.torch.switches import apply_toggles, capture_nondeterministic_ops, read_switches, switches_set
from detprof.backends.torch.training import Training, build_training, example_slice, main_output
from detprof.check.spec import CheckSideSpec
from detprof.documents import CheckRunResult, write_result
from detprof.modes import Toggles

INVARIANCE_EXAMPLES = 64


def _setup(spec: CheckSideSpec) -> tuple[Training, dict[str, object], SwitchCalls]:
    """The spec's training (model, batch and optimizer on its device), with its toggles, threads and
    seed applied; the switches as torch then reports them (detprof.modes.apply_toggles); and the
    record of every call the user's code makes to change one afterwards (building the model included)."""
    device = torch.device(spec.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if spec.threads:
        torch.set_num_threads(spec.threads)
    workload = spec.workload
    applied = apply_toggles(Toggles(**spec.toggles), compiled=workload.compiled)
    if workload.compiled and spec.inductor_fallback_random:
        import torch._inductor.config as inductor

        inductor.fallback_random = True  # dropout draws from eager's generator, as the eager side does
    applied = switches_set(Toggles(**spec.toggles), applied)  # what the mode set: what must hold
    calls = SwitchCalls().install()
    training = build_training(workload, spec.seed, device)
    for field, change in TRAINING_CHANGES.items():  # the check gates that change the training itself
        if spec.gate(field) is not None:
            change(training, spec.gate(field), spec)
    if spec.learning_rate is not None:  # a record's own learning rate, in every parameter group
        for group in training.optimizer.param_groups:
            group["lr"] = spec.learning_rate
    return training, applied, calls


def _guarded(run: Callable[[CheckSideSpec, str], None]) -> Callable[[dict[str, Any], str], int]:
    """A worker entry point that reads its spec back from JSON and writes ``{"error": ...}`` instead
    of dying with a traceback."""

    def entry(raw: dict[str, Any], out_path: str) -> int:
        try:
            run(CheckSideSpec.from_json(raw), out_path)
            return 0
        except Exception as error:
            write_result(out_path, {"error": f"{type(error).__name__}: {error}"[:2000],
                                    "traceback": traceback.format_exc()[-4000:]})
            return 1

    return entry


def _train(spec: CheckSideSpec, out_path: str) -> None:
    """Train ``steps`` steps; record each step's loss (exact bits) and parameter digests, and save the
    final state dict beside the result (``.pt``) for the largest weight difference. With
    ``world_size``, as DDP over that many processes (detprof.backends.torch.distributed), rank 0
    recording."""
    world_size = spec.gate("world_size")
    if world_size is None:
        _train_rank(spec, out_path)
        return
    from detprof.backends.torch.distributed import run_ranks

    run_ranks(int(world_size), lambda rank, store: _train_rank(spec, out_path, rank, store))


def _train_rank(spec: CheckSideSpec, out_path: str, rank: int = 0, store: str | None = None) -> None:
    started = time.perf_counter()
    with capture_nondeterministic_ops() as warned:
        training, applied, calls = _setup(spec)
        if store is not None:
            from detprof.backends.torch.distributed import distributed_training

            distributed_training(training, rank, int(spec.gate("world_size")), store, spec.gate("bucket_cap_mb"))
        model, device = training.model, training.device
        names = [name for name, _ in model.named_parameters()]
        buffer_names = [name for name, _ in model.named_buffers()]
        scheme = spec.digest
        compiled = bool(spec.workload.compiled)

        def observed(loss: Any) -> dict[str, Any]:
            # read after the user's code: its digests, threads and the switches as they now are
            return observe_step(loss, list(model.parameters()), names, list(model.buffers()), buffer_names, scheme,
                                applied, compiled)

        steps = []
        control: dict[str, Any] | None = None
        save, load = training.checkpoint_code or (None, None)
        start = load_checkpoint(training, spec.resume_from, load) if spec.resume_from else 0
        initial = observed(None) if not rank else None
        stop = spec.save_at or spec.steps
        for number in range(start, stop):
            calls.step = number + 1
            loss = training.step()
            if store is not None:
                loss = _global_mean(loss, int(spec.gate("world_size")))  # every rank joins; the whole batch's loss
            if rank:
                continue  # the other ranks train; rank 0 records
            steps.append(observed(loss))
            if spec.record:
                steps[-1]["sketch"] = weight_sketch(list(model.parameters()))
            if control is None:
                control = one_ulp_control(list(model.parameters()), names, scheme)
        if spec.save_at and not rank:
            save_checkpoint(training, str(spec.checkpoint), stop, save)
    if rank:
        return
    state = tensor_state(model.state_dict())
    torch.save(state, out_path + ".pt")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    extra: CheckRunResult = {}  # typed, so that a field the result does not declare fails here
    if spec.record:
        extra["environment"] = environment_fingerprint(device, read_switches(compiled))
        extra["learning_rate"] = [float(group["lr"]) for group in training.optimizer.param_groups]
    if store is not None:
        from detprof.backends.torch.distributed import gpu_topology, nccl_environment

        extra = {"world_size": int(spec.gate("world_size")), "bucket_cap_mb": spec.gate("bucket_cap_mb"),
                 "nccl_environment": nccl_environment() if device.type == "cuda" else {},
                 "gpu_topology": gpu_topology() if device.type == "cuda" else None}
    write_result(out_path, {"parameters": names, "buffers": buffer_names, "initial": initial, "steps": steps,
                            "threads": torch.get_num_threads(), "device": device_name, "torch": torch.__version__,
                            "version": f"torch {torch.__version__}",
                            "compiled": compiled,
                            "inductor_deterministic": _optional_bool(applied.get("inductor_deterministic")),
                            "ulp_control": control, "switches_set": applied, "switch_calls": calls.since(0),
                            **extra,
                            "nondeterministic_ops": sorted(warned), "wall_s": time.perf_counter() - started})


def _global_mean(loss: torch.Tensor, world_size: int) -> torch.Tensor:
    """The mean of every rank's loss: the global batch's loss (equal shares), comparable across world sizes."""
    import torch.distributed as dist

    total = loss.detach().clone()
    dist.all_reduce(total)
    return total / world_size


def _optional_bool(value: object) -> bool | None:
    return None if value is None else bool(value)


def _record_step(spec: CheckSideSpec, out_path: str) -> None:
    """Train up to ``locate_step`` and record every op of that step with the digests of what it read
    and wrote (forward, backward and optimizer)."""
    from detprof.backends.torch.oprecord import OpRecorder, module_tracking

    training, _, _ = _setup(spec)
    target_step = int(spec.locate_step or 1)
    recorder = OpRecorder(hash_tensors=True, scheme=spec.digest)
    for _ in range(1, target_step):
        training.step()
    training.optimizer.zero_grad(set_to_none=True)
    with module_tracking(training.model, recorder), recorder:
        recorder.phase = "forward"
        training.loss().backward()  # ops run by the autograd engine are labelled backward
        recorder.phase = "optimizer"
        training.optimizer.step()
    write_result(out_path, {"step": target_step, "ops": recorder.finished_ops()})


def _batch_invariance(spec: CheckSideSpec, out_path: str) -> None:
    """Eval-mode outputs of the same examples at each batch size, compared bitwise with batch size 1
    (each example's whole output: its logits, or every token's logits for a language model)."""
    training, _, _ = _setup(spec)
    model = training.model.eval()
    examples = training.fresh_inputs(INVARIANCE_EXAMPLES, spec.seed + 2)

    def outputs(batch: int) -> Any:
        with torch.no_grad():
            chunks = [main_output(training.forward(model, example_slice(examples, i, i + batch)))
                      for i in range(0, INVARIANCE_EXAMPLES, batch)]
        return torch.cat(chunks).flatten(1).cpu()

    reference = outputs(1)
    rows = []
    for batch in spec.batch_sizes:
        got = outputs(int(batch))
        same = (got == reference).all(dim=1) | (got.isnan() & reference.isnan()).all(dim=1)
        rows.append({"batch_size": int(batch), "examples": int(len(got)), "bitwise_equal": int(same.sum()),
                     "fraction_equal": float(same.float().mean()),
                     "max_abs_diff": float((got.double() - reference.double()).abs().max())})
    write_result(out_path, {"reference_batch_size": 1, "rows": rows})


def _audit(spec: CheckSideSpec, out_path: str) -> None:
    """``steps`` training steps in deterministic mode (1 when unset): every op that has no
    deterministic implementation here, with the module that called it, the pass and the step; the
    ops each step ran; and where the code under audit had turned deterministic algorithms off
    (each such op is still asked, with the switch on for it)."""
    from detprof.backends.torch.oprecord import OpRecorder, module_tracking

    training, _, calls = _setup(spec)
    calls.uninstall()  # the recorder asks every op itself, whatever the code under audit switches
    torch.use_deterministic_algorithms(True)  # errors, not warnings: see OpRecorder
    recorder = OpRecorder(hash_tensors=False, catch_nondeterministic=True)
    first_op_of_step = []
    with module_tracking(training.model, recorder), recorder:
        for _ in range(spec.steps or 1):
            first_op_of_step.append(len(recorder.ops))
            training.optimizer.zero_grad(set_to_none=True)
            recorder.phase = "forward"
            training.loss().backward()  # ops run by the autograd engine are labelled backward
            recorder.phase = "optimizer"
            training.optimizer.step()

    def step_of(index: int) -> int:
        return sum(1 for start in first_op_of_step if start <= index)

    found = [{"op": op["op"], "phase": op["phase"], "module": op["module"], "name": op["nondeterministic"],
              "step": step_of(op["index"])} for op in recorder.ops if "nondeterministic" in op]
    off = next(({"op": op["op"], "phase": op["phase"], "module": op["module"], "index": op["index"],
                 "step": step_of(op["index"])} for op in recorder.ops if op.get("switched_off")), None)
    ends = [*first_op_of_step[1:], len(recorder.ops)]
    write_result(out_path, {"nondeterministic": found, "ops": len(recorder.ops), "switched_off": off,
                            "version": f"torch {torch.__version__}",
                            "ops_per_step": [end - start for start, end in zip(first_op_of_step, ends, strict=True)]})


train_and_record = _guarded(_train)
record_ops_at_step = _guarded(_record_step)
batch_invariance = _guarded(_batch_invariance)
audit_step = _guarded(_audit)
