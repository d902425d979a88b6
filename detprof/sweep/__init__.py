"""Sweeps: many overhead measurements from one TOML spec, resumable, here or on a Ray cluster."""

from detprof.sweep.plan import SweepJob, plan_sweep
from detprof.sweep.run import run_sweep, sweep_status
from detprof.sweep.spec import SpecError, SweepSpec, load_spec, parse_spec, with_gpus

__all__ = ["SpecError", "SweepJob", "SweepSpec", "load_spec", "parse_spec", "plan_sweep", "run_sweep", "sweep_status",
           "with_gpus"]
