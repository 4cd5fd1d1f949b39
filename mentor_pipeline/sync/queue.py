"""The sync_queue access layer: one Python function per SQL function of the sync migration.

Every function here is one short statement on the connection it is given. Callers pass an
autocommit connection (or commit right after), so no transaction and no row lock is ever open
while the processor talks to Dynamics; the lease (`locked_until`) is what keeps other
processors away from claimed rows, and it runs out on its own when a processor dies.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg.rows import class_row

OPERATIONS = ("add", "remove", "restore")
EVENTS = ("status_change", "manual_coordinator_action", "nightly_expiry", "reconciliation", "force_sync")


@dataclass(frozen=True)
class QueuePolicy:
    """How the processor claims, leases and retries. Tests and the benchmark shrink the times."""

    batch_size: int = 1000  # rows per claim: one `$batch` chunking of up to this many updates
    lease: timedelta = timedelta(minutes=2)  # extended while the batch is in flight
    max_attempts: int = 8  # failed attempts before a row is dead (429 waits never count)
    backoff_base: timedelta = timedelta(seconds=30)  # first retry delay, doubled per attempt
    backoff_max: timedelta = timedelta(hours=1)
    done_retention: timedelta = timedelta(days=7)  # done/superseded rows stay this long in sync_queue
    dead_retention: timedelta = timedelta(days=90)


@dataclass(frozen=True)
class QueueRow:
    id: int
    mentor_id: uuid.UUID
    operation: str
    triggered_by_event: str
    status: str
    attempts: int
    available_at: datetime
    locked_until: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    processed_at: datetime | None
    lease_token: uuid.UUID | None


@dataclass(frozen=True)
class Outcome:
    """What to record for one claimed row (see record_sync_outcomes in the migration)."""

    id: int
    outcome: str  # done | retry | dead | superseded | release
    error: str | None = None
    listed: bool | None = None  # for done: what the listing now is
    consume_attempt: bool = True  # False for throttling (429): waits are not failures


@dataclass(frozen=True)
class RecordedRow:
    id: int
    mentor_id: uuid.UUID
    status: str
    attempts: int
    available_at: datetime
    last_error: str | None
    processed_at: datetime | None


@dataclass(frozen=True)
class DueSummary:
    due_count: int
    max_due_id: int | None
    expired_leases: int

    @property
    def anything_due(self) -> bool:
        return self.due_count > 0 or self.expired_leases > 0


@dataclass(frozen=True)
class ListingState:
    mentor_id: uuid.UUID
    listed: bool
    last_synced_at: datetime
    last_queue_id: int | None


def claim_batch(conn: psycopg.Connection, limit: int, lease: timedelta, token: uuid.UUID) -> list[QueueRow]:
    """Lease up to `limit` due rows (and rows whose lease ran out), at most one per mentor."""
    with conn.cursor(row_factory=class_row(QueueRow)) as cur:
        cur.execute("select * from claim_sync_batch(%s, %s, %s)", (limit, lease, token))
        rows = cur.fetchall()
    _commit(conn)
    return rows


def extend_lease(conn: psycopg.Connection, token: uuid.UUID, lease: timedelta) -> int:
    """Push the lease of the rows still held under `token`; returns how many are still held."""
    (held,) = conn.execute("select extend_sync_lease(%s, %s)", (token, lease)).fetchone()
    _commit(conn)
    return held


def record_outcomes(
    conn: psycopg.Connection, token: uuid.UUID, outcomes: Sequence[Outcome], policy: QueuePolicy
) -> list[RecordedRow]:
    """Record outcomes of rows claimed under `token`. Rows no longer held (lease lost) are left
    alone and missing from the result."""
    if not outcomes:
        return []
    payload = json.dumps([
        {"id": o.id, "outcome": o.outcome, "error": o.error, "listed": o.listed, "consume_attempt": o.consume_attempt}
        for o in outcomes
    ])
    with conn.cursor(row_factory=class_row(RecordedRow)) as cur:
        cur.execute(
            "select * from record_sync_outcomes(%s, %s::jsonb, %s, %s, %s)",
            (token, payload, policy.max_attempts, policy.backoff_base, policy.backoff_max),
        )
        rows = cur.fetchall()
    _commit(conn)
    return rows


def due_summary(conn: psycopg.Connection) -> DueSummary:
    """Due pending rows and expired leases, from the partial indexes only (the sensor's check)."""
    row = conn.execute("select due_count, max_due_id, expired_leases from sync_queue_due()").fetchone()
    _commit(conn)
    return DueSummary(int(row[0]), row[1], int(row[2]))


def archive_finished(conn: psycopg.Connection, policy: QueuePolicy, limit: int = 5000) -> int:
    """Move finished rows past their retention to sync_queue_archive; returns how many moved."""
    (moved,) = conn.execute(
        "select archive_sync_queue(%s, %s, %s)", (policy.done_retention, policy.dead_retention, limit)
    ).fetchone()
    _commit(conn)
    return moved


def enqueue(
    conn: psycopg.Connection,
    mentor_ids_with_operations: Iterable[tuple[uuid.UUID | str, str]],
    event: str,
) -> list[int]:
    """Queue operations like the outbox trigger does: one pending row per mentor, a newer
    operation rewriting the pending one (the unique partial index decides, not a prior check).
    Returns the queue row ids. The caller's transaction decides when it becomes visible."""
    if event not in EVENTS:
        raise ValueError(f"unknown triggered_by_event {event!r}: use one of {', '.join(EVENTS)}")
    latest: dict[str, str] = {}
    for mentor_id, operation in mentor_ids_with_operations:
        if operation not in OPERATIONS:
            raise ValueError(f"unknown sync operation {operation!r}: use add, remove or restore")
        latest[str(mentor_id)] = operation  # the last wish per mentor wins, as in the trigger
    if not latest:
        return []
    rows = conn.execute(
        """
        insert into sync_queue (mentor_id, operation, triggered_by_event)
        select m, o, %s from unnest(%s::uuid[], %s::text[]) as t(m, o)
        on conflict (mentor_id) where status = 'pending' do update
            set operation = excluded.operation,
                triggered_by_event = excluded.triggered_by_event,
                attempts = 0,
                available_at = now(),
                last_error = null,
                updated_at = now()
        returning id
        """,
        (event, list(latest), list(latest.values())),
    ).fetchall()
    return [row[0] for row in rows]


def enqueue_desired(conn: psycopg.Connection, mentor_ids: Iterable[uuid.UUID | str], event: str) -> list[int]:
    """Queue, for each mentor of a syncing organisation, the write that makes the website match
    `mentor_website_desired_state` now (`add` when they should be listed, else `remove`).
    Mentors of organisations without website sync are left out. Used by force sync, by
    reconciliation and by the processor itself after a lost lease."""
    desired = desired_listing(conn, mentor_ids)
    return enqueue(conn, [(m, "add" if listed else "remove") for m, listed in desired.items()], event)


def desired_listing(conn: psycopg.Connection, mentor_ids: Iterable[uuid.UUID | str]) -> dict[uuid.UUID, bool]:
    """`should_be_listed` per mentor, read from the one rule (the view). Mentors missing from
    the result are not in an organisation with website sync (or no longer exist)."""
    ids = [str(m) for m in mentor_ids]
    if not ids:
        return {}
    rows = conn.execute(
        "select mentor_id, should_be_listed from mentor_website_desired_state where mentor_id = any(%s::uuid[])",
        (ids,),
    ).fetchall()
    return {mentor_id: bool(listed) for mentor_id, listed in rows}


def listing_state(
    conn: psycopg.Connection, mentor_ids: Iterable[uuid.UUID | str] | None = None
) -> dict[uuid.UUID, ListingState]:
    """What the website listing is per mentor, as last confirmed by a Dynamics write."""
    with conn.cursor(row_factory=class_row(ListingState)) as cur:
        if mentor_ids is None:
            cur.execute("select mentor_id, listed, last_synced_at, last_queue_id from website_listing_state")
        else:
            cur.execute(
                "select mentor_id, listed, last_synced_at, last_queue_id from website_listing_state"
                " where mentor_id = any(%s::uuid[])",
                ([str(m) for m in mentor_ids],),
            )
        return {row.mentor_id: row for row in cur.fetchall()}


def record_listing(
    conn: psycopg.Connection, states: Mapping[uuid.UUID | str, bool], *, queue_id: int | None = None
) -> None:
    """Set the known listing for mentors from another source (reconciliation read Dynamics)."""
    if not states:
        return
    conn.execute(
        """
        insert into website_listing_state (mentor_id, listed, last_synced_at, last_queue_id, updated_at)
        select m, l, now(), %s, now() from unnest(%s::uuid[], %s::boolean[]) as t(m, l)
        on conflict (mentor_id) do update
            set listed = excluded.listed, last_synced_at = excluded.last_synced_at,
                last_queue_id = coalesce(excluded.last_queue_id, website_listing_state.last_queue_id),
                updated_at = excluded.updated_at
        """,
        (queue_id, [str(m) for m in states], list(states.values())),
    )


def _commit(conn: psycopg.Connection) -> None:
    # On a non-autocommit connection, end the transaction now: a claim must be committed
    # (and its row locks released) before the caller goes anywhere near HTTP.
    if not conn.autocommit:
        conn.commit()
