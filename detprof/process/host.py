"""Facts about the machine and this process that every job records, without torch or TensorFlow:
the CPU model, and the process's peak resident memory (with its reset after warm-up)."""

from __future__ import annotations

import os
import platform
import resource
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo), or what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def status_kib(field_name: str) -> int | None:
    """A ``/proc/self/status`` figure in KiB, or None where there is no such file (not Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_bytes() -> int:
    """This process's peak resident set in bytes (since the last ``reset_peak_rss``, where Linux allows)."""
    high_water = status_kib("VmHWM")
    if high_water is not None:
        return high_water * 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def reset_peak_rss() -> bool:
    """Start counting the peak resident set afresh (``/proc/self/clear_refs``, Linux >= 4.0);
    returns whether that worked."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # 5 resets the peak RSS
    except OSError:
        return False
    return status_kib("VmHWM") is not None


def process_alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie (killed, not yet reaped); a process of
    another user counts as alive. The one check detprof uses for its drivers, workers and owners."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc: existence is all we can tell
