"""Renderers: detprof's documents (what ``--json`` prints, what the Python API returns) as terminal
tables and lines. Each takes a document and a rich Console (standard output by default), so the
same tables print from the command line, a script or a notebook:

    from detprof.render import render
    render("overhead", run_overhead("small-cnn", gpu="cpu"))

``RENDERERS`` names every one; tests/test_render.py prints each from a golden document in
tests/data/documents/. Nothing outside this package prints to the terminal.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# Document kind -> "module:function" of its renderer, imported when first used (rich tables and
# the modules they need are not loaded by a command that prints none).
RENDERERS = {
    "overhead": "overhead:overhead", "ablation": "overhead:ablation",
    "trace-kernels": "kernels:trace_report", "run-kernels": "kernels:kernel_report", "diff": "kernels:kernel_diff",
    "import": "kernels:imported",
    "check": "check:check", "batch-invariance": "check:batch_invariance", "audit": "check:audit",
    "advise": "check:advice", "inference": "infer:inference",
    "inference-cost": "infer:inference_cost", "inference-mismatch": "infer:inference_mismatch",
    "record": "records:record", "compare": "records:comparison",
    "sweep": "sweep:sweep", "probe": "sweep:probes",
    "stability": "stability:stability",
    "runs": "inventory:runs", "gpus": "inventory:gpus", "zoo": "inventory:zoo", "merge": "inventory:merged",
    "report": "inventory:report_written",
}


def renderer(kind: str) -> Callable[..., None]:
    """The renderer of document ``kind`` (a key of RENDERERS); KeyError naming the kinds otherwise."""
    if kind not in RENDERERS:
        raise KeyError(f"no renderer for {kind!r}; kinds: {', '.join(RENDERERS)}")
    module, function = RENDERERS[kind].split(":")
    found: Callable[..., None] = getattr(importlib.import_module(f"detprof.render.{module}"), function)
    return found


def render(kind: str, document: Any, console: Any = None, **options: Any) -> None:
    """Print ``document`` of ``kind`` for people on ``console`` (default: standard output)."""
    if console is not None:
        options["console"] = console
    renderer(kind)(document, **options)


__all__ = ["RENDERERS", "render", "renderer"]
