"""What a break-glass command left undone in sync_queue, and its exit codes for it.

The counts come from SQL (`sync_queue_left`); the meaning of each exit code lives here
(docs/operations.md, "Break-glass"). The command's job is what was waiting when it started
(`Start`): rows that arrived while it ran (the app is live) are reported, never a failure.
When several apply, the first of 1, 5, 4, 3, 6 wins:
  1  the command could not do its work (bad input, sign-in or authentication failure)
  5  rows went dead since the command started (a person must act)
  4  rows still pending after failed attempts (retried later with backoff), or rows due
     at the start that nobody holds
  3  rows leased by another process (until when); `mentor-pipeline sync --wait` finishes them
  6  reconcile/force-sync only: the queue is done, but mentors stay divergent or duplicates
     need review
  0  nothing due at the start is left undone (rows that arrived since may wait)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import psycopg
from psycopg.rows import class_row

from mentor_pipeline.db.connection import commit_unless_autocommit

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
    # Waiting rows that arrived after the command started (not counted above): the next drain's.
    arrived: int

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
        text = "left undone: " + "; ".join(parts) if parts else "nothing due is left undone"
        if self.arrived:
            text += f"; {self.arrived:,} arrived while running (the next drain takes them)"
        return text


@dataclass(frozen=True)
class Start:
    """When a command started, on the database's clock, and the newest sync_queue row then: rows
    with a higher id arrived while it ran. (By id, not by mentor: a mentor may have several rows.)"""
    at: datetime
    last_id: int
    # Rows the command queued itself (reconcile, force-sync): its job, whatever their id.
    own: frozenset[int] = frozenset()

    def with_own(self, queue_ids) -> Start:
        return replace(self, own=frozenset(int(i) for i in queue_ids))


def command_start(conn: psycopg.Connection) -> Start:
    """The database's clock (rows are stamped with it, not ours) and the newest queue row."""
    (now, last_id) = conn.execute("select now(), coalesce(max(id), 0) from sync_queue").fetchone()
    commit_unless_autocommit(conn)
    return Start(now, last_id)


def queue_left(conn: psycopg.Connection, since: datetime | Start, now: datetime | None = None) -> Leftover:
    """What is left as of `now` (None: the database's clock); dead rows count from `since`.
    Given a `Start`, rows that arrived after it are counted apart (`arrived`), not as left undone."""
    start = since if isinstance(since, Start) else None
    with conn.cursor(row_factory=class_row(Leftover)) as cur:
        cur.execute("select * from sync_queue_left(%s, coalesce(%s::timestamptz, now()), %s, %s::bigint[])",
                    (start.at if start else since, now, start.last_id if start else None,
                     sorted(start.own) if start else []))
        left = cur.fetchone()
    commit_unless_autocommit(conn)
    return left


def wait_for_foreign_leases(conn: psycopg.Connection, left: Leftover, start: Start, *, poll_seconds: float = 1.0,
                            say: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep) -> None:
    """Wait until another process's leased rows (of those waiting at `start`) are finished or
    their leases run out (then a drain can take them)."""
    say(f"waiting for {left.leased:,} row(s) leased by another process (until {_clock(left.leased_until)}) ...")
    while True:
        sleep(poll_seconds)
        now = queue_left(conn, start)
        if now.leased < left.leased or now.expired_leases or not now.leased:
            return


def _clock(moment: datetime | None) -> str:
    return f"{moment.astimezone(timezone.utc):%H:%M:%S} UTC" if moment else "?"
