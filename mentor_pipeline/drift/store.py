"""Database access for the drift watch: one Python function per SQL object of
`supabase/schemas/70_drift_watch.sql`."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import psycopg
from psycopg.rows import dict_row


def delta_token(conn: psycopg.Connection, entity_set: str) -> str | None:
    row = conn.execute("select delta_token from dynamics_change_tracking where entity_set = %s",
                       (entity_set,)).fetchone()
    return row[0] if row else None


def save_token(conn: psycopg.Connection, entity_set: str, token: str | None, *, full_read: bool,
               at: datetime) -> None:
    """Keep the token of the look's last page (None: the next look reads everything)."""
    conn.execute(
        """
        insert into dynamics_change_tracking as t (entity_set, delta_token, token_saved_at, full_reads, last_look_at)
        values (%(set)s, %(token)s, %(at)s, %(full)s::int, %(at)s)
        on conflict (entity_set) do update
            set delta_token = excluded.delta_token, token_saved_at = excluded.token_saved_at,
                full_reads = t.full_reads + excluded.full_reads, last_look_at = excluded.last_look_at
        """,
        {"set": entity_set, "token": token, "at": at, "full": full_read},
    )


def mark_drift(conn: psycopg.Connection, look_id: uuid.UUID, changed: list[dict], deleted: list[str],
               max_corrections: int, window: timedelta, at: datetime) -> list[dict]:
    """`mark_dynamics_drift` for one page of a look (its own transaction): the drift it logged."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "select * from mark_dynamics_drift(%s, %s::jsonb, %s::uuid[], %s, %s, %s)",
            (look_id, json.dumps(changed), deleted, max_corrections, window, at),
        )
        return cur.fetchall()


def database_now(conn: psycopg.Connection) -> datetime:
    (now,) = conn.execute("select now()").fetchone()
    return now


def day_summary(conn: psycopg.Connection, at: datetime | None = None) -> dict[str, int]:
    """What the looks of the 24 hours before `at` (default now) found, per action: the drift the
    watch put right between two nights, shown on the nightly reconciliation."""
    row = conn.execute(
        """
        select count(*), count(*) filter (where action = 'queued'), count(*) filter (where action = 'fighting')
          from dynamics_drift
         where seen_at > coalesce(%(at)s::timestamptz, now()) - interval '24 hours'
           and seen_at <= coalesce(%(at)s::timestamptz, now())
        """,
        {"at": at},
    ).fetchone()
    return {"drift_watch_found_24h": row[0], "drift_watch_queued_24h": row[1], "drift_watch_fighting_24h": row[2]}
