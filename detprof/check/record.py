"""Store the verdicts of ``check``, ``audit`` and ``advise`` as runs, beside the overhead runs.

So ``runs`` lists them, ``db merge`` carries them, ``db export`` writes them and the report's
Reproducibility section shows them. A verdict run has no jobs, steps or kernels: its summary is
the command's own document (what ``--json`` prints) with the fields every run carries (arch,
device, modes, verdict, passed).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from detprof.backend import DEFAULT_FRAMEWORK
from detprof.documents import IDENTICAL, NOT_IDENTICAL
from detprof.store import StoreLike, open_store


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


def _check_outcome(document: dict[str, Any]) -> tuple[int, str]:
    from detprof.check.verdict import EXIT_CODES

    # a check stored before verdicts had a third outcome reads as what its comparison found
    verdict = document.get("verdict") or (IDENTICAL if document["bitwise_identical"] else NOT_IDENTICAL)
    return EXIT_CODES[verdict], "bitwise identical" if verdict == IDENTICAL else verdict


def _invariance_outcome(document: dict[str, Any]) -> tuple[int, str]:
    passed = bool(document["batch_invariant"])
    return (0, "batch invariant") if passed else (1, "not batch invariant")


def _audit_outcome(document: dict[str, Any]) -> tuple[int, str]:
    count = len(document["nondeterministic_ops"])
    if document.get("switched_off"):
        return 1, "its step turns deterministic algorithms off"
    return (0, "can train fully deterministically") if count == 0 else \
        (1, f"{count} op(s) without a deterministic implementation")


def _advise_outcome(document: dict[str, Any]) -> tuple[int, str]:
    recommendation = document.get("recommendation")
    return (0, f"recommends {recommendation['mode']}") if recommendation else \
        (1, "no candidate mode was bitwise reproducible")


# Each verdict kind and its outcome: (exit code, the verdict in words). Exit 0 passes; 1 fails;
# 3 (a check only) is inconclusive: the check could not have seen a difference.
OUTCOMES: dict[str, Callable[[dict[str, Any]], tuple[int, str]]] = {
    "check": _check_outcome, "batch-invariance": _invariance_outcome, "audit": _audit_outcome,
    "advise": _advise_outcome}
VERDICT_KINDS = tuple(OUTCOMES)


def outcome_of(kind: str, document: dict[str, Any]) -> tuple[int, str]:
    """(exit code, the verdict in words) of a check, batch-invariance, audit or advise document."""
    return OUTCOMES[kind](document)


def verdict_of(kind: str, document: dict[str, Any]) -> tuple[bool, str]:
    """(passed, the verdict in words) of a verdict document: passed only with exit code 0."""
    code, words = outcome_of(kind, document)
    return code == 0, words


def _modes(kind: str, document: dict[str, Any]) -> list[str]:
    if kind == "advise":
        return [row["mode"] for row in document["candidates"]]
    return [document.get("mode") or "deterministic"]


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
    modes = _modes(kind, document)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    summary = {**document, "kind": kind, "arch": workload.get("arch", "?"), "device": device,
               "framework": document.get("framework") or DEFAULT_FRAMEWORK, "created_at": created,
               "modes": [{"mode": mode} for mode in modes], "passed": passed, "verdict": verdict,
               "ratio": None, "ratio_ci": None, "kernel_ratio": None, "command": command}
    run = {"created_at": created, "kind": kind, "arch": summary["arch"], "framework": summary["framework"],
           "device_kind": device["kind"], "device_name": device["name"], "modes": modes, "command": command,
           "config": {"workload": workload}, "environment": {}, "summary": summary}
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

