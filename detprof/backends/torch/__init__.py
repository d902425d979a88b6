"""The PyTorch backend: the zoo's networks and a user's own modules, the modes of detprof.modes,
job processes forked from a fork server that has imported torch (detprof.process.processes), and the
check, op-recording, batch-invariance and audit runs of ``trainer``. Importing this package does
not import torch; its job processes do.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detprof.backend import Capabilities
from detprof.backends.torch.gates import GATES

if TYPE_CHECKING:
    from detprof.check.spec import CheckSideSpec, ScriptSideSpec
    from detprof.documents import StabilityRunSpec
    from detprof.infer.spec import InferenceSpec
    from detprof.process.child import ChildResult
    from detprof.workload.request import WorkloadRequest
    from detprof.workload.spec import Workload

WORKER = "detprof.backends.torch.worker:run_to_file"
TRAINER = "detprof.backends.torch.trainer"  # :train_and_record, :record_ops_at_step, ...
USER_WORKLOAD_PROBE = "detprof.backends.torch.user_workload:probe_to_file"
SCRIPT_RUNNER = "detprof.backends.torch.script"  # python -m: check --script's watched interpreter
# Imported once by the fork server of overhead jobs, check runs and probes. torch._dynamo is imported by
# every optimizer's constructor anyway; preloading it moves that second off every job.
JOB_PRELOAD = ["detprof.backends.torch.worker", "torch._dynamo"]
INFERENCE_ENTRY = "detprof.backends.torch.inference.entry:decode_settings"
# What the fork server of `detprof infer` imports first: Hugging Face's model code (about 1.6 s per
# process otherwise). A server another caller started first keeps its own list (detprof.process.processes).
INFERENCE_PRELOAD = [*JOB_PRELOAD, "detprof.backends.torch.inference.entry", "transformers.modeling_utils"]
STABILITY_RUN = "detprof.backends.torch.stability_train:train_to_dir"
# What the fork server of stability runs imports before any run is forked (about 1.6 s of imports
# per run otherwise, scikit-learn's most of it; torch._dynamo is imported by every optimizer).
STABILITY_PRELOAD = ["detprof.backends.torch.stability_train", "detprof.stability.data", "sklearn.datasets",
                     "sklearn.model_selection", "torch._dynamo"]
FIXED_HASH_SEED = "0"  # PYTHONHASHSEED for a --script run whose spec and environment give none


def arrays_of(state: dict[str, Any]) -> dict[str, Any]:
    """A state dict of tensors as numpy arrays (bfloat16, which numpy lacks, widened to float32)."""
    import torch

    return {name: (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
            for name, tensor in state.items()}


def saved_state(path: Path) -> dict[str, Any] | None:
    """The state a check run saved with torch.save at ``path``, as numpy arrays; None when it saved none."""
    if not path.exists():
        return None
    import torch

    return arrays_of(torch.load(path, map_location="cpu", weights_only=True))


def _whose(workload: dict[str, Any]) -> str:
    """How an error names the workload a check run trained: the user's code by its option, else the arch."""
    if workload.get("workload_ref"):
        return f"--workload {workload['workload_ref']!r}"
    if workload.get("model_ref"):
        return f"--model {workload['model_ref']!r}"
    return f"--arch {workload.get('arch')}"


def _write_and_close(fd: int, data: bytes) -> None:
    """Write ``data`` to a pipe and close it (in a thread: a spec larger than the pipe's buffer would
    otherwise wait for a reader that has not started yet)."""
    try:
        with os.fdopen(fd, "wb") as pipe:
            pipe.write(data)
    except OSError:  # the child ended before it read its spec: its outcome says why
        pass


