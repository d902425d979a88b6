"""Determinism as a regression test, with detprof's pytest plugin (installed with detprof).

The first test fails when training small-cnn no longer gives the bits of the golden record
committed beside it (golden/test_determinism/): after a torch upgrade, a change to the model or
the optimizer, or on a CPU whose kernels sum in another order. The failure names the first
divergent step, parameter and op, and what differs in how the two were made. Refresh the golden
record on purpose with ``pytest --detprof-refresh``.

The second gates what determinism costs: it fails when the deterministic mode's step time is
over three times the default's, judged on the 95% confidence interval of their ratio.
"""

import pytest

pytestmark = pytest.mark.detprof(arch="small-cnn", steps=3, seed=0)


def test_training_matches_the_golden_record(detprof_golden):
    detprof_golden()


def test_determinism_costs_at_most_three_times_the_step_time(detprof_tax):
    detprof_tax(3.0, repeats=3, warmup_steps=1, timed_steps=4, profile_steps=0)
