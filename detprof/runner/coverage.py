"""Whether a run's kernel times stand for its steps: each mode's kernel coverage and profiler
slowdown (``profiled_figures``), and the rule that withholds the kernel ratio (``kernel_times_note``).

Kernel time is measured in a separate profiled pass. The profiler records every op, which on a
CPU costs a few µs each and slows the profiled steps; coverage is therefore kernel time over the
profiled steps' own wall time, and how much the profiler slowed them is a figure of its own.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Protocol


class _Job(Protocol):
    step_ms: list[float]
    profiled_step_ms: list[float]


class _Mode(Protocol):
    mode: str
    kernel_coverage: float | None
    profiler_slowdown: float | None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def profiled_figures(jobs: Sequence[tuple[_Job, float]], timed_median_ms: float | None
                     ) -> tuple[float | None, float | None]:
    """(kernel coverage, profiler slowdown) of a mode, each the median over its profiled jobs.

    A job's coverage is its kernel ms per step over its own profiled steps' median wall time: the
    profiler records every op, which on a CPU costs a few µs each and slows the profiled steps
    (10-30% for a network of small ops on a slow clock), so kernel time is compared with the steps
    it was measured in. Its slowdown is that profiled median over its own timed steps' median (the
    same process, so the memory layout cancels). A job whose profiled steps were not timed (a
    TensorFlow job, an older result) counts against the mode's median timed step, slowdown unknown."""
    coverages, slowdowns = [], []
    for outcome, kernel_ms in jobs:
        profiled = _median(outcome.profiled_step_ms)
        timed = _median(outcome.step_ms)
        if profiled:
            coverages.append(kernel_ms / profiled)
            if timed:
                slowdowns.append(profiled / timed)
        elif timed_median_ms:
            coverages.append(kernel_ms / timed_median_ms)
    return _median(coverages), _median(slowdowns)


# Kernel time per profiled step over that step's wall time, per mode. Inside this band the kernels
# fill the step. Below it the device sat idle or the host (Python between ops, on a CPU) took part
# of the step: the kernel ratio then speaks for kernel time only, which the output says; below
# COVERAGE_FLOOR kernel time is too small a part of the step to stand for it at all. Above the band
# kernels overlapped, or another process ran on the device, and the kernel times are not stated.
COVERAGE_BAND = (0.90, 1.10)
COVERAGE_FLOOR = 0.50
# How differently the profiler may slow the two modes' steps (their slowdowns' ratio) before their
# kernel times stop being comparable. The first fresh-clone run of the main job on a CPU showed why
# it matters: a kernel ratio of 0.73 beside a step-time ratio of 1.005, the profiled steps of one
# mode 1.37 times as slowed as the other's. The slowdown of small steps is itself noisy (a 5 ms
# step of examples/token_lm.py: x1.25 in one mode, x1.12 in the other, with 3 profiled processes
# of 2 steps each), so the limit is 20%.
SLOWDOWN_AGREEMENT = 1.20
# The most the profiler may slow a step before the profiled steps stop standing for the timed ones.
# Its per-op cost slowed small CNN steps on this project's 2-core CPU by 10-20%, and a newcomer's
# slower machine by up to about 45%; a step that takes twice as long under the profiler did other
# work (or shared the device) while it was recorded.
PROFILER_SLOWDOWN_LIMIT = 2.0


def kernel_times_note(modes: Sequence[_Mode]) -> str | None:
    """Why a run's kernel times do not stand for its steps, or None when every profiled mode's
    coverage lies between COVERAGE_FLOOR and the top of COVERAGE_BAND and the profiler slowed the
    modes alike."""
    slowdowns = [(m.mode, m.profiler_slowdown) for m in modes if m.profiler_slowdown]
    slowed = [f"x{value:.2f} in {mode}" for mode, value in slowdowns if value > PROFILER_SLOWDOWN_LIMIT]
    if slowed:
        return (f"kernel times unreliable: profiled steps took {', '.join(slowed)} the timed steps' time (over "
                f"x{PROFILER_SLOWDOWN_LIMIT:g}): they did other work while recorded, or shared the device")
    low, high = COVERAGE_FLOOR, COVERAGE_BAND[1]
    outside = [m for m in modes if m.kernel_coverage is not None and not low <= m.kernel_coverage <= high]
    band = f"outside {100 * low:.0f}-{100 * high:.0f}%"
    if outside:
        shares = ", ".join(f"{100 * m.kernel_coverage:.1f}% in {m.mode}" for m in outside if m.kernel_coverage)
        if any(m.kernel_coverage is not None and m.kernel_coverage > high for m in outside):
            return (f"kernel times unreliable: kernel time per step is {shares} of the profiled step ({band}): "
                    "kernels overlapped, or another process ran")
        return (f"kernel times unreliable: kernels cover only {shares} of the profiled step ({band}); the rest "
                "is idle or host time, which kernel time does not see")
    if len(slowdowns) == 2 and not 1 / SLOWDOWN_AGREEMENT <= slowdowns[1][1] / slowdowns[0][1] <= SLOWDOWN_AGREEMENT:
        return ("kernel times unreliable: the profiler slowed the modes' steps differently ("
                + ", ".join(f"x{value:.2f} in {mode}" for mode, value in slowdowns) + "), so their kernel times "
                "do not compare as their timed steps do")
    return None