class TorchBackend:
    """PyTorch, the default backend."""

    name = "pytorch"
    label = "PyTorch"
    option = ""
    supports = Capabilities(own_model=True, locate_op=True, batch_invariance=True, audit=True, script=True,
                            inference=True, gates=GATES)

    def check_modes(self, modes: list[str] | tuple[str, ...], label: str = "mode") -> None:
        from detprof.modes import toggles_for

        for mode in modes:
            toggles_for(mode)  # UnknownModeError names it and the modes there are

    def toggles(self, mode: str) -> dict[str, Any]:
        from detprof.modes import toggles_for

        return dict(toggles_for(mode).as_dict())

    def check_workload(self, request: WorkloadRequest) -> None:
        return None  # the zoo's own checks (detprof.workload.resolve) are PyTorch's

    def check_user_code(self, workload: Workload, on_gpu: bool) -> None:
        from detprof.backends.torch.zoo.custom import check_user_model
        from detprof.usercode import probe_in_child
        from detprof.workload.user import OPTION, UserWorkloadError

        if workload.model_ref:
            check_user_model(workload.model_ref, workload.num_classes, JOB_PRELOAD)
        if workload.workload_ref:
            arguments = (workload.workload_ref, workload.batch_size, "cuda" if on_gpu else "cpu")
            probe_in_child(USER_WORKLOAD_PROBE, arguments, OPTION, workload.workload_ref, JOB_PRELOAD,
                           UserWorkloadError,
                           doing="importing, building and one forward pass")

    def determinism_requested(self, toggles: dict[str, Any]) -> tuple[bool, bool]:
        from detprof.modes import Toggles

        requested = bool(toggles.get("deterministic_algorithms") or toggles.get("cudnn_deterministic"))
        return requested, Toggles(**toggles).fully_deterministic_request

    def trace_name(self, stem: str) -> str:
        return f"{stem}.json.gz"  # the profiler's Chrome trace, gzipped

    def start_job(self, spec: dict[str, Any], scratch: str, gpu_uuid: str | None, timeout_s: float) -> ChildResult:
        from detprof.documents import JobResult
        from detprof.modes import Toggles, environment_for
        from detprof.process.child import Child, run_child

        env = environment_for(Toggles(**spec["toggles"]), dict(os.environ), gpu_uuid)
        return run_child(Child(WORKER, (spec,), env, timeout_s, tuple(JOB_PRELOAD), reads=JobResult), Path(scratch))

    def run_check_side(self, spec: CheckSideSpec, gpu_uuid: str | None, timeout_s: float) -> dict[str, Any]:
        """Run ``trainer:<spec.entry>`` under the spec's mode in a fresh process, the spec handed over
        as JSON; its result document, with ``state`` as numpy arrays when the run saved one."""
        from detprof.documents import CheckRunResult
        from detprof.modes import environment_for, toggles_for
        from detprof.process.child import RESULT_FILE, Child, run_child
        from detprof.process.results import CheckError, side_result

        environment = environment_for(toggles_for(spec.mode), dict(os.environ), gpu_uuid)
        with tempfile.TemporaryDirectory(prefix="detprof-check-") as scratch:
            out = Path(scratch, RESULT_FILE)
            ended = run_child(Child(f"{TRAINER}:{spec.entry}", (spec.to_json(),), environment, timeout_s,
                                    tuple(JOB_PRELOAD), reads=CheckRunResult), Path(scratch))
            try:
                document = side_result(ended, timeout_s)
            except CheckError as error:  # name whose code failed: the user's, or a zoo arch's run
                raise CheckError(f"{_whose(spec.workload.as_dict())}: {error}") from None
            state = saved_state(Path(str(out) + ".pt"))
            if state is not None:
                document["state"] = state
        return document

    def run_script_side(self, spec: ScriptSideSpec, folder: Path, timeout_s: float) -> dict[str, Any]:
        """Run ``spec['script']`` once in a new interpreter, watched (detprof.backends.torch.script), in
        the caller's working directory and environment: PYTHONHASHSEED as the spec gives it, detprof
        importable, and ``spec['mode']``'s environment and switches where one is given. What its
        hooks wrote, as the Backend protocol describes."""
        import json

        from detprof.backends.torch.watched import WatchedRun
        from detprof.documents import WatchRecord
        from detprof.modes import environment_for, toggles_for
        from detprof.process.child import Child, Ending, run_child
        from detprof.process.results import read_records

        mode = spec.mode
        environment = environment_for(toggles_for(mode), dict(os.environ)) if mode else dict(os.environ)
        environment["PYTHONHASHSEED"] = str(spec.pythonhashseed or environment.get("PYTHONHASHSEED")
                                            or FIXED_HASH_SEED)
        root = str(Path(__file__).resolve().parents[3])  # the folder holding detprof: importable in the child
        environment["PYTHONPATH"] = os.pathsep.join(p for p in (root, environment.get("PYTHONPATH")) if p)
        folder.mkdir(parents=True, exist_ok=True)
        files = {"records": folder / "steps.jsonl", "state": folder / "state.pt", "ops": folder / "ops.json"}
        # The records go through a descriptor the child inherits, and the spec through a pipe: neither is
        # a path the script could read in its argv; every record carries this run's secret.
        secret = secrets.token_hex(16)
        records_fd = os.open(files["records"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        spec_read, spec_write = os.pipe()
        child = WatchedRun(spec, self.toggles(mode) if mode else None, str(files["state"]), str(files["ops"]),
                           records_fd, secret)
        text = json.dumps(child.to_json()).encode()
        writer = threading.Thread(target=_write_and_close, args=(spec_write, text), daemon=True)
        writer.start()
        try:
            # The watched run writes no result document: what it did is in its records, read below.
            ended = run_child(Child(SCRIPT_RUNNER, ("--spec-fd", str(spec_read)), environment, timeout_s,
                                    interpreter=True, pass_fds=(spec_read, records_fd), reads=None), folder)
        finally:
            os.close(records_fd)
            os.close(spec_read)
            writer.join(timeout=5)
        records, forged = read_records(files["records"], secret, WatchRecord)
        watched: dict[str, Any] = {"records": records, "forged": forged, "exitcode": ended.exitcode,
                                   "timed_out": ended.ending is Ending.TIMEOUT, "log_tail": ended.log_tail,
                                   "pythonhashseed": environment["PYTHONHASHSEED"], "ops": None, "state": None}
        if files["ops"].exists():
            watched["ops"] = json.loads(files["ops"].read_text())["ops"]
        watched["state"] = saved_state(files["state"])
        return watched

    def run_inference(self, spec: InferenceSpec, folder: Path, gpu_uuid: str | None, timeout_s: float) -> ChildResult:
        """Decode a spec's prompts under each of its settings in a fresh process
        (detprof.backends.torch.inference.entry), forked from the fork server jobs share; it writes
        its result and one logits file per settings into ``folder``."""
        from detprof.documents import InferenceRunResult
        from detprof.modes import environment_for, toggles_for
        from detprof.process.child import Child, run_child

        # the deterministic mode's cuBLAS workspace must be in the environment before CUDA starts
        toggles = toggles_for("deterministic" if spec.mode == "deterministic" else "default")
        environment = environment_for(toggles, dict(os.environ), gpu_uuid)
        return run_child(Child(INFERENCE_ENTRY, (spec.to_json(),), environment, timeout_s, tuple(INFERENCE_PRELOAD),
                               reads=InferenceRunResult), folder)

    def run_stability_run(self, spec: StabilityRunSpec, out_dir: Path, environment: dict[str, str],
                          timeout_s: float) -> ChildResult:
        """Train one run of a stability experiment (detprof.backends.torch.stability_train) in a
        process of its own (detprof.process.child); it writes its predictions, weights, log and
        result into ``out_dir``."""
        from detprof.documents import StabilityRunResult
        from detprof.process.child import Child, run_child

        return run_child(Child(STABILITY_RUN, (spec,), environment, timeout_s, tuple(STABILITY_PRELOAD),
                               reads=StabilityRunResult), out_dir)

    def read_state(self, path: Path) -> dict[str, Any]:
        """The arrays of a state dict this backend's trainings saved at ``path`` (numpy, by name),
        loaded without unpickling; raises when the file is missing or is not one."""
        import torch

        return arrays_of(torch.load(path, map_location="cpu", weights_only=True))

    def expected_nondeterministic_ops(self, workload: Workload) -> list[str]:
        from detprof.zoo import arch_spec

        if workload.model_ref or workload.workload_ref:
            return []  # a user's network: nothing is known about it in advance
        return list(arch_spec(workload.arch).known_nondeterministic_ops)

    def zoo_rows(self) -> list[dict[str, Any]]:
        from detprof.backends.torch.zoo import describe_zoo

        return describe_zoo()


BACKEND = TorchBackend()

__all__ = ["BACKEND", "TorchBackend", "arrays_of"]
