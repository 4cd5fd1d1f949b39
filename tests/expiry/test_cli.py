"""`mentor-pipeline expiry [--date YYYY-MM-DD]` for operators without the daemon."""

from __future__ import annotations


import pytest

from mentor_pipeline.cli import main
from tests.expiry.helpers import RUN_DATE, expiring_on, mentor_expiring, outcome


def test_prints_what_it_did_and_a_rerun_adds_nothing(db, capsys):
    mentor_expiring(db, expiring_on(RUN_DATE, -2), name="Lapsed Larsen")
    mentor_expiring(db, expiring_on(RUN_DATE, 6), name="Soon Solberg")
    mentor_expiring(db, None, name="Gap Gundersen")

    assert main(["expiry", "--date", RUN_DATE.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "nightly expiry for 2026-06-15 (Europe/Oslo)" in out
    assert "transitions: 1 mentors moved from active to expired_cert (HLF 1)" in out
    assert "certification state: 3 mentors: expired 1, < 7 days 1, < 14 days 0, < 30 days 0, ok 0, no certification 1" in out
    assert "active without any certification (not transitioned): 1" in out and "Gap Gundersen (HLF, HLF Oslo)" in out
    assert "reminders: 1 new (7-day 1), coordinator notifications: 1 new" in out

    assert main(["expiry", "--date", RUN_DATE.isoformat()]) == 0
    again = capsys.readouterr().out
    assert "transitions: 0 mentors" in again and "reminders: 0 new, coordinator notifications: 0 new" in again


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-13-01", "invalid run date '2026-13-01': expected a calendar date as YYYY-MM-DD"),
        ("2026-02-30", "invalid run date '2026-02-30'"),
        ("26-06-15", "invalid run date '26-06-15'"),
        ("2999-01-01", "run date 2999-01-01 is in the future (today in Europe/Oslo is"),
    ],
)
def test_bad_input_is_one_clear_line_and_changes_nothing(db, capsys, value, message):
    mentor_expiring(db, expiring_on(RUN_DATE, -2))
    mentor_expiring(db, expiring_on(RUN_DATE, 3))
    before = outcome(db)

    assert main(["expiry", "--date", value]) == 1
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
