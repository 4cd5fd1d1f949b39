"""Thin layer over the expiry SQL functions (supabase/schemas/30_expiry.sql).

Each method is one call into the database, in its own transaction, and returns counts: the
rules and the row-by-row work stay in Postgres, nothing per mentor comes back to Python except
short samples for people to read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime

import psycopg

BUCKETS = ["expired", "lt_7_days", "lt_14_days", "lt_30_days", "ok", "no_certification"]
SAMPLE_SIZE = 20


@dataclass(frozen=True)
class Transitions:
    """Mentors moved from active to expired_cert by this call."""

    by_organization: dict[str, int]
    sample_mentor_ids: list[str]

    @property
    def total(self) -> int:
        return sum(self.by_organization.values())


@dataclass(frozen=True)
class CertificationState:
    run_date: date
    # (organisation code, bucket) -> mentors
    counts: dict[tuple[str, str], int]
    # (organisation code, bucket) -> how many of those mentors are active
    active_counts: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def active_without_certification(self) -> int:
        return sum(n for (_, bucket), n in self.active_counts.items() if bucket == "no_certification")

    def per_bucket(self) -> dict[str, int]:
        totals = Counter({bucket: 0 for bucket in BUCKETS})
        for (_, bucket), n in self.counts.items():
            totals[bucket] += n
        return dict(totals)

    def organizations(self) -> list[str]:
        return sorted({org for org, _ in self.counts})


@dataclass(frozen=True)
class Reminders:
    # (organisation code, threshold_day) -> (reminders, notifications) created by this call
    counts: dict[tuple[str, int], tuple[int, int]]
    # organisation code -> why its own thresholds are invalid (it got no reminders this run)
    skipped: dict[str, str] = field(default_factory=dict)
    # the organisations whose thresholds were fine
    thresholds_ok: list[str] = field(default_factory=list)

    @property
    def reminders(self) -> int:
        return sum(r for r, _ in self.counts.values())

    @property
    def notifications(self) -> int:
        return sum(n for _, n in self.counts.values())

    def per_threshold(self) -> dict[int, int]:
        totals: Counter[int] = Counter()
        for (_, threshold), (n, _) in self.counts.items():
            totals[threshold] += n
        return dict(sorted(totals.items(), reverse=True))


@dataclass(frozen=True)
class CertificationGaps:
    """Active mentors with no certification at all (a data gap, not an expiry)."""

    total: int
    sample: list[dict] = field(default_factory=list)


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
