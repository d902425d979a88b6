"""Stability: train N models under a noise variant, then churn, L2, per-class and subgroup spread."""

from detprof.stability.experiment import run_stability
from detprof.stability.variants import SOURCES, VARIANTS

__all__ = ["SOURCES", "VARIANTS", "run_stability"]
