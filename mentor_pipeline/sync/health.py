"""The website sync's health: can it write, and does any change wait too long? Each answer is an
incident that opens when it turns bad and resolves when it is good again.

Outages and throttling: the website sync cannot write for longer than a bound.

- `dynamics_unreachable`: writes fail because of Dataverse as a whole (5xx answers or timeouts
  that outlast the client's resends, an answer that is not Dataverse's), not because of a row.
  How long is worked out from sync_queue, not from one run, so several short runs and the
  backoffs between them add up: since the oldest change still waiting on such a failure, or
  since the last write that went through if that is later. The drain evaluates it after a
  failed batch and `website_sync_health_sensor` between runs. A batch with an applied row
  resolves it (so does a passing credential check, mentor_pipeline/operations/health.py).
- `dynamics_throttled`: the drain's 429 holds (`Retry-After`; the whole client waits, so nothing
  is written meanwhile) added up since its last batch without one. It opens as soon as a
  `Retry-After` takes the sum past the bound (a `Retry-After: 3600` opens it at once, not an hour
  later); a batch without a 429 wait resolves it.

`sync_dead_rows` (raised by the drain when rows give up) is resolved here too, at the end of a
drain, once `unresolved_dead_sync_rows` finds none left.

The freshness promise: no due change waits longer than N minutes (SyncSettings.freshness_minutes,
from MENTOR_PIPELINE_FRESHNESS_MINUTES: mentor_pipeline/settings.py) before it is written to Dynamics.
A change waits from the moment it was queued (`sync_queue.created_at`) until its row is done,
whatever holds it up: a drain not started, a backoff after failed writes, a lease, a sign-in
incident. A breach is the incident `website_stale`; a passing evaluation resolves it. Dead rows
are not waiting (they need a person: `sync_dead_rows`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import psycopg

from mentor_pipeline import settings as environment
from mentor_pipeline.db.connection import commit_unless_autocommit
from mentor_pipeline.dynamics.throttle import LOG_WAITS_OVER_SECONDS
from mentor_pipeline.operations.store import describe_age
from mentor_pipeline.sync.report import RowOutcome
from mentor_pipeline.sync.store import move_status_changes
from mentor_pipeline.vocabulary import IncidentKind, RowResult

DEFAULT_BOUND = timedelta(minutes=environment.STALL_ALERT_MINUTES.default)

# last_error of a write that failed because of Dataverse as a whole: the client's code for 5xx
# and timeouts beyond its resends (dynamics.results.UNAVAILABLE), and the drain's
# "<DynamicsError class>: ..." when a whole batch failed (DynamicsUnavailable, DynamicsProtocolError).
OUTAGE_ERROR_PATTERNS = ("unavailable:%", "Dynamics%")


def is_outage_error(error: str | None) -> bool:
    return bool(error) and any(error.startswith(p.rstrip("%")) for p in OUTAGE_ERROR_PATTERNS)


@dataclass(frozen=True)
class WriteOutage:
    """Changes wait on failed writes: since when nothing could be written, as far as sync_queue knows."""

    since: datetime
    now: datetime
    waiting: int  # pending or in-flight changes whose last attempt failed that way
    last_error: str

    @property
    def duration(self) -> timedelta:
        return max(timedelta(0), self.now - self.since)

    def summary(self) -> str:
        error = self.last_error.splitlines()[0][:200]
        return (f"website sync cannot write to Dynamics: nothing written for {describe_age(self.duration)} "
                f"(since {self.since.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC), {self.waiting} change(s) "
                f"waiting; last error: {error}. Check Microsoft's service health and the host's network; "
                "the sync retries on its own.")


def write_outage(conn: psycopg.Connection, now: datetime | None = None) -> WriteOutage | None:
    """The outage sync_queue shows at `now` (None: the database's clock), or None when no change
    waits on a failed write."""
    row = conn.execute(
        """
        select greatest(min(q.created_at),
                        (select max(d.processed_at) from sync_queue d where d.status = 'done')),
               coalesce(%(now)s::timestamptz, now()),
               count(*),
               (array_agg(q.last_error order by q.updated_at desc))[1]
          from sync_queue q
         where sync_change_waiting(q.status)
           and q.last_error like any (%(patterns)s)
        having count(*) > 0
        """,
        {"now": now, "patterns": list(OUTAGE_ERROR_PATTERNS)},
    ).fetchone()
    commit_unless_autocommit(conn)
    return WriteOutage(row[0], row[1], int(row[2]), row[3]) if row else None


def alert_if_unreachable(conn: psycopg.Connection, alerts, bound: timedelta,
                         now: datetime | None = None) -> WriteOutage | None:
    """Raise `dynamics_unreachable` when the outage sync_queue shows has lasted longer than `bound`."""
    outage = write_outage(conn, now)
    if outage is not None and outage.duration > bound and alerts is not None:
        alerts.alert(IncidentKind.DYNAMICS_UNREACHABLE, outage.summary(),
                     {"since": outage.since.isoformat(), "waiting_changes": outage.waiting,
                      "bound_minutes": bound.total_seconds() / 60})
    return outage


def open_kinds(conn: psycopg.Connection, kinds: Sequence[str]) -> set[str]:
    """Which of these unscoped incidents are open (a cheap look before resolving)."""
    rows = conn.execute("select kind from incidents where state <> 'resolved' and scope = '' and kind = any(%s)",
                        (list(kinds),)).fetchall()
    commit_unless_autocommit(conn)
    return {kind for (kind,) in rows}


def unresolved_dead_rows(conn: psycopg.Connection, now: datetime | None = None) -> int:
    """Dead rows without a later write for the same mentor, however recent (the SQL decides)."""
    (count,) = conn.execute(
        "select count(*) from unresolved_dead_sync_rows(interval '0 seconds', coalesce(%s::timestamptz, now()))",
        (now,)).fetchone()
    commit_unless_autocommit(conn)
    return int(count)


@dataclass(frozen=True)
class Freshness:
    limit: timedelta
    now: datetime
    oldest_queued_at: datetime | None  # of the changes still waiting
    waiting: int
    late: int  # waiting longer than the limit

    @property
    def oldest_age(self) -> timedelta:
        return max(timedelta(0), self.now - self.oldest_queued_at) if self.oldest_queued_at else timedelta(0)

    @property
    def passed(self) -> bool:
        return self.late == 0

    def summary(self) -> str:
        limit = describe_age(self.limit)
        if self.passed:
            return (f"no due change waits longer than {limit} ({self.waiting} waiting, the oldest for "
                    f"{describe_age(self.oldest_age)})" if self.waiting else f"no change waits to be written (limit {limit})")
        return (f"{self.late} change(s) have waited longer than {limit} to reach the website, the oldest for "
                f"{describe_age(self.oldest_age)} (queued {self.oldest_queued_at.astimezone(timezone.utc):%Y-%m-%d %H:%M} "
                "UTC): see the open dynamics_* incidents and `select * from sync_queue where status = 'pending' "
                "order by created_at`")


def freshness(conn: psycopg.Connection, limit: timedelta, now: datetime | None = None) -> Freshness:
    """How long the changes still waiting have waited, at `now` (None: the database's clock)."""
    # The status changes committed so far wait to reach the website too: into the queue first, as
    # the tick does.
    move_status_changes(conn)
    row = conn.execute(
        """
        select t.now, min(q.created_at), count(q.id), count(q.id) filter (where q.created_at < t.now - %(limit)s)
          from (select coalesce(%(now)s::timestamptz, now()) as now) t
          left join sync_queue q on sync_change_waiting(q.status) and q.created_at <= t.now
         group by t.now
        """,
        {"now": now, "limit": limit},
    ).fetchone()
    commit_unless_autocommit(conn)
    return Freshness(limit, row[0], row[1], int(row[2]), int(row[3]))


def check_freshness(conn: psycopg.Connection, alerts, limit: timedelta, now: datetime | None = None) -> Freshness:
    """Evaluate the promise and raise or resolve `website_stale` accordingly."""
    result = freshness(conn, limit, now)
    if not result.passed:
        alerts.alert(IncidentKind.WEBSITE_STALE, result.summary(),
                     {"late_changes": result.late, "waiting_changes": result.waiting,
                      "oldest_due_change_minutes": round(result.oldest_age.total_seconds() / 60, 1),
                      "limit_minutes": limit.total_seconds() / 60})
    else:
        alerts.resolve(IncidentKind.WEBSITE_STALE, result.summary())
    return result


class OutageWatch:
    """What one drain knows about outages and throttling, and the incidents it raises and resolves.
    With `alerts` None it only logs."""

    def __init__(self, alerts, bound: timedelta, log: logging.Logger, clock: Callable[[], datetime | None]):
        self._alerts = alerts
        self._bound = bound
        self._log = log
        self._clock = clock
        self._lock = threading.Lock()
        self._throttled_seconds = 0.0  # 429 holds added up since the last batch without one
        self._holds_in_batch = 0
        self._throttle_alerted = False

    def listen_to(self, client) -> Callable[[], None]:
        """Hear of the client's 429 holds (clients without `on_throttle`: nothing to hear)."""
        listen = getattr(client, "on_throttle", None)
        return listen(self._on_hold) if callable(listen) else (lambda: None)

    def _on_hold(self, retry_after: float, extends_by: float, what: str) -> None:
        # Runs on the client's worker thread that got the 429: must never raise.
        try:
            if retry_after > LOG_WAITS_OVER_SECONDS:
                until = time.strftime("%H:%M:%S", time.localtime(time.time() + retry_after))
                self._log.warning("website sync waits for Dataverse: HTTP 429 on %s, Retry-After: %g s; no request "
                                  "goes out until %s (the batch keeps its lease meanwhile)", what, retry_after, until)
            with self._lock:
                self._holds_in_batch += 1
                self._throttled_seconds += extends_by
                held = self._throttled_seconds
                over = held > self._bound.total_seconds() and not self._throttle_alerted
                self._throttle_alerted |= over
            if over and self._alerts is not None:
                self._alerts.alert(
                    IncidentKind.DYNAMICS_THROTTLED,
                    f"Dataverse throttles the website sync: {held:.0f} s of Retry-After waits in all (latest: "
                    f"{retry_after:g} s on {what}), more than the {self._bound.total_seconds() / 60:g} min bound. "
                    "Changes wait meanwhile; check what else uses the application user's service-protection "
                    "budget (6000 requests per 5 minutes).",
                    {"throttled_seconds": round(held, 1), "latest_retry_after_seconds": retry_after})
        except Exception:  # noqa: BLE001 - an alert must not break the write in flight
            self._log.exception("could not record a Dataverse throttling wait")

    def after_batch(self, conn: psycopg.Connection, rows: Sequence[RowOutcome]) -> None:
        """One batch is recorded: resolve what it proves over, raise what it shows."""
        with self._lock:
            clean = self._holds_in_batch == 0 and not any(r.rate_limit_waits for r in rows)
            self._holds_in_batch = 0
            if clean:
                self._throttled_seconds, self._throttle_alerted = 0.0, False
        if self._alerts is None:
            return
        applied = any(r.result == RowResult.APPLIED for r in rows)
        failed = any(r.result == RowResult.RETRY and is_outage_error(r.reason) for r in rows)
        cleared = {IncidentKind.DYNAMICS_UNREACHABLE: "the website sync writes to Dynamics again" if applied else None,
                   IncidentKind.DYNAMICS_THROTTLED: "a website sync batch went through without a 429 wait" if clean else None}
        candidates = [kind for kind, summary in cleared.items() if summary]
        for kind in open_kinds(conn, candidates) if candidates else ():
            self._alerts.resolve(kind, cleared[kind])
        if failed and not applied:
            alert_if_unreachable(conn, self._alerts, self._bound, self._clock())

    def finished(self, conn: psycopg.Connection) -> None:
        """The drain is over: dead rows dealt with (written since, or superseded by a newer change)."""
        dead_rows = IncidentKind.SYNC_DEAD_ROWS
        if self._alerts is not None and open_kinds(conn, [dead_rows]) and not unresolved_dead_rows(conn, self._clock()):
            self._alerts.resolve(dead_rows, "every dead website sync change has been written since or replaced")
