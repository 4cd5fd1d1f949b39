"""Incidents: one per (kind, scope), kept in PostgreSQL (supabase/schemas/50_incidents.sql).

An occurrence opens an incident or updates the open one; the SQL decides whether anybody needs
to hear about it (`Notice.notify`: open, reminder, resolved or None). Posting is the alert
sink's job (mentor_pipeline/operations/alerts.py); this module only records and decides.

`scope` says what the incident is about within its kind (a job name, an organisation); '' when
the kind says it all. Every function takes an autocommit connection (or commits right after):
a row lock must never outlive the call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg.rows import dict_row

from mentor_pipeline import settings as environment
from mentor_pipeline.db.connection import commit_unless_autocommit

# Reminders while an incident stays open: after 1 h, 4 h later, then every 24 h.
DEFAULT_REMINDER_INTERVALS = tuple(timedelta(minutes=m) for m in environment.ALERT_REMINDER_MINUTES.default)

OPEN, REMINDER, RESOLVED = "open", "reminder", "resolved"

# Metadata key of a run's dg.Failure naming the incident the step already alerted as: the failed
# run is counted there (operations/sensors.py) instead of opening `run_failed` as well.
RUN_FAILURE_INCIDENT_KEY = "incident"


@dataclass(frozen=True)
class Incident:
    kind: str
    scope: str
    state: str  # open | reminded | resolved
    first_seen: datetime
    last_seen: datetime
    occurrences: int
    summary: str
    details: dict
    reminders_sent: int
    next_reminder_at: datetime | None
    resolved_at: datetime | None
    resolution: str | None

    @property
    def key(self) -> str:
        """How people name it: `run_failed:website_sync_job`, or just the kind."""
        return f"{self.kind}:{self.scope}" if self.scope else self.kind


@dataclass(frozen=True)
class Notice:
    """The incident after an occurrence or a resolution, and what to tell people (None: nothing)."""

    incident: Incident
    notify: str | None


_FIELDS = [name for name in Incident.__dataclass_fields__]


def _incident(row: dict) -> Incident:
    return Incident(**{name: row[name] for name in _FIELDS})


def raise_incident(
    conn: psycopg.Connection,
    kind: str,
    scope: str,
    summary: str,
    details: dict | None = None,
    *,
    reminder_intervals: tuple[timedelta, ...] = DEFAULT_REMINDER_INTERVALS,
    now: datetime | None = None,
) -> Notice:
    """Record one occurrence: opens the incident (notify 'open'), or updates the open one
    (notify 'reminder' when a reminder is due, else None)."""
    if not reminder_intervals:
        raise ValueError("reminder_intervals needs at least one interval, e.g. (timedelta(hours=1),)")
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "select * from raise_incident(%s, %s, %s, %s::jsonb, %s::interval[], coalesce(%s, now()))",
            (kind, scope, summary, json.dumps(details or {}, default=str), list(reminder_intervals), now),
        )
        row = cur.fetchone()
    commit_unless_autocommit(conn)
    return Notice(_incident(row), row["notify"])


def resolve_incident(
    conn: psycopg.Connection, kind: str, scope: str, summary: str, *, now: datetime | None = None
) -> Notice | None:
    """The condition cleared: resolves the incident if it was open (notify 'resolved');
    None when there was nothing open (nothing to tell)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("select * from resolve_incident(%s, %s, %s, coalesce(%s, now()))", (kind, scope, summary, now))
        row = cur.fetchone()
    commit_unless_autocommit(conn)
    return Notice(_incident(row), RESOLVED) if row else None


def delivery_failed(conn: psycopg.Connection, kind: str, scope: str, *, now: datetime | None = None) -> None:
    """The post did not get through: the next occurrence posts again."""
    conn.execute("select incident_delivery_failed(%s, %s, coalesce(%s, now()))", (kind, scope, now))
    commit_unless_autocommit(conn)


def open_incidents(conn: psycopg.Connection) -> list[Incident]:
    """Every incident not resolved, oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("select * from incidents where state <> 'resolved' order by first_seen, kind, scope")
        rows = cur.fetchall()
    commit_unless_autocommit(conn)
    return [_incident(row) for row in rows]


def get_incident(conn: psycopg.Connection, kind: str, scope: str = "") -> Incident | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("select * from incidents where kind = %s and scope = %s", (kind, scope))
        row = cur.fetchone()
    commit_unless_autocommit(conn)
    return _incident(row) if row else None


def describe_age(delta: timedelta) -> str:
    """How long, for people: `0 min`, `2 h 5 min`, `3 days 4 h`."""
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours < 48 else f"{hours // 24} days {hours % 24} h"
