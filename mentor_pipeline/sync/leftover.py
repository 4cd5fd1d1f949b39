"""What a drain left undone in sync_queue, and the break-glass commands' exit codes for it.

The counts come from SQL (`sync_queue_left`); the meaning of each exit code lives here
(docs/operations.md, "Break-glass"). When several apply, the first of 1, 5, 4, 3, 6 wins:
  1  the command could not do its work (bad input, sign-in or authentication failure)
  5  rows went dead since the command started (a person must act)
  4  rows still pending after failed attempts (retried later with backoff), or due rows
     that nobody holds
  3  rows leased by another process (until when); `mentor-pipeline sync --wait` finishes them
  6  reconcile/force-sync only: the queue is done, but mentors stay divergent or duplicates
     need review
  0  nothing due is left undone
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import psycopg
from psycopg.rows import class_row

EXIT_OK, EXIT_ERROR, EXIT_LEASED, EXIT_PENDING, EXIT_DEAD, EXIT_REVIEW = 0, 1, 3, 4, 5, 6


@dataclass(frozen=True)
class Leftover:
    due_untried: int
    retry_pending: int
    next_retry_at: datetime | None
    leased: int
    leased_until: datetime | None
    expired_leases: int
    dead_since: int

    @property
    def exit_code(self) -> int:
        if self.dead_since:
            return EXIT_DEAD
        if self.retry_pending:
            return EXIT_PENDING
        if self.leased:
            # Due rows of mentors whose older row is in flight wait behind that lease too.
            return EXIT_LEASED
        if self.due_untried or self.expired_leases:
            return EXIT_PENDING
        return EXIT_OK

    def summary(self) -> str:
        """One line: what is left and what to do about it."""
        parts = []
        if self.dead_since:
            parts.append(f"{self.dead_since:,} dead (need a person: select * from sync_queue where status = 'dead')")
        if self.retry_pending:
            parts.append(f"{self.retry_pending:,} still pending after failed attempts"
                         + (f" (next retry {_clock(self.next_retry_at)})" if self.next_retry_at else ""))
        if self.leased:
            parts.append(f"{self.leased:,} leased by another process until {_clock(self.leased_until)} "
                         "(mentor-pipeline sync --wait finishes them)")
        if self.due_untried:
            parts.append(f"{self.due_untried:,} due and not yet tried")
        if self.expired_leases:
            parts.append(f"{self.expired_leases:,} left by a stopped process (lease ran out)")
        return "left undone: " + "; ".join(parts) if parts else "nothing due is left undone"


def database_now(conn: psycopg.Connection) -> datetime:
    """The database's clock: `since` for `queue_left` (rows are stamped with it, not ours)."""
    (now,) = conn.execute("select now()").fetchone()
    _commit(conn)
    return now


def queue_left(conn: psycopg.Connection, since: datetime, now: datetime | None = None) -> Leftover:
    """What is left as of `now` (None: the database's clock); dead rows count from `since`."""
    with conn.cursor(row_factory=class_row(Leftover)) as cur:
        cur.execute("select * from sync_queue_left(%s, coalesce(%s::timestamptz, now()))", (since, now))
        left = cur.fetchone()
    _commit(conn)
    return left


def wait_for_foreign_leases(conn: psycopg.Connection, left: Leftover, *, poll_seconds: float = 1.0,
                            say: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep) -> None:
    """Wait until another process's leased rows are finished or their leases run out (then a
    drain can take them)."""
    say(f"waiting for {left.leased:,} row(s) leased by another process (until {_clock(left.leased_until)}) ...")
    while True:
        sleep(poll_seconds)
        (leased, expired) = conn.execute(
            "select leased, expired_leases from sync_queue_left(now())").fetchone()
        _commit(conn)
        if leased < left.leased or expired or not leased:
            return


def _clock(moment: datetime | None) -> str:
    return f"{moment.astimezone(timezone.utc):%H:%M:%S} UTC" if moment else "?"


def _commit(conn: psycopg.Connection) -> None:
    if not conn.autocommit:
        conn.commit()
