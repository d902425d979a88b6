"""The distributed gate (``check --world-size A,B``): one training as DistributedDataParallel over
``world_size`` processes on this machine (gloo on CPUs, NCCL on GPUs), with the same global batch.

Each rank builds the same model from the same seed and takes its equal share of the global batch;
DDP averages the gradients, so every world size trains on the same global mean loss. What may
still differ is the order of the floating-point sums in the all-reduce, which depends on the
world size and on how gradients are bucketed (``bucket_cap_mb``). Rank 0 records what a check
side records; the other ranks only train. Imports torch: job processes only.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from detprof.backends.torch.training import Batch, Training, example_slice

NCCL_VARIABLES = ("NCCL_ALGO", "NCCL_PROTO", "NCCL_MIN_NCHANNELS", "NCCL_MAX_NCHANNELS", "NCCL_NTHREADS",
                  "NCCL_BUFFSIZE", "NCCL_P2P_DISABLE", "NCCL_IB_DISABLE", "NCCL_SOCKET_IFNAME", "NCCL_DEBUG")


def shard(batch: Batch, rank: int, world_size: int) -> Batch:
    """Rank ``rank``'s equal share of a global batch (examples along the first dimension)."""
    from detprof.backends.torch.user_workload import example_count

    size = example_count(batch.inputs) // world_size
    start, stop = rank * size, (rank + 1) * size
    inputs = example_slice(batch.inputs, start, stop)
    targets = inputs if batch.targets is batch.inputs else example_slice(batch.targets, start, stop)
    return Batch(inputs, targets)


def run_ranks(world_size: int, rank_main: Callable[[int, str], None]) -> None:
    """Run ``rank_main(rank, store_path)`` in ``world_size`` processes (rank 0 here, the others
    forked before any of them touches torch's thread pools); raise if another rank failed."""
    with tempfile.TemporaryDirectory(prefix="detprof-ddp-") as folder:
        store = str(Path(folder, "store"))
        context = multiprocessing.get_context("fork")
        errors = context.Queue()

        def other(rank: int) -> None:
            try:
                rank_main(rank, store)
            except BaseException:
                errors.put(f"rank {rank}: {traceback.format_exc()[-1500:]}")
                os._exit(1)
            os._exit(0)

        others = [context.Process(target=other, args=(rank,)) for rank in range(1, world_size)]
        for process in others:
            process.start()
        try:
            rank_main(0, store)
        finally:
            for process in others:
                process.join(timeout=600)
                if process.is_alive():
                    process.kill()
        if any(process.exitcode != 0 for process in others):
            message = errors.get(timeout=5) if not errors.empty() else "a rank ended without a message"
            raise RuntimeError(f"a DDP rank failed: {message}")


def distributed_training(training: Training, rank: int, world_size: int, store: str,
                         bucket_cap_mb: float | None) -> Training:
    """``training`` as one rank of a DDP job: the process group joined, the model wrapped (its
    parameters' names kept), the batch cut to this rank's share; returns it."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    backend = "nccl" if training.device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=world_size)
    options: dict[str, Any] = {} if bucket_cap_mb is None else {"bucket_cap_mb": bucket_cap_mb}
    wrapped = DistributedDataParallel(training.model, **options)
    inner_forward = training.forward

    def forward(_model: torch.nn.Module, inputs: Any) -> Any:
        return inner_forward(wrapped, inputs)  # type: ignore[arg-type]

    training.forward = forward
    training.batch = shard(training.batch, rank, world_size)
    return training


def nccl_environment() -> dict[str, str]:
    """The NCCL variables set in this process's environment (what a GPU run records)."""
    return {name: os.environ[name] for name in NCCL_VARIABLES if name in os.environ}


def gpu_topology(timeout_s: float = 20.0) -> str | None:
    """How this machine's GPUs (and NICs) connect, as ``nvidia-smi topo -m`` prints it (NVLink,
    PCIe switch, CPU socket: what decides NCCL's rings and trees); None where nvidia-smi is
    missing or fails."""
    import shutil
    import subprocess

    tool = shutil.which("nvidia-smi")
    if tool is None:
        return None
    try:
        done = subprocess.run([tool, "topo", "-m"], capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None
