"""Store the verdicts of ``check``, ``audit`` and ``advise`` as runs, beside the overhead runs.

So ``runs`` lists them, ``db merge`` carries them, ``db export`` writes them and the report's
Reproducibility section shows them. A verdict run has no jobs, steps or kernels: its summary is
the command's own document (what ``--json`` prints) with the fields every run carries (arch,
device, modes, verdict, passed).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from detprof.backend import DEFAULT_FRAMEWORK
from detprof.check.verdict_kinds import VERDICT_KINDS, VERDICTS, verdict_of
from detprof.store import StoreLike, open_store
from detprof.store.schema import RunRecord


def _device(document: dict[str, Any], kind: str) -> dict[str, str]:
    """{kind, name} of the device a verdict was reached on (check records a torch device per side)."""
    if isinstance(document.get("device"), dict):
        return {"kind": document["device"]["kind"], "name": document["device"]["name"]}
    if kind == "check":
        names = sorted({side["device"] for side in document["runs"]})
        name = " vs ".join(names)
        return {"kind": "cuda" if any(n.startswith("cuda") for n in names) else "cpu", "name": name}
    name = str(document.get("device") or "cpu")
    return {"kind": "cpu" if name == "cpu" else "cuda", "name": name}


API_COMMAND = "Python API: detprof.check.record.store_verdict"


def store_verdict(kind: str, document: dict[str, Any], db: StoreLike = None, command: str = API_COMMAND) -> int:
    """Store one verdict document as a run of ``kind`` (check, batch-invariance, audit, advise);
    returns its run id. The summary holds the whole document, plus ``passed`` and ``verdict``;
    ``command`` is what produced it (the command line; API_COMMAND from Python)."""
    command = command or API_COMMAND  # an empty one would make the run unmergeable (store.rows)
    if kind not in VERDICT_KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(VERDICT_KINDS)}")
    passed, verdict = verdict_of(kind, document)
    device = _device(document, kind)
    workload = document.get("workload") or {}
    modes = VERDICTS[kind].modes(document)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    summary = {**document, "kind": kind, "arch": workload.get("arch", "?"), "device": device,
               "framework": document.get("framework") or DEFAULT_FRAMEWORK, "created_at": created,
               "modes": [{"mode": mode} for mode in modes], "passed": passed, "verdict": verdict,
               "ratio": None, "ratio_ci": None, "kernel_ratio": None, "command": command}
    run: RunRecord = {"created_at": created, "kind": kind, "arch": summary["arch"], "framework": summary["framework"],
                      "device_kind": device["kind"], "device_name": device["name"], "modes": modes,
                      "command": command, "config": {"workload": workload}, "environment": {}, "summary": summary}
    with open_store(db, create=True) as store:
        store.store_pending()
        run_id = store.save_run(run, [], {})
    assert run_id is not None  # no sweep job: a run is always stored (or StoreError raised)
    return run_id


def check_verdict_store(db: StoreLike) -> None:
    """Refuse, before anything runs, a database that could never hold a verdict (a folder, a file
    that is not a detprof database: StoreError naming it); a missing one is created when the
    verdict is stored."""
    from detprof.store import ResultStore, StoreError, resolve_db_path

    if isinstance(db, ResultStore):
        return
    path = resolve_db_path(db)
    if path.exists():
        with ResultStore(path):
            pass
    elif db is not None and path.parent.exists() and not path.parent.is_dir():
        raise StoreError(f"--db {str(db)!r} is not accepted: {str(path.parent)!r} is not a folder")

