"""One look of the drift watch, as plain Python (the Dagster asset, the tests and the benchmark
call `look`).

Read what changed in the contacts since the stored delta token (no token: everything), page by
page; each page goes to SQL (`mark_dynamics_drift`), which compares each key with the one rule
and marks the divergent mentors in sync_queue for the drain. The token of the last page is
stored only after every page was handled, so a look that fails half way is read again.

- Tracking off on the table: one incident saying what to switch on; the nightly reconciliation
  still runs. It resolves by itself on the first look that reads changes again.
- An expired token: a full read, once, in the same look; then deltas again.
- A contact corrected `max_corrections` times within `window` and changed back again is not
  written any more: one incident per contact, naming it and the field.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from mentor_pipeline.drift import store
from mentor_pipeline.drift.report import LookReport
from mentor_pipeline.dynamics.errors import ChangeTrackingOff, DeltaTokenExpired
from mentor_pipeline.operations.throttle_hold import SharedHold
from mentor_pipeline.vocabulary import DriftAction, DriftField, IncidentKind

logger = logging.getLogger("mentor_pipeline.drift")


@dataclass(frozen=True)
class DriftPolicy:
    # A flow fighting the pipeline costs at most this many writes of one contact per window.
    max_corrections: int = 3
    window: timedelta = timedelta(hours=24)
    page_size: int = 5000


def look(connect: Callable[[], psycopg.Connection], client, *, alerts=None, log: logging.Logger | None = None,
         policy: DriftPolicy = DriftPolicy(), now: datetime | None = None) -> LookReport:
    """One look at Dynamics' changes; see the module doc. `now` is the moment the rule is asked
    at (default: the database's clock)."""
    log = log or logger
    report = LookReport(look_id=uuid.uuid4())
    started, requests_before = time.monotonic(), client.stats.requests
    entity_set = client.settings.entity_set
    with connect() as conn:
        conn.autocommit = True
        at = now or store.database_now(conn)
        token = store.delta_token(conn, entity_set)
        try:
            with SharedHold(connect, client, log) as shared_hold:
                shared_hold.adopt(conn)  # a 429 another process received holds this read too
                try:
                    _read(conn, client, token, report, policy, at)
                except DeltaTokenExpired as exc:
                    log.warning("drift watch: %s", exc)
                    report.token_expired = True
                    _read(conn, client, None, report, policy, at)  # once: a second refusal fails the look
        except ChangeTrackingOff as exc:
            report.tracking_off = str(exc)
            log.error("drift watch: %s", exc)
            if alerts is not None:
                alerts.alert(IncidentKind.CHANGE_TRACKING_OFF,
                             f"{exc} Until then Dynamics-side changes are put right by the nightly reconciliation "
                             "only (up to 24 h).", {"entity_set": entity_set, "code": exc.code})
            return _done(report, client, started, requests_before)
    if alerts is not None:
        alerts.resolve(IncidentKind.CHANGE_TRACKING_OFF, "Dynamics change tracking reads work again")
        _alert_fights(alerts, client.settings, report, policy)
    _log_summary(log, report)
    return _done(report, client, started, requests_before)


def _read(conn, client, token: str | None, report: LookReport, policy: DriftPolicy, at: datetime) -> None:
    report.full_read = token is None
    last_token = None
    for page in client.iter_changes(token, page_size=policy.page_size):
        report.pages += 1
        report.changes_seen += len(page.changed) + len(page.deleted)
        changed = [row for row in page.changed if row["mentor_id"] is not None]
        report.drift += store.mark_drift(conn, report.look_id, changed, page.deleted, policy.max_corrections,
                                         policy.window, at)
        last_token = page.delta_token or last_token
    store.save_token(conn, client.settings.entity_set, last_token, full_read=report.full_read, at=at)


def _alert_fights(alerts, settings, report: LookReport, policy: DriftPolicy) -> None:
    columns = {DriftField.LISTED: settings.listed_attribute, DriftField.CHAPTER: settings.chapter_attribute}
    for row in report.drift:
        if row["action"] != DriftAction.FIGHTING:
            continue
        column = columns[DriftField(row["field"])]
        shown = row["dynamics_listed"] if row["field"] == DriftField.LISTED else row["dynamics_chapter"]
        alerts.alert(
            IncidentKind.DRIFT_FIGHT,
            f"contact {row['contactid']} (mentor {row['mentor_id']}): {column} keeps being changed back in Dynamics "
            f"(now {shown!r}) after {policy.max_corrections} corrections within {policy.window}; the pipeline stopped "
            "writing it. Find the flow, import or person changing it (the contact's audit history), stop it, then "
            "force-sync the mentor.",
            {"contactid": str(row["contactid"]), "mentor_id": str(row["mentor_id"]), "column": column,
             "dynamics_value": shown, "rule_listed": row["should_be_listed"], "rule_chapter": row["rule_chapter"]},
            scope=str(row["mentor_id"]),
        )


def _log_summary(log: logging.Logger, report: LookReport) -> None:
    counts = report.counts()
    log.info("drift watch: %s read, %d change(s) seen, %d divergent (%d queued, %d left to the queue, %d fighting)",
             "full" if report.full_read else "delta", report.changes_seen, counts["drift_found"],
             counts["drift_queued"], counts["drift_left_to_queue"], counts["drift_fighting"])


def _done(report: LookReport, client, started: float, requests_before: int) -> LookReport:
    report.seconds = time.monotonic() - started
    report.requests = client.stats.requests - requests_before
    return report
