"""Stores made for tests: runs written through the store's own API, with kernel tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from detprof.kernels import kernel_table
from detprof.store import ResultStore


def store_with_kernels(db: Path, names: list[str], modes: tuple[str, str] = ("default", "deterministic"),
                        arch: str = "resnet18", reliable: bool | None = None, part_of: str | None = None,
                        command: str = "detprof overhead") -> int:
    table = kernel_table(pd.DataFrame({"name": names, "dur_us": [5.0] * len(names)}))
    summary = {"arch": arch, "device": {"kind": "cpu", "name": "cpu"}, "ratio": 1.2, "ratio_ci": [1.1, 1.3],
               "kernel_ratio": 1.5, "kernel_ratio_ci": [1.4, 1.6], "kernel_times_reliable": reliable,
               "noisy": False, "workload": {"kernel_size": 3}, "protocol": {"profile_steps": 1},
               "modes": [{"mode": modes[0]}, {"mode": modes[1]}], "command": command}
    if part_of is not None:
        summary["part_of"] = part_of
    run = {"created_at": "2026-11-25T00:00:00+00:00", "kind": "overhead", "arch": arch, "framework": "pytorch",
           "device_kind": "cpu", "device_name": "cpu", "modes": list(modes),
           "command": command, "config": {}, "environment": {}, "summary": summary}
    with ResultStore(db, create=True) as store:
        run_id = store.save_run(run, [], {modes[0]: table, modes[1]: table})
    assert run_id is not None
    return run_id
