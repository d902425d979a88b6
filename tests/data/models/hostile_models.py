"""Model functions that try to end detprof on their own terms, for the tests that user code cannot
fake a verdict (``--model tests/data/models/hostile_models.py:FUNCTION``). Each takes ``num_classes``."""

from __future__ import annotations

import ctypes
import os
import sys
import time

from torch import nn


def exits_zero(num_classes: int) -> nn.Module:
    """sys.exit(0): in detprof's own process this once made `audit` exit 0 with nothing checked."""
    sys.exit(0)


def os_exits_zero(num_classes: int) -> nn.Module:
    """os._exit(0): no exception, no clean-up, exit status 0."""
    os._exit(0)


def segfaults(num_classes: int) -> nn.Module:
    """Reads address 0: the process dies of SIGSEGV."""
    ctypes.string_at(0)
    raise AssertionError("unreachable")


def hangs(num_classes: int) -> nn.Module:
    """Never returns."""
    time.sleep(10_000)
    raise AssertionError("unreachable")


def prints_to_stdout(num_classes: int) -> nn.Module:
    """A working model that talks on stdout, where --json documents go."""
    print("building the model now", flush=True)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, num_classes))


def fine(num_classes: int) -> nn.Module:
    """The negative control: a plain working model."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, num_classes))
