"""Database access for reconciliation: one Python function per SQL object of
`supabase/schemas/40_reconciliation.sql` (the listing rule: `10_rule.sql`), plus the writes of
the run and its log."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import psycopg
from psycopg.rows import dict_row

from mentor_pipeline.reconcile.diff import app_frame
from mentor_pipeline.sync.store import move_status_changes


class InvalidMentorIds(ValueError):
    """Force sync was given a selection that names no HLF mentor; nothing was applied."""

    def __init__(self, problems: dict[str, str]):
        self.problems = problems
        listed = "; ".join(f"{what} ({why})" for what, why in problems.items())
        super().__init__(
            f"{len(problems)} invalid mentor selection(s), nothing was applied: {listed}. "
            "Name mentors of an organisation with website sync by id, exact name or chapter "
            "(mentor-pipeline mentor list --org HLF)."
        )


def select_mentors(
    conn: psycopg.Connection,
    mentor_ids: Sequence[str] = (),
    mentor_names: Sequence[str] = (),
    chapter: str | None = None,
) -> list[str]:
    """The mentor keys a force sync names: ids, exact full names and/or every mentor of a
    chapter, of organisations with website sync (an id whose mentor was deleted but whose
    listing the pipeline knows is accepted: it gets unlisted). Raises InvalidMentorIds naming
    every part of the selection that matches nothing, is ambiguous or is outside website sync."""
    problems: dict[str, str] = {}
    keys: dict[str, None] = {}
    parsed: dict[str, str] = {}
    for raw in mentor_ids:
        text = str(raw).strip()
        try:
            parsed[text] = str(uuid.UUID(text))
        except ValueError:
            problems[text] = "not a mentor id: expected a UUID"
    if parsed:
        rows = conn.execute(
            """
            select k.id::text, o.code, o.website_sync_enabled, w.mentor_id is not null
              from unnest(%s::uuid[]) k(id)
              left join mentors m on m.id = k.id
              left join organizations o on o.id = m.organization_id
              left join website_listing_state w on w.mentor_id = k.id
            """,
            (list(parsed.values()),),
        ).fetchall()
        found = {mentor_id: (code, enabled, known) for mentor_id, code, enabled, known in rows}
        for text, mentor_id in parsed.items():
            code, enabled, known = found[mentor_id]
            if code is None and not known:
                problems[text] = "no such mentor"
            elif code is not None and not enabled:
                problems[text] = f"organisation {code} has no website sync"
            else:
                keys[mentor_id] = None
    for name in mentor_names:
        rows = conn.execute(
            """
            select m.id::text, o.code, o.website_sync_enabled
              from mentors m join organizations o on o.id = m.organization_id
             where m.full_name = %s
            """,
            (name,),
        ).fetchall()
        syncing = [mentor_id for mentor_id, _, enabled in rows if enabled]
        if not rows:
            problems[name] = "no mentor with this exact name"
        elif not syncing:
            problems[name] = f"organisation {rows[0][1]} has no website sync"
        elif len(syncing) > 1:
            problems[name] = f"{len(syncing)} mentors have this name: use their ids"
        else:
            keys[syncing[0]] = None
    if chapter is not None:
        rows = conn.execute(
            """
            select m.id::text
              from chapters ch
              join organizations o on o.id = ch.organization_id and o.website_sync_enabled
              left join mentors m on m.chapter_id = ch.id
             where ch.name = %s
            """,
            (chapter,),
        ).fetchall()
        if not rows:
            problems[f"chapter {chapter}"] = "no chapter of this name in an organisation with website sync"
        keys.update((mentor_id, None) for (mentor_id,) in rows if mentor_id is not None)
    if problems:
        raise InvalidMentorIds(problems)
    return list(keys)


def app_state(
    conn: psycopg.Connection, mentor_ids: Sequence[str] | None = None, now: datetime | None = None
) -> pd.DataFrame:
    """`reconciliation_app_state()` at `now` (default: the database's now()) as a frame (every
    HLF mentor, or the given ones)."""
    # The status changes committed so far move from the inbox first, as the tick does: they are
    # in the queue before the run diffs and enqueues (left to the queue, not divergent), so the
    # run's rows come after them.
    move_status_changes(conn)
    with conn.cursor(binary=True) as cur:
        cur.execute(
            "select mentor_id::text, status, should_be_listed, chapter_name, confirmed_listed, in_queue, confirmed_matches"
            " from reconciliation_app_state(%s::uuid[], coalesce(%s::timestamptz, now()))",
            (None if mentor_ids is None else list(mentor_ids), now),
        )
        return app_frame(cur.fetchall())


def keys_state(conn: psycopg.Connection, mentor_ids: Sequence[str]) -> pd.DataFrame:
    """The rule's answer for mentor keys outside the app side (listed contacts with no mentor of
    a syncing organisation): mentor_id, in_app, status, in_queue."""
    rows = conn.execute(
        """
        select d.mentor_id::text, d.in_app, d.status,
               -- One probe per partial index (pending, processing: sync_change_waiting's pair),
               -- which the pair as one `in` test matches neither of.
               exists (select 1 from sync_queue q where q.mentor_id = d.mentor_id and q.status = 'pending')
               or exists (select 1 from sync_queue q where q.mentor_id = d.mentor_id and q.status = 'processing')
          from website_desired_listing(%s::uuid[]) d
        """,
        (list(mentor_ids),),
    ).fetchall()
    return pd.DataFrame.from_records(rows, columns=["mentor_id", "in_app", "status", "in_queue"])


def start_run(conn: psycopg.Connection, kind: str, dagster_run_id: str | None) -> uuid.UUID:
    (run_id,) = conn.execute(
        "insert into reconciliation_runs (kind, dagster_run_id) values (%s, %s) returning id", (kind, dagster_run_id)
    ).fetchone()
    return run_id


def finish_run(conn: psycopg.Connection, run_id: uuid.UUID, summary: dict) -> None:
    conn.execute(
        "update reconciliation_runs set finished_at = now(), summary = %s::jsonb where id = %s",
        (json.dumps(summary), run_id),
    )


def record_read_listing(conn: psycopg.Connection, states: pd.DataFrame, read_started: datetime) -> int:
    """Store what Dynamics showed (columns mentor_id, listed) as the known listing, except where a
    sync write confirmed a value after the read began (that write is newer than our read)."""
    if states.empty:
        return 0
    cur = conn.execute(
        """
        insert into website_listing_state as w (mentor_id, listed, last_synced_at, updated_at)
        select m, l, %s, now() from unnest(%s::uuid[], %s::boolean[]) as t(m, l)
        on conflict (mentor_id) do update
            set listed = excluded.listed, last_synced_at = excluded.last_synced_at, updated_at = now()
            where w.last_synced_at < excluded.last_synced_at and w.listed is distinct from excluded.listed
        """,
        (read_started, states["mentor_id"].tolist(), states["listed"].tolist()),
    )
    return cur.rowcount


def pending_queue_ids(conn: psycopg.Connection, mentor_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
    """The newest pending row (id, operation) per mentor, for the given mentors."""
    rows = conn.execute(
        "select mentor_id::text, id, operation from sync_queue where status = 'pending' and mentor_id = any(%s::uuid[])"
        " order by id",
        (list(mentor_ids),),
    ).fetchall()
    return {mentor_id: (queue_id, operation) for mentor_id, queue_id, operation in rows}


@dataclass(frozen=True)
class LogEntry:
    mentor_id: str
    app_status: str | None  # None: the mentor is gone from the app
    should_be_listed: bool
    dynamics_state: str | None
    classification: str
    action: str
    queue_id: int | None


def write_log(conn: psycopg.Connection, run_id: uuid.UUID, entries: Iterable[LogEntry]) -> int:
    entries = list(entries)
    if not entries:
        return 0
    with conn.cursor() as cur:
        cur.execute(
            """
            insert into reconciliation_log (run_id, mentor_id, app_status, should_be_listed, dynamics_state,
                                            classification, action, queue_id)
            select %s, m, s, sl, ds, c, a, q
              from unnest(%s::uuid[], %s::text[], %s::boolean[], %s::text[], %s::text[], %s::text[], %s::bigint[])
                   as t(m, s, sl, ds, c, a, q)
            """,
            (
                run_id,
                [e.mentor_id for e in entries],
                [e.app_status for e in entries],
                [e.should_be_listed for e in entries],
                [e.dynamics_state for e in entries],
                [e.classification for e in entries],
                [e.action for e in entries],
                [e.queue_id for e in entries],
            ),
        )
        return cur.rowcount


def duplicates(conn: psycopg.Connection) -> list[dict]:
    """Hits of the compensation query (`reconciliation_duplicates`), for manual review."""
    with conn.cursor(row_factory=dict_row) as cur:
        # The expiry date as text: 'infinity' and years past 9999 are valid there but not in Python.
        cur.execute("select kind, mentor_id, certification_expiry_date::text as certification_expiry_date,"
                    " threshold_day, reconciliation_run_id, occurrences, first_at, last_at, row_ids"
                    " from reconciliation_duplicates order by kind, mentor_id, first_at")
        return cur.fetchall()


def unresolved_dead_rows(
    conn: psycopg.Connection, older_than_seconds: float = 86400, now: datetime | None = None
) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("select * from unresolved_dead_sync_rows(make_interval(secs => %s), coalesce(%s::timestamptz, now()))",
                    (older_than_seconds, now))
        return cur.fetchall()


def latest_run(conn: psycopg.Connection, kind: str = "reconciliation") -> dict | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "select * from reconciliation_runs where kind = %s and finished_at is not null"
            " order by started_at desc limit 1",
            (kind,),
        )
        return cur.fetchone()


def run_log(conn: psycopg.Connection, run_id: uuid.UUID) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("select * from reconciliation_log where run_id = %s order by id", (run_id,))
        return cur.fetchall()


def divergence_after_run(conn: psycopg.Connection, run_id: uuid.UUID) -> list[dict]:
    """Now, for every mentor a reconciliation run acted on: the one rule's answer, the listing
    last confirmed in Dynamics, and whether a queue row is still on its way. A mentor is still
    divergent when nothing is on its way and the confirmed listing (flag and chapter) does not
    match the rule (`confirmed_matches`, SQL's listing_matches_rule)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            select l.mentor_id, l.classification, l.action, l.queue_id, s.should_be_listed, s.confirmed_listed,
                   s.in_queue, s.confirmed_matches,
                   (not s.in_queue and not coalesce(s.confirmed_matches, false)) as still_divergent
              from reconciliation_log l
              join reconciliation_app_state(array(
                       select mentor_id from reconciliation_log where run_id = %(run)s and action <> 'none')) s
                on s.mentor_id = l.mentor_id
             where l.run_id = %(run)s and l.action <> 'none'
             order by l.id
            """,
            {"run": run_id},
        )
        return cur.fetchall()
