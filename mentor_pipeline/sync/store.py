"""The sync_queue access layer: one Python function per SQL function of the queue protocol
(supabase/schemas/20_queue.sql; the enqueue: 11_outbox.sql; the listing rule: 10_rule.sql).

Every function here is one short statement on the connection it is given. Callers pass an
autocommit connection (or commit right after), so no transaction and no row lock is ever open
while the drain talks to Dynamics (mentor_pipeline/sync/run.py); the lease (`locked_until`) is
what keeps other drains away from claimed rows, and it runs out on its own when a drain dies.

Functions that decide by time take `now` (default: the database's clock), so tests and
callers can say which moment they mean instead of waiting for it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg.rows import class_row

from mentor_pipeline.db.connection import commit_unless_autocommit
from mentor_pipeline.vocabulary import SyncOutcome, TriggerEvent

# Every `now` parameter: the moment the SQL function decides at; None is the database's now().
_AT = "coalesce(%s::timestamptz, now())"


@dataclass(frozen=True)
class QueuePolicy:
    """How a drain claims, leases and retries. Tests and the benchmark shrink the times."""

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
    """What to record for one claimed row (see record_sync_outcomes in supabase/schemas/20_queue.sql)."""

    id: int
    outcome: SyncOutcome
    error: str | None = None
    listed: bool | None = None  # for done: what the listing now is
    chapter: str | None = None  # for done: the chapter name written with it
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
    clock_marked: int = 0  # mentors marked by this tick because a certification lapsed or took effect

    @property
    def anything_due(self) -> bool:
        return self.due_count > 0 or self.expired_leases > 0


@dataclass(frozen=True)
class ListingState:
    mentor_id: uuid.UUID
    listed: bool
    chapter_name: str | None
    last_synced_at: datetime
    last_queue_id: int | None


def claim_batch(
    conn: psycopg.Connection, limit: int, lease: timedelta, token: uuid.UUID, now: datetime | None = None
) -> list[QueueRow]:
    """Lease up to `limit` rows due at `now` (and rows whose lease ran out by then), at most one
    per mentor."""
    with conn.cursor(row_factory=class_row(QueueRow)) as cur:
        cur.execute(f"select * from claim_sync_batch(%s, %s, %s, {_AT})", (limit, lease, token, now))
        rows = cur.fetchall()
    commit_unless_autocommit(conn)
    return rows


def extend_lease(conn: psycopg.Connection, token: uuid.UUID, lease: timedelta, now: datetime | None = None) -> int:
    """Push the lease of the rows still held under `token` to `now` + `lease`; returns how many
    are still held."""
    (held,) = conn.execute(f"select extend_sync_lease(%s, %s, {_AT})", (token, lease, now)).fetchone()
    commit_unless_autocommit(conn)
    return held


def record_outcomes(
    conn: psycopg.Connection,
    token: uuid.UUID,
    outcomes: Sequence[Outcome],
    policy: QueuePolicy,
    now: datetime | None = None,
) -> list[RecordedRow]:
    """Record outcomes of rows claimed under `token`. Rows no longer held (lease lost) are left
    alone and missing from the result.

    Outcomes that can put a row back to pending (retry, release) are recorded one row per
    transaction. A row back in pending enters the one-pending-row index, where it waits for an
    app transaction marking the same mentor; if the drain held another row it had just put back,
    that transaction could be waiting for it: a deadlock (the drain crashed, or the app's
    transaction was cancelled). Holding none, the drain only waits."""
    final = [o for o in outcomes if o.outcome not in SyncOutcome.BACK_TO_PENDING]
    back = [o for o in outcomes if o.outcome in SyncOutcome.BACK_TO_PENDING]
    rows = _record_outcomes(conn, token, final, policy, now) if final else []
    for outcome in back:
        rows += _record_outcomes(conn, token, [outcome], policy, now)
    return sorted(rows, key=lambda row: row.id)


def _record_outcomes(
    conn: psycopg.Connection, token: uuid.UUID, outcomes: Sequence[Outcome], policy: QueuePolicy, now: datetime | None
) -> list[RecordedRow]:
    payload = json.dumps([
        {"id": o.id, "outcome": o.outcome, "error": o.error, "listed": o.listed, "chapter": o.chapter,
         "consume_attempt": o.consume_attempt}
        for o in outcomes
    ])
    with conn.cursor(row_factory=class_row(RecordedRow)) as cur:
        cur.execute(
            f"select * from record_sync_outcomes(%s, %s::jsonb, %s, %s, %s, {_AT})",
            (token, payload, policy.max_attempts, policy.backoff_base, policy.backoff_max, now),
        )
        rows = cur.fetchall()
    commit_unless_autocommit(conn)
    return rows


def move_status_changes(conn: psycopg.Connection, *, wait: bool = False) -> int:
    """Move the status changes the app committed into the audit trail and sync_queue
    (`move_status_changes`, one batch), as the tick does first; returns how many. When another
    process is moving them, it moves nothing (theirs are there once it commits), or with `wait`
    waits for that move to commit first."""
    (moved,) = conn.execute("select move_status_changes(p_wait => %s)", (wait,)).fetchone()
    commit_unless_autocommit(conn)
    return moved


def tick(conn: psycopg.Connection, now: datetime | None = None) -> DueSummary:
    """The drain path's tick (`website_sync_tick`), which writes: it moves every status change the
    app committed into sync_queue (waiting for a move in progress), marks mentors whose
    certification lapsed (or took effect) since the last tick and the keys of the re-check notes
    whose racing transactions have ended (deleting those notes); then it counts due pending rows
    and expired leases from the partial indexes (what the sensor and a lingering drain look at)."""
    row = conn.execute(
        f"select clock_marked, due_count, max_due_id, expired_leases from website_sync_tick({_AT})", (now,)
    ).fetchone()
    commit_unless_autocommit(conn)
    return DueSummary(int(row[1]), row[2], int(row[3]), clock_marked=int(row[0]))


def archive_finished(
    conn: psycopg.Connection, policy: QueuePolicy, limit: int = 5000, now: datetime | None = None
) -> int:
    """Move finished rows past their retention at `now` to sync_queue_archive; returns how many moved."""
    (moved,) = conn.execute(
        f"select archive_sync_queue(%s, %s, %s, {_AT})", (policy.done_retention, policy.dead_retention, limit, now)
    ).fetchone()
    commit_unless_autocommit(conn)
    return moved


def enqueue(
    conn: psycopg.Connection,
    mentor_ids: Iterable[uuid.UUID | str],
    event: TriggerEvent,
    operation: str | None = None,
    now: datetime | None = None,
) -> int:
    """Mark mentor keys for a website write through the one enqueue function in SQL
    (`queue_website_sync`): one appended row per mentor (the claim coalesces a mentor's rows),
    the drain writes what the rule says when it writes. `operation` None derives add/remove from the rule. Returns how many were
    marked; the caller's transaction decides when they become visible. An unknown event or
    operation fails in SQL with the list of valid ones."""
    ids = list(dict.fromkeys(str(m) for m in mentor_ids))
    if not ids:
        return 0
    (marked,) = conn.execute(
        f"select queue_website_sync(%s::uuid[], %s, %s, {_AT})", (ids, event, operation, now)
    ).fetchone()
    return marked


@dataclass(frozen=True)
class DesiredListing:
    """The rule's answer for one mentor key (website_desired_listing in SQL)."""

    mentor_id: uuid.UUID
    in_app: bool
    organization_code: str | None
    full_name: str | None
    status: str | None
    chapter_name: str | None
    should_be_listed: bool
    reason: str | None


def desired_listing(
    conn: psycopg.Connection, mentor_ids: Iterable[uuid.UUID | str], now: datetime | None = None
) -> dict[uuid.UUID, DesiredListing]:
    """What the website should show for each mentor key at `now`, read from the one rule. Keys of
    mentors no longer in the app are in the result too (never listed)."""
    ids = [str(m) for m in mentor_ids]
    if not ids:
        return {}
    with conn.cursor(row_factory=class_row(DesiredListing)) as cur:
        # Not the expiry timestamp: 'infinity' is a valid certification date and the reason
        # already names the lapse date.
        cur.execute("select mentor_id, in_app, organization_code, full_name, status, chapter_name, should_be_listed,"
                    f" reason from website_desired_listing(%s::uuid[], {_AT})", (ids, now))
        return {row.mentor_id: row for row in cur.fetchall()}


def listing_state(
    conn: psycopg.Connection, mentor_ids: Iterable[uuid.UUID | str] | None = None
) -> dict[uuid.UUID, ListingState]:
    """What the website listing is per mentor, as last confirmed by a Dynamics write."""
    with conn.cursor(row_factory=class_row(ListingState)) as cur:
        if mentor_ids is None:
            cur.execute("select mentor_id, listed, chapter_name, last_synced_at, last_queue_id from website_listing_state")
        else:
            cur.execute(
                "select mentor_id, listed, chapter_name, last_synced_at, last_queue_id from website_listing_state"
                " where mentor_id = any(%s::uuid[])",
                ([str(m) for m in mentor_ids],),
            )
        return {row.mentor_id: row for row in cur.fetchall()}


