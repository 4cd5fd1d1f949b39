"""Reconciliation and force sync, as plain Python: the Dagster asset, the break-glass CLI and the
benchmark all call `reconcile` / `force_sync`.

Reconciliation: read every listing from Dynamics (paged), then the app side
(`reconciliation_app_state`, the one rule per mentor of a syncing organisation), diff them on the
mentor key (listed flag and chapter), find listed contacts whose mentor is gone from the app or
has no website sync, mark every divergent key in the outbox (`enqueue`, `triggered_by_event =
'reconciliation'`; keys with a pending or in-flight row are left to it), drain the queue with
`drain_queue`, and log the run.
Force sync: mark every HLF mentor (or the selected ones) as `force_sync`, then drain: each gets
the rule's answer written. A dry run of either reads and diffs, and writes nothing anywhere.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta

import numpy as np
import pandas as pd
import psycopg

from mentor_pipeline.reconcile import diff as d
from mentor_pipeline.reconcile import store
from mentor_pipeline.reconcile.report import ReconcileReport
from mentor_pipeline.sync.outage import DEFAULT_BOUND
from mentor_pipeline.operations.throttle_hold import SharedHold
from mentor_pipeline.sync.processor import drain_queue
from mentor_pipeline.progress import CountingClient, Progress
from mentor_pipeline.sync.queue import QueuePolicy, enqueue
from mentor_pipeline.vocabulary import Classification, IncidentKind, TriggerEvent

logger = logging.getLogger("mentor_pipeline.reconcile")


def reconcile(
    connect: Callable[[], psycopg.Connection],
    client,
    *,
    alerts=None,
    log: logging.Logger | None = None,
    policy: QueuePolicy = QueuePolicy(),
    mentor_ids: Sequence[str] | None = None,
    dry_run: bool = False,
    dagster_run_id: str | None = None,
    time_budget_seconds: float | None = None,
    stall_bound: timedelta = DEFAULT_BOUND,
    progress: Progress | None = None,
) -> ReconcileReport:
    """Make Dynamics match the app for every HLF mentor (or `mentor_ids`); see the module doc."""
    log = log or logger
    with _session(connect, "reconciliation", dry_run) as (conn, report, started):
        ids = store.select_mentors(conn, mentor_ids) if mentor_ids else None
        with SharedHold(connect, client, log) as shared_hold:
            shared_hold.adopt(conn)  # the read spends the same budget as the writes
            diff, actual, read_started = _read_and_diff(conn, client, ids, report, progress)
        changes = d.divergent_rows(diff)
        report.changes = _with_dynamics_state(changes)
        log.info("reconciliation: %d mentors checked, %d divergent (%s)", report.counts["checked"],
                 report.divergent, ", ".join(f"{k} {report.counts[k]}" for k in d.DIVERGENT))
        if dry_run:
            return report

        report.run_id = store.start_run(conn, "reconciliation", dagster_run_id)
        # What Dynamics showed is the known listing now (unless a sync write confirmed something
        # newer meanwhile): keeps website_listing_state honest after hand edits.
        stale = diff["contact_exists"] & (
            diff["confirmed_listed"].isna() | (diff["confirmed_listed"].astype("boolean") != diff["dynamics_listed"]))
        store.record_read_listing(
            conn, diff.loc[stale, ["mentor_id", "dynamics_listed"]].rename(columns={"dynamics_listed": "listed"}),
            read_started)
        del diff, actual

        to_queue = report.changes.loc[report.changes["action"].isin([d.ADD, d.REMOVE]), "mentor_id"].tolist()
        report.changes = _queue_and_log(conn, report.run_id, report.changes, to_queue, TriggerEvent.RECONCILIATION)
        report.queued = len(to_queue)
        _drain_and_settle(connect, conn, client, report, alerts, log, policy, time_budget_seconds, stall_bound,
                          progress)

        report.duplicates = store.duplicates(conn)
        if report.duplicates and alerts is not None:
            alerts.alert(
                IncidentKind.RECONCILIATION_DUPLICATES,
                f"{len(report.duplicates)} duplicate record(s) for the same certification period need manual review "
                f"(first: {report.duplicates[0]['kind']} for mentor {report.duplicates[0]['mentor_id']})",
                {"duplicates": [_plain(row) for row in report.duplicates[:20]],
                 "query": "select * from reconciliation_duplicates"},
            )
        return _finish(conn, report, started)


def force_sync(
    connect: Callable[[], psycopg.Connection],
    client,
    *,
    mentor_ids: Sequence[str] | None = None,
    mentor_names: Sequence[str] | None = None,
    chapter: str | None = None,
    dry_run: bool = False,
    alerts=None,
    log: logging.Logger | None = None,
    policy: QueuePolicy = QueuePolicy(),
    dagster_run_id: str | None = None,
    time_budget_seconds: float | None = None,
    stall_bound: timedelta = DEFAULT_BOUND,
    progress: Progress | None = None,
) -> ReconcileReport:
    """Write the rule's answer for every HLF mentor (or the selection: ids, exact names, a
    chapter) to Dynamics now.

    A selection that names nothing valid raises `InvalidMentorIds` before anything is queued.
    A dry run reads Dynamics and lists every write it would make, with what Dynamics shows now.
    """
    log = log or logger
    with _session(connect, "force_sync", dry_run) as (conn, report, started):
        selected = bool(mentor_ids or mentor_names or chapter)
        ids = store.select_mentors(conn, mentor_ids or (), mentor_names or (), chapter) if selected else None
        if dry_run:
            with SharedHold(connect, client, log) as shared_hold:
                shared_hold.adopt(conn)
                diff, _, _ = _read_and_diff(conn, client, ids, report, progress)
            # A force sync writes every selected mentor, in sync or not: list them all.
            report.changes = _with_dynamics_state(diff)
            report.counts["would_write"] = int(len(diff))
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
        changes = app.assign(dynamics_state=None, classification=Classification.FORCED, action=d.NONE,
                             contact_exists=True, dynamics_listed=False)
        to_queue = changes["mentor_id"].tolist()
        report.changes = _queue_and_log(conn, report.run_id, changes, to_queue, TriggerEvent.FORCE_SYNC)
        report.queued = len(to_queue)
        log.info("force sync: queued %d mentor(s)", report.queued)
        _drain_and_settle(connect, conn, client, report, alerts, log, policy, time_budget_seconds, stall_bound,
                          progress)
        return _finish(conn, report, started)


# -- steps -----------------------------------------------------------------------------------

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
    actual = d.actual_frame(client.iter_listings(), on_page=on_page)
    report.read_seconds = time.monotonic() - read_clock
    # The app side after Dynamics: a change made while we read is then already in the queue
    # (left to it) instead of looking like a divergence.
    app = store.app_state(conn, ids)
    orphans = None
    if ids is None:
        unknown = d.unknown_contacts(app, actual)
        report.unknown_contacts = int(len(unknown))
        report.unknown_contacts_listed = int(unknown["listed"].sum())
        listed_unknown = unknown[unknown["listed"]]
        if not listed_unknown.empty:
            # Listed with no mentor of a syncing organisation behind them: gone, or no sync.
            orphans = d.orphan_rows(listed_unknown, store.keys_state(conn, listed_unknown["mentor_id"].tolist()))
    else:
        actual = actual[actual["mentor_id"].isin(ids)]
    diff = d.diff_listings(app, actual)
    if orphans is not None:
        diff = pd.concat([diff, orphans], ignore_index=True)
        diff["classification"] = pd.Categorical(diff["classification"], categories=d.CLASSIFICATIONS)
        diff["action"] = pd.Categorical(diff["action"], categories=[d.ADD, d.REMOVE, d.LEFT_TO_QUEUE, d.NONE])
    report.counts = d.counts(diff)
    return diff, actual, read_started


def _with_dynamics_state(changes: pd.DataFrame) -> pd.DataFrame:
    changes = changes.copy()
    changes["dynamics_state"] = list(d.iter_dynamics_states(changes))
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
                actions.append(d.NONE if action in (d.ADD, d.REMOVE) else action)
                queue_ids.append(None)
        changes = changes.assign(action=actions, queue_id=queue_ids)
        store.write_log(conn, run_id, (
            store.LogEntry(row.mentor_id, None if pd.isna(row.status) else str(row.status), bool(row.should_be_listed),
                           row.dynamics_state,
                           row.classification, row.action, None if pd.isna(row.queue_id) else int(row.queue_id))
            for row in changes.itertuples(index=False)
        ))
    return changes


def _drain_and_settle(connect, conn, client, report: ReconcileReport, alerts, log, policy, time_budget_seconds,
                      stall_bound: timedelta, progress: Progress | None) -> None:
    """Drain the queue, then decide per acted-on mentor: right now, still in flight (a pending or
    in-flight row, e.g. a retry), or still divergent (dead, contact missing, not applied)."""
    writer = CountingClient(client, progress, report.queued) if progress else client
    report.drain = drain_queue(connect, writer, alerts=alerts, log=log, policy=policy,
                               time_budget_seconds=time_budget_seconds, stall_bound=stall_bound)
    changes = report.changes
    if changes is None or changes.empty:
        return
    acted = (changes["action"] != d.NONE).to_numpy()
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
    applied = result == "applied"
    outcome = np.select(
        [~acted, ~known, in_queue, result == "dead", absent & should & ~applied,
         ~confirmed_known & ~should, matches],
        ["nothing to write", "left out: no website sync now", "in flight", "still divergent", "still divergent",
         "in sync now", "in sync now"],
        default="still divergent",
    )
    report.in_flight = int((outcome == "in flight").sum())
    report.still_divergent = int((outcome == "still divergent").sum())
    shown = np.where(result != "", result, outcome)
    shown = np.where((outcome == "still divergent") & (result != "dead") & absent, "contact missing in Dynamics", shown)
    report.changes = changes.assign(result=shown.astype(object), outcome=outcome.astype(object))


def _plain(row: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else str(v) if isinstance(v, uuid.UUID) else v)
            for k, v in row.items()}
