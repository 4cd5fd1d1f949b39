"""`mentor-pipeline expiry [--date YYYY-MM-DD]` for operators without the daemon."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mentor_pipeline.cli import main
from mentor_pipeline.expiry.dates import today_in_oslo
from tests.expiry.helpers import RUN_DATE, expiring_on, mentor_expiring, outcome

TODAY = today_in_oslo()


def test_prints_what_it_did_and_a_rerun_adds_nothing(db, capsys):
    mentor_expiring(db, expiring_on(TODAY, -2), name="Lapsed Larsen")
    mentor_expiring(db, expiring_on(TODAY, 6), name="Soon Solberg")
    mentor_expiring(db, None, name="Gap Gundersen")

    assert main(["expiry", "--date", TODAY.isoformat()]) == 0
    out = capsys.readouterr().out
    assert f"nightly expiry for {TODAY.isoformat()} (Europe/Oslo)" in out
    assert "transitions: 1 mentors moved from active to expired_cert (HLF 1)" in out
    assert "certification state: 3 mentors: expired 1, < 7 days 1, < 14 days 0, < 30 days 0, ok 0, no certification 1" in out
    assert "active without any certification (not transitioned): 1" in out and "Gap Gundersen (HLF, HLF Oslo)" in out
    assert "reminders: 1 new (7-day 1), coordinator notifications: 1 new" in out

    assert main(["expiry", "--date", TODAY.isoformat()]) == 0
    again = capsys.readouterr().out
    assert "transitions: 0 mentors" in again and "reminders: 0 new, coordinator notifications: 0 new" in again


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-13-01", "invalid run date '2026-13-01': expected a calendar date as YYYY-MM-DD"),
        ("2026-02-30", "invalid run date '2026-02-30'"),
        ("26-06-15", "invalid run date '26-06-15'"),
        ("2999-01-01", "run date 2999-01-01 is in the future (today in Europe/Oslo is"),
        ((TODAY - timedelta(days=4)).isoformat(),
         f"is 4 days ago (today in Europe/Oslo is {TODAY.isoformat()}): nights more than 3 days back run only"
         " as a backfill (--backfill); reminders then go out only for certifications still valid today"),
        ("0001-01-01", "run date 0001-01-01 is "),
        ("0001-01-01 --backfill", "a backfill reaches back at most 366 days; check the date"),
        ((TODAY - timedelta(days=367)).isoformat() + " --backfill", "is 367 days ago"),
    ],
    ids=["month-13", "feb-30", "short-year", "future", "4-days-ago", "year-1", "year-1-backfill", "over-a-year"],
)
def test_bad_input_is_one_clear_line_and_changes_nothing(db, capsys, value, message):
    mentor_expiring(db, expiring_on(RUN_DATE, -2))
    mentor_expiring(db, expiring_on(RUN_DATE, 3))
    before = outcome(db)

    assert main(["expiry", "--date", *value.split()]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mentor-pipeline expiry: error: ") and message in lines[0]
    assert outcome(db) == before


def test_default_date_is_today_in_oslo(db, capsys):
    from mentor_pipeline.expiry.dates import today_in_oslo

    today = today_in_oslo()
    mentor_expiring(db, expiring_on(today, 1))
    assert main(["expiry"]) == 0
    assert f"nightly expiry for {today.isoformat()}" in capsys.readouterr().out
    assert db.execute("select run_date, threshold_day from cert_expiry_reminders").fetchall() == [(today, 7)]


def test_an_organisation_with_invalid_thresholds_is_skipped_with_a_warning_and_the_others_run(db, capsys):
    from mentor_pipeline.expiry.dates import today_in_oslo
    from tests.expiry.helpers import plant_thresholds, reminders_of, status_of

    today = today_in_oslo()
    hlf = mentor_expiring(db, expiring_on(today, 3))
    nhf_soon = mentor_expiring(db, expiring_on(today, 3), org="NHF")
    nhf_lapsed = mentor_expiring(db, expiring_on(today, -1), org="NHF")
    plant_thresholds(db, "NHF", "{400}")

    assert main(["expiry"]) == 0
    captured = capsys.readouterr()
    assert "reminders: 1 new (7-day 1)" in captured.out
    assert captured.err.strip().splitlines()[-1] == (
        "warning: no expiry reminders for NHF: its thresholds are invalid (thresholds are at most 365 days, got 400);"
        " other organisations ran as usual. Fix expiry_threshold_config for NHF.")
    assert reminders_of(db, hlf) and not reminders_of(db, nhf_soon)
    assert status_of(db, nhf_lapsed) == "expired_cert"


def test_a_backfill_reminds_only_about_certifications_still_valid_today(db, capsys):
    night = TODAY - timedelta(days=10)
    lapsed = mentor_expiring(db, expiring_on(TODAY, -5), name="Lapsed Lund")  # 5 days left that night
    valid = mentor_expiring(db, expiring_on(TODAY, 2), name="Valid Vik")  # 12 days left that night

    assert main(["expiry", "--date", night.isoformat(), "--backfill"]) == 0
    assert "reminders: 1 new (14-day 1)" in capsys.readouterr().out
    assert db.execute("select count(*) from cert_expiry_reminders where mentor_id = %s", (lapsed,)).fetchone() == (0,)
    [(message, run_date)] = db.execute(
        "select n.message, r.run_date from coordinator_notifications n join cert_expiry_reminders r on r.id = n.reminder_id"
        " where n.mentor_id = %s", (valid,)).fetchall()
    expiry = TODAY + timedelta(days=2)
    assert message == (f"Valid Vik's certification expires in 2 days ({expiry:%d.%m.%Y}): 14-day reminder."
                       " Please arrange a renewal.")
    assert run_date == night


def test_reminders_cannot_be_sent_before_their_night(db):
    import psycopg

    with pytest.raises(psycopg.errors.InvalidParameterValue,
                       match="reminders for the night of 2026-06-15 cannot be sent on 2026-06-14, before that night"):
        db.execute("select * from create_expiry_reminders('2026-06-15', '2026-06-14')")
