"""``detprof gpus`` and ``zoo``: the GPUs here, and every network each backend builds."""

from __future__ import annotations

from detprof.cli.app import app
from detprof.cli.common import JSON_OPTION, emit


@app.command()
def gpus(json_output: bool = JSON_OPTION) -> None:
    """List the GPUs NVML sees (name, driver, memory, clocks, temperature)."""
    from detprof.gpus import gpus_document

    emit("gpus", gpus_document(), json_output)


@app.command()
def zoo(json_output: bool = JSON_OPTION) -> None:
    """List every architecture with its framework, parameter count and default input shape."""
    from detprof.backend import zoo_rows

    emit("zoo", zoo_rows(), json_output)
