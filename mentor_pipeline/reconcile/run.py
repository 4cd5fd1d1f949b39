"""Reconciliation and force sync, as plain Python: the Dagster asset, the break-glass CLI and the
benchmark all call `reconcile` / `force_sync` with the `Drain` that writes what they queue (its
connection factory, client, alerts, log and policy serve the whole run).

Reconciliation: read every listing from Dynamics (paged), then the app side
(`reconciliation_app_state`, the one rule per mentor of a syncing organisation), diff them on the
mentor key (listed flag and chapter), find listed contacts whose mentor is gone from the app or
has no website sync, mark every divergent key in the outbox (`enqueue`, `triggered_by_event =
'reconciliation'`; keys with a pending or in-flight row are left to it), drain the queue with
the `Drain`, and log the run.
Force sync: mark every HLF mentor (or the selected ones) as `force_sync`, then drain: each gets
the rule's answer written. A dry run of either reads and diffs, and writes nothing anywhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import psycopg

from mentor_pipeline.operations.throttle_hold import SharedHold
from mentor_pipeline.progress import CountingClient, Progress
from mentor_pipeline.reconcile import diff, store
from mentor_pipeline.reconcile.report import ReconcileReport
from mentor_pipeline.sync.run import Drain
from mentor_pipeline.sync.store import enqueue
from mentor_pipeline.vocabulary import Classification, IncidentKind, RowResult, TriggerEvent

logger = logging.getLogger("mentor_pipeline.reconcile")


def reconcile(
    drain: Drain,
    *,
    mentor_ids: Sequence[str] | None = None,
    dry_run: bool = False,
    dagster_run_id: str | None = None,
    time_budget_seconds: float | None = None,
    progress: Progress | None = None,
) -> ReconcileReport:
    """Make Dynamics match the app for every HLF mentor (or `mentor_ids`); see the module doc.
    `time_budget_seconds` limits the drain (`Drain.run`); `progress` hears of pages read and rows
    written."""
    drain = _logging_here(drain)
    connect, client, log = drain.connect, drain.client, drain.log
    with _session(connect, "reconciliation", dry_run) as (conn, report, started):
        ids = store.select_mentors(conn, mentor_ids) if mentor_ids else None
        with SharedHold(connect, client, log) as shared_hold:
            shared_hold.adopt(conn)  # the read spends the same budget as the writes
            compared, actual, read_started = _read_and_diff(conn, client, ids, report, progress)
        changes = diff.divergent_rows(compared)
        report.changes = _with_dynamics_state(changes)
        log.info("reconciliation: %d mentors checked, %d divergent (%s)", report.counts["checked"],
                 report.divergent, ", ".join(f"{k} {report.counts[k]}" for k in diff.DIVERGENT))
        if dry_run:
            return report

        report.run_id = store.start_run(conn, "reconciliation", dagster_run_id)
        # What Dynamics showed is the known listing now (unless a sync write confirmed something
        # newer meanwhile): keeps website_listing_state honest after hand edits.
        stale = compared["contact_exists"] & (
            compared["confirmed_listed"].isna()
            | (compared["confirmed_listed"].astype("boolean") != compared["dynamics_listed"]))
        store.record_read_listing(
            conn, compared.loc[stale, ["mentor_id", "dynamics_listed"]].rename(columns={"dynamics_listed": "listed"}),
            read_started)
        del compared, actual

        to_queue = report.changes.loc[report.changes["action"].isin([diff.ADD, diff.REMOVE]), "mentor_id"].tolist()
        report.changes = _queue_and_log(conn, report.run_id, report.changes, to_queue, TriggerEvent.RECONCILIATION)
        report.queued = len(to_queue)
        _drain_and_settle(drain, conn, report, time_budget_seconds, progress)

        report.duplicates = store.duplicates(conn)
        if report.duplicates and drain.alerts is not None:
            drain.alerts.alert(
                IncidentKind.RECONCILIATION_DUPLICATES,
                f"{len(report.duplicates)} duplicate record(s) for the same certification period need manual review "
                f"(first: {report.duplicates[0]['kind']} for mentor {report.duplicates[0]['mentor_id']})",
                {"duplicates": [_plain(row) for row in report.duplicates[:20]],
                 "query": "select * from reconciliation_duplicates"},
            )
        return _finish(conn, report, started)


def force_sync(
    drain: Drain,
    *,
    mentor_ids: Sequence[str] | None = None,
    mentor_names: Sequence[str] | None = None,
    chapter: str | None = None,
    dry_run: bool = False,
    dagster_run_id: str | None = None,
    time_budget_seconds: float | None = None,
    progress: Progress | None = None,
) -> ReconcileReport:
    """Write the rule's answer for every HLF mentor (or the selection: ids, exact names, a
    chapter) to Dynamics now, through `drain`.

    A selection that names nothing valid raises `InvalidMentorIds` before anything is queued.
    A dry run reads Dynamics and lists every write it would make, with what Dynamics shows now.
    """
    drain = _logging_here(drain)
    connect, client, log = drain.connect, drain.client, drain.log
    with _session(connect, "force_sync", dry_run) as (conn, report, started):
        selected = bool(mentor_ids or mentor_names or chapter)
        ids = store.select_mentors(conn, mentor_ids or (), mentor_names or (), chapter) if selected else None
        if dry_run:
            with SharedHold(connect, client, log) as shared_hold:
                shared_hold.adopt(conn)
                compared, _, _ = _read_and_diff(conn, client, ids, report, progress)
            # A force sync writes every selected mentor, in sync or not: list them all.
            report.changes = _with_dynamics_state(compared)
            report.counts["would_write"] = int(len(compared))
            return report

        app = store.app_state(conn, ids)
        if ids is not None:
            # Selected keys whose mentor is gone from the app: written too (unlisted).
            gone = store.keys_state(conn, [k for k in ids if k not in set(app["mentor_id"])])
            app = pd.concat([app, gone.assign(should_be_listed=False, chapter_name=None, confirmed_listed=None,
                                         confirmed_matches=None)
                             .drop(columns=["in_app"])], ignore_index=True)
        report.counts = {"checked": int(len(app)), "divergent": 0}
        report.run_id = store.start_run(conn, "force_sync", dagster_run_id)
        changes = app.assign(dynamics_state=None, classification=Classification.FORCED, action=diff.NONE,
                             contact_exists=True, dynamics_listed=False)
        to_queue = changes["mentor_id"].tolist()
        report.changes = _queue_and_log(conn, report.run_id, changes, to_queue, TriggerEvent.FORCE_SYNC)
        report.queued = len(to_queue)
        log.info("force sync: queued %d mentor(s)", report.queued)
        _drain_and_settle(drain, conn, report, time_budget_seconds, progress)
        return _finish(conn, report, started)


# -- steps -----------------------------------------------------------------------------------

def _logging_here(drain: Drain) -> Drain:
    """The drain, with reconciliation's logger when it has no log of its own: its writes then
    log beside the run's own lines."""
    return drain if drain.log is not None else dataclasses.replace(drain, log=logger)


