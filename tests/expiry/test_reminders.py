"""Reminder windows, measured in Oslo calendar days between the run date and the expiry date.

Rules under test (supabase/schemas/30_expiry.sql, its calendar in 00_dates.sql):
- valid as of the run date = not expired by 00:00 Europe/Oslo on the run date;
- days_left = Oslo date of expires_at - run date;
- the reminder due is the tightest threshold reached (smallest threshold >= days_left), one per
  (mentor_id, threshold_day, certification_expiry_date).
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from mentor_pipeline.expiry import store
from tests.expiry.helpers import (
    RUN_DATE,
    add_certification,
    expiring_on,
    mentor_expiring,
    oslo,
    reminders_of,
    run_expiry_sql,
    status_of,
)


@pytest.mark.parametrize(
    ("days_left", "expected_threshold"),
    [(31, None), (30, 30), (29, 30), (15, 30), (14, 14), (13, 14), (8, 14), (7, 7), (5, 7), (1, 7), (0, 7)],
)
def test_threshold_boundaries(db, days_left, expected_threshold):
    mentor_id = mentor_expiring(db, expiring_on(RUN_DATE, days_left))
    run_expiry_sql(db)

    expiry_date = RUN_DATE + timedelta(days=days_left)
    assert reminders_of(db, mentor_id) == ([] if expected_threshold is None else [(expected_threshold, expiry_date)])
    assert status_of(db, mentor_id) == "active"


def test_expired_yesterday_gets_no_reminder_and_is_transitioned(db):
    mentor_id = mentor_expiring(db, expiring_on(RUN_DATE, -1))
    run_expiry_sql(db)

    assert reminders_of(db, mentor_id) == []
    assert status_of(db, mentor_id) == "expired_cert"


def test_first_run_five_days_out_sends_only_the_tightest_threshold(db):
    # A coordinator should not get the 30-, 14- and 7-day reminders all at once on day one.
    mentor_id = mentor_expiring(db, expiring_on(RUN_DATE, 5))
    run_expiry_sql(db)
    assert reminders_of(db, mentor_id) == [(7, RUN_DATE + timedelta(days=5))]

    # Following nights inside the same window add nothing.
    for offset in range(1, 6):
        run_expiry_sql(db, RUN_DATE + timedelta(days=offset))
    assert reminders_of(db, mentor_id) == [(7, RUN_DATE + timedelta(days=5))]


def test_a_certification_walks_through_each_threshold_once(db):
    expiry = expiring_on(RUN_DATE, 40)
    mentor_id = mentor_expiring(db, expiry)
    for offset in range(0, 41):
        run_expiry_sql(db, RUN_DATE + timedelta(days=offset))

    expiry_date = expiry.date()
    assert reminders_of(db, mentor_id) == [(30, expiry_date), (14, expiry_date), (7, expiry_date)]
    days_left_when_sent = db.execute(
        "select threshold_day, days_left, run_date - certification_expiry_date from cert_expiry_reminders"
        " where mentor_id = %s order by threshold_day desc", (mentor_id,)).fetchall()
    assert days_left_when_sent == [(30, 30, -30), (14, 14, -14), (7, 7, -7)]


@pytest.mark.parametrize(
    ("expires_at", "valid", "days_left", "bucket"),
    [
        # The start of the run date in Oslo is the line: at or before it, expired.
        (oslo(2026, 6, 14, 23, 59, 59), False, -1, "expired"),
        (oslo(2026, 6, 15, 0, 0, 0), False, 0, "expired"),
        (oslo(2026, 6, 15, 0, 0, 1), True, 0, "lt_7_days"),
        # 22:30 UTC on the 15th is already the 16th in Oslo: one day left, not zero.
        (oslo(2026, 6, 16, 0, 30), True, 1, "lt_7_days"),
        # 23:30 Oslo on 15 July is 21:30 UTC: 30 days (30-day reminder).
        (oslo(2026, 7, 15, 23, 30), True, 30, "ok"),
        # 00:30 Oslo on 16 July is still 15 July in UTC: in Oslo that is 31 days, no reminder yet.
        (oslo(2026, 7, 16, 0, 30), True, 31, "ok"),
    ],
    ids=["23:59:59-yesterday", "midnight-exactly", "00:00:01-today", "00:30-tomorrow-oslo", "30d-late-evening", "31d-just-after-midnight"],
)
def test_time_zone_edges_around_oslo_midnight(db, expires_at, valid, days_left, bucket):
    mentor_id = mentor_expiring(db, expires_at)
    run_expiry_sql(db)

    row = db.execute(
        "select valid_as_of_run_date, days_left, bucket from certification_state where mentor_id = %s", (mentor_id,)
    ).fetchone()
    assert row == (valid, days_left, bucket)
    assert status_of(db, mentor_id) == ("active" if valid else "expired_cert")
    reminders = reminders_of(db, mentor_id)
    if not valid or days_left > 30:
        assert reminders == []
    else:
        assert reminders == [(30 if days_left > 14 else 14 if days_left > 7 else 7, expires_at.date())]


def test_daylight_saving_change_does_not_shift_the_count(db):
    # Summer time ends on 25 October 2026: the night has 25 hours, the count is still calendar days.
    run_date = date(2026, 10, 20)
    mentor_id = mentor_expiring(db, oslo(2026, 10, 27, 0, 30))
    run_expiry_sql(db, run_date)
    assert db.execute("select days_left from certification_state where mentor_id = %s", (mentor_id,)).fetchone() == (7,)
    assert reminders_of(db, mentor_id) == [(7, date(2026, 10, 27))]


def test_renewal_starts_a_new_cycle(db):
    mentor_id = mentor_expiring(db, expiring_on(RUN_DATE, 10))
    run_expiry_sql(db)
    assert reminders_of(db, mentor_id) == [(14, RUN_DATE + timedelta(days=10))]

    # Renewed: a new certification issued now, expiring 20 days after the old one.
    renewed_expiry = expiring_on(RUN_DATE, 30)
    add_certification(db, mentor_id, renewed_expiry, issued_at=oslo(2026, 6, 14, 9))
    run_expiry_sql(db)
    assert reminders_of(db, mentor_id) == [(14, RUN_DATE + timedelta(days=10)), (30, renewed_expiry.date())]

    # The old certification's cycle is over: no 7-day reminder for it later.
    run_expiry_sql(db, RUN_DATE + timedelta(days=5))
    assert (7, RUN_DATE + timedelta(days=10)) not in reminders_of(db, mentor_id)


def test_only_the_most_recent_certification_counts(db):
    # An older certification expiring in 5 days was superseded by one valid for a year.
    mentor_id = mentor_expiring(db, expiring_on(RUN_DATE, 5))
    add_certification(db, mentor_id, expiring_on(RUN_DATE, 365), issued_at=oslo(2026, 6, 1))
    run_expiry_sql(db)
    assert reminders_of(db, mentor_id) == []


def test_paused_mentors_are_reminded_too(db):
    # Certification is about the person, not the listing: a paused mentor needs the renewal to return.
    mentor_id = mentor_expiring(db, expiring_on(RUN_DATE, 12), status="paused")
    run_expiry_sql(db)
    assert reminders_of(db, mentor_id) == [(14, RUN_DATE + timedelta(days=12))]
    assert status_of(db, mentor_id) == "paused"


def test_one_notification_per_reminder_for_the_coordinators_chapter(db):
    mentor_id = mentor_expiring(db, expiring_on(RUN_DATE, 0), name="Kari Nordmann")
    other_id = mentor_expiring(db, expiring_on(RUN_DATE, 29), org="NHF", name="Ola Nordmann")
    run_expiry_sql(db)
    run_expiry_sql(db)

    rows = db.execute(
        "select n.mentor_id, n.chapter_id = m.chapter_id, n.organization_id = m.organization_id, n.threshold_day,"
        " n.certification_expiry_date, n.days_left, n.message, n.reminder_id = r.id"
        " from coordinator_notifications n join mentors m on m.id = n.mentor_id"
        " join cert_expiry_reminders r on r.mentor_id = n.mentor_id order by n.days_left"
    ).fetchall()
    assert [(r[0], r[1], r[2], r[3], r[4], r[5], r[7]) for r in rows] == [
        (mentor_id, True, True, 7, RUN_DATE, 0, True),
        (other_id, True, True, 30, RUN_DATE + timedelta(days=29), 29, True),
    ]
    assert rows[0][6] == "Kari Nordmann's certification expires today (15.06.2026): 7-day reminder. Please arrange a renewal."
    assert "expires in 29 days (14.07.2026): 30-day reminder" in rows[1][6]


def test_counts_come_back_per_organisation_and_threshold(db):
    for days in [3, 10, 20, 25]:
        mentor_expiring(db, expiring_on(RUN_DATE, days))
    mentor_expiring(db, expiring_on(RUN_DATE, 2), org="NHF")

    first = store.create_reminders(db, RUN_DATE, sent_on=RUN_DATE)
    assert first.counts == {("HLF", 30): (2, 2), ("HLF", 14): (1, 1), ("HLF", 7): (1, 1), ("NHF", 7): (1, 1)}
    assert (first.reminders, first.notifications) == (5, 5)
    assert store.create_reminders(db, RUN_DATE, sent_on=RUN_DATE).counts == {}
