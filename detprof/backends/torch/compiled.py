"""torch.compile as detprof's child processes call it.

Tracing a graph draws a progress bar with tqdm, whose first bar makes a multiprocessing lock: a
named semaphore registered with the resource tracker the child shares with the measuring process.
A child ends without exit handlers (detprof.process.processes), so that semaphore was never
unregistered and the measuring process warned of a leaked semaphore on exit after every compiled
run. tqdm is given a thread lock first, which registers nothing.
"""

from __future__ import annotations

import threading
from typing import Any

import torch


def compile_module(model: torch.nn.Module, **options: Any) -> torch.nn.Module:
    """``torch.compile(model, **options)``, with tqdm's lock a thread lock (see the module docstring)."""
    try:
        from tqdm import tqdm
    except ImportError:  # no tqdm, no lock to make
        pass
    else:
        tqdm.set_lock(threading.RLock())
    return torch.compile(model, **options)  # type: ignore[return-value]