@contextlib.contextmanager
def _session(connect: Callable[[], psycopg.Connection], kind: str, dry_run: bool):
    """A run's autocommit connection, its empty report and its start time; however the run ends,
    the report's seconds are set and the connection closed."""
    started = time.monotonic()
    report = ReconcileReport(kind=kind, dry_run=dry_run)
    conn = connect()
    conn.autocommit = True
    try:
        yield conn, report, started
    finally:
        report.seconds = time.monotonic() - started
        conn.close()


def _finish(conn, report: ReconcileReport, started: float) -> ReconcileReport:
    """Log the finished run (its summary, with the time so far) and return the report."""
    report.seconds = time.monotonic() - started
    store.finish_run(conn, report.run_id, report.summary())
    return report


def _read_and_diff(conn, client, ids, report: ReconcileReport, progress: Progress | None):
    (read_started,) = conn.execute("select now()").fetchone()
    read_clock = time.monotonic()
    on_page = (lambda n: progress("read", n, None)) if progress else None
    actual = diff.actual_frame(client.iter_listings(), on_page=on_page)
    report.read_seconds = time.monotonic() - read_clock
    # The app side after Dynamics: a change made while we read is then already in the queue
    # (left to it) instead of looking like a divergence.
    app = store.app_state(conn, ids)
    orphans = None
    if ids is None:
        unknown = diff.unknown_contacts(app, actual)
        report.unknown_contacts = int(len(unknown))
        report.unknown_contacts_listed = int(unknown["listed"].sum())
        listed_unknown = unknown[unknown["listed"]]
        if not listed_unknown.empty:
            # Listed with no mentor of a syncing organisation behind them: gone, or no sync.
            orphans = diff.orphan_rows(listed_unknown, store.keys_state(conn, listed_unknown["mentor_id"].tolist()))
    else:
        actual = actual[actual["mentor_id"].isin(ids)]
    compared = diff.diff_listings(app, actual)
    if orphans is not None:
        compared = pd.concat([compared, orphans], ignore_index=True)
        compared["classification"] = pd.Categorical(compared["classification"], categories=diff.CLASSIFICATIONS)
        compared["action"] = pd.Categorical(compared["action"],
                                            categories=[diff.ADD, diff.REMOVE, diff.LEFT_TO_QUEUE, diff.NONE])
    report.counts = diff.counts(compared)
    return compared, actual, read_started


