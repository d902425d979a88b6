"""Live processes from /proc, for the tests that kill detprof's processes and look for survivors."""

from __future__ import annotations

from pathlib import Path

# Fields of /proc/PID/stat after the command name: state, ppid, pgrp, session, ...
STATE, PARENT, SESSION = 0, 1, 3


def processes(field: int, value: int) -> list[int]:
    """Pids of the live (not zombie) processes whose stat ``field`` equals ``value``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[field]) == value and fields[STATE] != "Z":
                found.append(int(entry.name))
    return found
