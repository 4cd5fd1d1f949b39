"""Thin layer over the expiry SQL functions (supabase/schemas/30_expiry.sql).

Each method is one call into the database, in its own transaction, and returns counts: the
rules and the row-by-row work stay in Postgres, nothing per mentor comes back to Python except
short samples for people to read.
"""

from __future__ import annotations

from datetime import date, datetime

import psycopg

from mentor_pipeline.expiry.report import CertificationGaps, CertificationState, Reminders, Transitions

SAMPLE_SIZE = 20


def expire_lapsed_mentors(conn: psycopg.Connection, run_date: date, now: datetime | None = None) -> Transitions:
    """Expire mentors lapsed by the start of `run_date`, deciding at `now` (default: the database's now())."""
    with conn.transaction():
        rows = conn.execute(
            "with moved as ("
            "  select t.mentor_id from expire_mentors_with_lapsed_certifications("
            "      expiry_run_start(%s), coalesce(%s::timestamptz, now())) t)"
            " select o.code, count(*), (array_agg(moved.mentor_id::text order by moved.mentor_id))[1:%s]"
            " from moved join mentors m on m.id = moved.mentor_id join organizations o on o.id = m.organization_id"
            " group by o.code order by o.code",
            (run_date, now, SAMPLE_SIZE),
        ).fetchall()
    sample = sorted(mentor_id for _, _, ids in rows for mentor_id in ids)[:SAMPLE_SIZE]
    return Transitions(by_organization={code: n for code, n, _ in rows}, sample_mentor_ids=sample)


def refresh_certification_state(conn: psycopg.Connection, run_date: date) -> CertificationState:
    with conn.transaction():
        rows = conn.execute("select * from refresh_certification_state(%s)", (run_date,)).fetchall()
    return CertificationState(
        run_date=run_date,
        counts={(org, bucket): n for org, bucket, n, _ in rows},
        active_counts={(org, bucket): active for org, bucket, _, active in rows},
    )


def create_reminders(conn: psycopg.Connection, run_date: date, sent_on: date | None = None,
                     now: datetime | None = None) -> Reminders:
    """Reminders due on `run_date`, decided at `now` (default: the database's now()) and sent on
    `sent_on` (None: the Oslo date of `now`)."""
    with conn.transaction():
        rows = conn.execute("select * from create_expiry_reminders(%s, %s, coalesce(%s::timestamptz, now()))",
                            (run_date, sent_on, now)).fetchall()
        problems = conn.execute(
            "select organization_code, threshold_problem from organization_expiry_thresholds order by 1"
        ).fetchall()
    return Reminders(counts={(org, threshold): (r, n) for org, threshold, r, n in rows},
                     skipped={org: problem for org, problem in problems if problem is not None},
                     thresholds_ok=[org for org, problem in problems if problem is None])


def certification_gaps(conn: psycopg.Connection, total: int | None = None) -> CertificationGaps:
    """The count (pass it when the state refresh already counted) and a sample to show people."""
    with conn.transaction():
        if total is None:
            total = conn.execute("select count(*) from active_mentors_without_certification()").fetchone()[0]
        if not total:
            return CertificationGaps(total=0)
        rows = conn.execute(
            "select mentor_id::text, full_name, organization_code, chapter_name"
            " from active_mentors_without_certification() limit %s",
            (SAMPLE_SIZE,),
        ).fetchall()
    sample = sorted(
        ({"mentor_id": mentor_id, "full_name": name, "organization": org, "chapter": chapter}
         for mentor_id, name, org, chapter in rows),
        key=lambda g: (g["organization"], g["chapter"] or "", g["full_name"], g["mentor_id"]),
    )
    return CertificationGaps(total=total, sample=sample)