def _with_dynamics_state(changes: pd.DataFrame) -> pd.DataFrame:
    changes = changes.copy()
    changes["dynamics_state"] = list(diff.iter_dynamics_states(changes))
    changes["classification"] = changes["classification"].astype(str)
    changes["action"] = changes["action"].astype(str)
    changes["status"] = changes["status"].astype(object).where(changes["status"].notna(), None)
    return changes.reset_index(drop=True)


def _queue_and_log(conn, run_id: uuid.UUID, changes: pd.DataFrame, to_queue: list[str],
                   event: TriggerEvent) -> pd.DataFrame:
    """Queue the desired state of `to_queue` and log every row of `changes`, in one transaction:
    the log says exactly what was queued (the operation the sync layer chose from the state at
    that moment, and the row id)."""
    with conn.transaction():
        enqueue(conn, to_queue, event)
        queued = store.pending_queue_ids(conn, to_queue) if to_queue else {}
        actions, queue_ids = [], []
        for mentor_id, action in zip(changes["mentor_id"], changes["action"]):
            if mentor_id in queued:
                queue_id, operation = queued[mentor_id]
                actions.append(operation)  # enqueue without an operation asks the rule: add or remove
                queue_ids.append(queue_id)
            else:
                actions.append(diff.NONE if action in (diff.ADD, diff.REMOVE) else action)
                queue_ids.append(None)
        changes = changes.assign(action=actions, queue_id=queue_ids)
        store.write_log(conn, run_id, (
            store.LogEntry(row.mentor_id, None if pd.isna(row.status) else str(row.status), bool(row.should_be_listed),
                           row.dynamics_state,
                           row.classification, row.action, None if pd.isna(row.queue_id) else int(row.queue_id))
            for row in changes.itertuples(index=False)
        ))
    return changes


def _drain_and_settle(drain: Drain, conn, report: ReconcileReport, time_budget_seconds: float | None,
                      progress: Progress | None) -> None:
    """Drain the queue, then decide per acted-on mentor: right now, still in flight (a pending or
    in-flight row, e.g. a retry), or still divergent (dead, contact missing, not applied)."""
    if progress:
        drain = dataclasses.replace(drain, client=CountingClient(drain.client, progress, report.queued))
    report.drain = drain.run(time_budget_seconds=time_budget_seconds)
    changes = report.changes
    if changes is None or changes.empty:
        return
    acted = (changes["action"] != diff.NONE).to_numpy()
    now = store.app_state(conn, changes.loc[acted, "mentor_id"].tolist())
    now = now[["mentor_id", "should_be_listed", "confirmed_listed", "in_queue", "confirmed_matches"]].set_index(
        "mentor_id")
    now = now.reindex(changes["mentor_id"])
    last_result = {str(row.mentor_id): row.result for row in report.drain.rows}
    result = changes["mentor_id"].astype(object).map(last_result).astype(object).fillna("").to_numpy(dtype=object)

    known = now["should_be_listed"].notna().to_numpy()
    should = now["should_be_listed"].fillna(False).to_numpy(dtype=bool)
    in_queue = now["in_queue"].fillna(False).to_numpy(dtype=bool)
    confirmed_known = now["confirmed_listed"].notna().to_numpy()
    # Flag and chapter, as SQL's listing_matches_rule decides (reconciliation_app_state).
    matches = now["confirmed_matches"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    absent = (changes["classification"] == Classification.CONTACT_ABSENT).to_numpy()
    applied = result == RowResult.APPLIED
    outcome = np.select(
        [~acted, ~known, in_queue, result == RowResult.DEAD, absent & should & ~applied,
         ~confirmed_known & ~should, matches],
        ["nothing to write", "left out: no website sync now", "in flight", "still divergent", "still divergent",
         "in sync now", "in sync now"],
        default="still divergent",
    )
    report.in_flight = int((outcome == "in flight").sum())
    report.still_divergent = int((outcome == "still divergent").sum())
    shown = np.where(result != "", result, outcome)
    shown = np.where((outcome == "still divergent") & (result != RowResult.DEAD) & absent, "contact missing in Dynamics",
                     shown)
    report.changes = changes.assign(result=shown.astype(object), outcome=outcome.astype(object))


def _plain(row: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else str(v) if isinstance(v, uuid.UUID) else v)
            for k, v in row.items()}
