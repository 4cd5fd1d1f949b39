"""The freshness promise: no due change waits longer than N minutes (SyncSettings.freshness_minutes,
from MENTOR_PIPELINE_FRESHNESS_MINUTES: mentor_pipeline/settings.py) before it is written to Dynamics.

A change waits from the moment it was queued (`sync_queue.created_at`) until its row is done,
whatever holds it up: a drain not started, a backoff after failed writes, a lease, a sign-in
incident. A breach is the incident `website_stale`; a passing evaluation resolves it. Dead rows
are not waiting (they need a person: `sync_dead_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import psycopg

from mentor_pipeline.operations.store import describe_age
from mentor_pipeline.vocabulary import IncidentKind


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
    row = conn.execute(
        """
        select t.now, min(q.created_at), count(q.id), count(q.id) filter (where q.created_at < t.now - %(limit)s)
          from (select coalesce(%(now)s::timestamptz, now()) as now) t
          left join sync_queue q on sync_change_waiting(q.status) and q.created_at <= t.now
         group by t.now
        """,
        {"now": now, "limit": limit},
    ).fetchone()
    if not conn.autocommit:
        conn.commit()
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
