"""Small builders for rows the tests need. They insert through plain SQL, like the app does."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import psycopg
from psycopg.rows import dict_row


def organization(conn: psycopg.Connection, code: str = "HLF", *, website_sync_enabled: bool | None = None) -> uuid.UUID:
    """The organisation with this code, created when missing (HLF syncs, others do not by default)."""
    sync = (code == "HLF") if website_sync_enabled is None else website_sync_enabled
    row = conn.execute(
        "insert into organizations (code, name, website_sync_enabled) values (%s, %s, %s)"
        " on conflict (code) do update set code = excluded.code returning id",
        (code, f"{code} test organisation", sync),
    ).fetchone()
    return row[0]


def chapter(conn: psycopg.Connection, org_code: str = "HLF", name: str | None = None) -> uuid.UUID:
    org_id = organization(conn, org_code)
    name = name or f"{org_code} Oslo"
    row = conn.execute(
        "insert into chapters (organization_id, name) values (%s, %s)"
        " on conflict (organization_id, name) do update set name = excluded.name returning id",
        (org_id, name),
    ).fetchone()
    return row[0]


def mentor(
    conn: psycopg.Connection,
    org_code: str = "HLF",
    *,
    status: str = "active",
    cert_expires_in: timedelta | None = timedelta(days=365),
    full_name: str = "Test Mentor",
    now: datetime | None = None,
    settled: bool = True,
) -> uuid.UUID:
    """A mentor with one certification expiring `cert_expires_in` from now (None: no certification).

    `settled`: the mentor existed before the test, so the outbox change their creation marked
    (certification_change) is taken away again; tests of the status trigger start from a queue
    that only holds what the test itself did."""
    chapter_id = chapter(conn, org_code)
    mentor_id = conn.execute(
        "insert into mentors (organization_id, chapter_id, full_name, status)"
        " select organization_id, id, %s, %s from chapters where id = %s returning id",
        (full_name, status, chapter_id),
    ).fetchone()[0]
    if cert_expires_in is not None:
        certify(conn, mentor_id, expires_in=cert_expires_in, now=now, settled=settled)
    return mentor_id


def certify(
    conn: psycopg.Connection,
    mentor_id: uuid.UUID,
    *,
    expires_in: timedelta,
    issued_ago: timedelta = timedelta(days=700),
    now: datetime | None = None,
    settled: bool = True,
) -> uuid.UUID:
    """A certification; `settled` as for `mentor`: the change it marked in the outbox is taken away."""
    now = now or datetime.now(timezone.utc)
    expires_at = now + expires_in
    issued_at = min(now - issued_ago, expires_at - timedelta(seconds=1))
    return insert_certification(conn, mentor_id, issued_at, expires_at, settled=settled)


def insert_certification(conn: psycopg.Connection, mentor_id: uuid.UUID, issued_at: datetime, expires_at: datetime,
                         *, settled: bool = True) -> uuid.UUID:
    """A certification at these moments; `settled`: it existed before the test, so the website
    write it marked (certification_change) is taken away again."""
    certification_id = conn.execute(
        "insert into certifications (mentor_id, issued_at, expires_at) values (%s, %s, %s) returning id",
        (mentor_id, issued_at, expires_at),
    ).fetchone()[0]
    if settled:
        conn.execute("delete from sync_queue where mentor_id = %s and status = 'pending'"
                     " and triggered_by_event = 'certification_change'", (mentor_id,))
    return certification_id


def set_status(conn: psycopg.Connection, mentor_id: uuid.UUID, status: str) -> None:
    conn.execute("update mentors set status = %s where id = %s", (status, mentor_id))


def move_status_changes(conn: psycopg.Connection) -> int:
    """What the drain path's tick does first: move the status changes the app's transactions
    recorded in mentor_status_inbox into the audit trail and sync_queue. Returns how many."""
    return conn.execute("select move_status_changes()").fetchone()[0]  # in the caller's transaction, if any


def queue_rows(conn: psycopg.Connection, mentor_id: uuid.UUID | None = None) -> list[dict]:
    """sync_queue rows (all, or one mentor's) as dicts, oldest first, as the pipeline sees them
    after its tick (the status changes committed so far moved in first)."""
    move_status_changes(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        if mentor_id is None:
            cur.execute("select * from sync_queue order by id")
        else:
            cur.execute("select * from sync_queue where mentor_id = %s order by id", (mentor_id,))
        return cur.fetchall()


def next_writes(conn: psycopg.Connection, mentor_id: uuid.UUID | None = None, at: datetime | None = None) -> list[dict]:
    """The rows a claim at `at` (default now) would take (all, or one mentor's), oldest first: one
    per mentor, its newest waiting change. The status changes committed so far are moved in
    first, as the tick does; the claim is rolled back."""
    move_status_changes(conn)
    with conn.transaction(force_rollback=True), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("select * from claim_sync_batch(100000, interval '1 minute', gen_random_uuid(),"
                    " coalesce(%(at)s, now())) where %(mentor)s::uuid is null or mentor_id = %(mentor)s order by id",
                    {"mentor": mentor_id, "at": at})
        return cur.fetchall()
