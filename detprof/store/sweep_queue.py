"""The sweep queue: one row per sweep job configuration, claimed by one sweep at a time, done with
its run or failed with its reason (detprof.sweep.run drives it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from detprof.store.connection import StoreConnection

if TYPE_CHECKING:
    import pandas as pd


class SweepQueue(StoreConnection):
    """The ``sweep_jobs`` table's reads and writes."""

    def claim_sweep_job(self, job_key: str, sweep: str, label: str, config: dict[str, Any], owner: str,
                        retry_failed: bool, owner_alive: Callable[[str], bool], now: str) -> str:
        """Take a sweep job for ``owner`` unless it needs no run; returns what was found: ``claimed``,
        ``done``, ``failed`` (kept: ``retry_failed`` is off) or ``running`` (a live sweep has it).
        A job left ``running`` by a sweep that is gone (``owner_alive`` false) is claimed again."""
        with self.immediate_transaction() as db:
            row = db.execute("SELECT status, owner FROM sweep_jobs WHERE job_key=?", (job_key,)).fetchone()
            if row is not None:
                status, holder = row
                if status == "done":
                    return "done"
                if status == "failed" and not retry_failed:
                    return "failed"
                if status == "running" and holder != owner and holder and owner_alive(holder):
                    return "running"
                db.execute("UPDATE sweep_jobs SET status='running', owner=?, attempts=attempts+1, updated_at=?,"
                           " sweep=?, label=? WHERE job_key=?", (owner, now, sweep, label, job_key))
            else:
                db.execute("INSERT INTO sweep_jobs (job_key, sweep, label, config_json, status, attempts, owner,"
                           " updated_at) VALUES (?,?,?,?,'running',1,?,?)",
                           (job_key, sweep, label, json.dumps(config, sort_keys=True), owner, now))
        return "claimed"

    def fail_sweep_job(self, job_key: str, error: str, node: str | None, now: str) -> None:
        """Record a sweep job as failed with its reason (one line); a job already done stays done."""
        with self.immediate_transaction() as db:
            db.execute("UPDATE sweep_jobs SET status='failed', error=?, node=?, owner=NULL, updated_at=?"
                       " WHERE job_key=? AND status!='done'", (error, node, now, job_key))

    def set_sweep_job_node(self, job_key: str, node: str) -> None:
        """Note where a sweep job ran (host name, or the Ray node)."""
        with self.transaction() as db:
            db.execute("UPDATE sweep_jobs SET node=? WHERE job_key=?", (node, job_key))

    def sweep_job_status(self, job_key: str) -> str | None:
        """The status of one sweep job (running, done, failed), or None when it is not recorded."""
        row = self.connection.execute("SELECT status FROM sweep_jobs WHERE job_key=?", (job_key,)).fetchone()
        return None if row is None else str(row[0])

    def sweep_jobs(self, sweep: str | None = None) -> pd.DataFrame:
        """Sweep jobs (of one sweep, or all): job_key, sweep, label, status, run_id, error, attempts,
        owner (``host:pid`` of the sweep running it), node, updated_at, config (dict)."""
        import pandas as pd

        query = ("SELECT job_key, sweep, label, status, run_id, error, attempts, owner, node, updated_at, config_json"
                 " FROM sweep_jobs" + (" WHERE sweep=?" if sweep else "") + " ORDER BY rowid")
        frame = pd.read_sql_query(query, self.connection, params=(sweep,) if sweep else ())
        frame["config"] = [json.loads(c) for c in frame.pop("config_json")]
        return frame
