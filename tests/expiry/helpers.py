"""Builders and snapshots for the expiry tests: certifications placed on Oslo wall-clock times."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
import psycopg

from mentor_pipeline.timezone import OSLO
from tests.support.factories import insert_certification, mentor, move_status_changes

# A past night (the run refuses future dates); summer time, so Oslo is UTC+2.
RUN_DATE = date(2026, 6, 15)


def oslo(y: int, m: int, d: int, hh: int = 12, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=OSLO)


def expiring_on(run_date: date, days_left: int, hour: int = 12) -> datetime:
    """An instant `days_left` Oslo calendar days after `run_date`, at `hour` Oslo time."""
    day = run_date + timedelta(days=days_left)
    return oslo(day.year, day.month, day.day, hour)


def add_certification(conn: psycopg.Connection, mentor_id: uuid.UUID, expires_at: datetime,
                      issued_at: datetime | None = None, *, settled: bool = True) -> uuid.UUID:
    """A certification, issued two years before it expires unless said otherwise."""
    return insert_certification(conn, mentor_id, issued_at or expires_at - timedelta(days=730), expires_at,
                                settled=settled)


def mentor_expiring(conn: psycopg.Connection, expires_at: datetime | None, *, org: str = "HLF",
                    status: str = "active", name: str | None = None) -> uuid.UUID:
    mentor_id = mentor(conn, org, status=status, cert_expires_in=None, full_name=name or f"Mentor {uuid.uuid4().hex[:6]}")
    if expires_at is not None:
        add_certification(conn, mentor_id, expires_at)
    return mentor_id


def reminders_of(conn: psycopg.Connection, mentor_id: uuid.UUID) -> list[tuple[int, date]]:
    return conn.execute(
        "select threshold_day, certification_expiry_date from cert_expiry_reminders where mentor_id = %s"
        " order by certification_expiry_date, threshold_day desc",
        (mentor_id,),
    ).fetchall()


def status_of(conn: psycopg.Connection, mentor_id: uuid.UUID) -> str:
    return conn.execute("select status from mentors where id = %s", (mentor_id,)).fetchone()[0]


def run_expiry_sql(conn: psycopg.Connection, run_date: date = RUN_DATE, *, on_time: bool = True) -> None:
    """The night of `run_date`; on_time: as if it ran that night (reminders sent that day), else
    run today as a backfill would."""
    from mentor_pipeline.expiry.run import run_nightly_expiry

    run_nightly_expiry(conn, run_date, sent_on=run_date if on_time else None)


def outcome(conn: psycopg.Connection) -> dict[str, list]:
    """Everything a run produces, keyed by names rather than generated ids, for comparing databases:
    as the pipeline sees it after its tick (the status changes committed so far moved in first)."""
    move_status_changes(conn)
    queries = {
        "statuses": "select m.full_name, m.status from mentors m order by 1",
        "reminders": "select m.full_name, r.threshold_day, r.certification_expiry_date, r.run_date"
                     " from cert_expiry_reminders r join mentors m on m.id = r.mentor_id order by 1, 2, 3",
        "notifications": "select m.full_name, n.threshold_day, n.certification_expiry_date, c.name, n.message"
                         " from coordinator_notifications n join mentors m on m.id = n.mentor_id"
                         " left join chapters c on c.id = n.chapter_id order by 1, 2, 3",
        "notification_reminder_links": "select count(*) from coordinator_notifications n"
                                       " join cert_expiry_reminders r on r.id = n.reminder_id"
                                       " and (r.mentor_id, r.threshold_day, r.certification_expiry_date)"
                                       " = (n.mentor_id, n.threshold_day, n.certification_expiry_date)",
        "sync_queue": "select m.full_name, q.operation, q.triggered_by_event, q.status"
                      " from sync_queue q join mentors m on m.id = q.mentor_id order by 1, 2",
        "audit": "select m.full_name, a.old_status, a.new_status, a.triggered_by_event, a.sync_operation"
                 " from mentor_status_audit a join mentors m on m.id = a.mentor_id order by 1, a.id",
        "certification_state": "select m.full_name, s.bucket, s.days_left, s.status, s.run_date"
                               " from certification_state s join mentors m on m.id = s.mentor_id order by 1",
    }
    return {name: conn.execute(sql).fetchall() for name, sql in queries.items()}


# A mix that exercises every rule: per organisation, one mentor per (status, days_left) pair.
SCENARIO_DAYS = [None, -400, -30, -1, 0, 1, 5, 6, 7, 8, 13, 14, 15, 29, 30, 31, 60, 365]
SCENARIO_STATUSES = ["active", "paused", "expired_cert"]


def build_scenario(conn: psycopg.Connection, run_date: date = RUN_DATE) -> None:
    for org in ["HLF", "NHF"]:
        for status in SCENARIO_STATUSES:
            for days in SCENARIO_DAYS:
                expires_at = None if days is None else expiring_on(run_date, days)
                mentor_expiring(conn, expires_at, org=org, status=status, name=f"{org} {status} {days}")


def plant_thresholds(conn: psycopg.Connection, org_code: str, days_literal: str) -> None:
    """An organisation's thresholds written past every check, as a row saved before the current
    rule or a direct edit with the checks switched off would be. (Superuser only.)"""
    from tests.support.factories import organization

    org_id = organization(conn, org_code)
    conn.execute("alter table expiry_threshold_config drop constraint expiry_threshold_config_valid")
    conn.execute("alter table expiry_threshold_config disable trigger expiry_threshold_config_validate")
    conn.execute(
        "insert into expiry_threshold_config (organization_id, threshold_overrides_enabled, threshold_days)"
        " values (%s, true, %s::numeric[])", (org_id, days_literal))
    conn.execute("alter table expiry_threshold_config enable trigger expiry_threshold_config_validate")
    conn.execute("alter table expiry_threshold_config add constraint expiry_threshold_config_valid"
                 " check (expiry_threshold_days_problem(threshold_days) is null) not valid")
