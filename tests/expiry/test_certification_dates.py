"""Every expiry date the certifications column allows is a valid date for the pipeline: 'infinity'
(never expires), years past 9999 (beyond Python's date) and a long-gone BC date. No view,
command or metadata fails on them, and every other mentor is handled as usual."""

from __future__ import annotations

import json

import pytest

from mentor_pipeline.cli import main
from mentor_pipeline.expiry.run import run_nightly_expiry
from mentor_pipeline.reconcile import duplicates
from mentor_pipeline.reconcile.checks import markdown_table
from tests.expiry.helpers import RUN_DATE, expiring_on, mentor_expiring, reminders_of, status_of
from tests.support.factories import move_status_changes


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (astronomical years: 1 BC = 0),
    for dates Python's date cannot hold (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def days_after_run_date(year: int, month: int, day: int) -> int:
    return days_from_civil(year, month, day) - days_from_civil(RUN_DATE.year, RUN_DATE.month, RUN_DATE.day)


# expires_at literal -> (bucket, valid as of the run date, days left, listed on the website). The
# instants are at noon or midnight UTC, the same calendar day in Oslo.
DATES = {
    "infinity": ("ok", True, None, True),
    "20000-01-01 12:00+00": ("ok", True, days_after_run_date(20000, 1, 1), True),
    "294276-12-31 00:00+00": ("ok", True, days_after_run_date(294276, 12, 31), True),
    "4000-01-01 12:00+00 BC": ("expired", False, days_after_run_date(-3999, 1, 1), False),
}
IDS = ["infinity", "year-20000", "year-294276", "bc"]


def far_mentor(db, expires_literal: str, name: str):
    mentor_id = mentor_expiring(db, None, name=name)
    db.execute("insert into certifications (mentor_id, issued_at, expires_at) values (%s, '-infinity', %s)",
               (mentor_id, expires_literal))
    return mentor_id


@pytest.mark.parametrize("expires", list(DATES), ids=IDS)
def test_views_and_the_nightly_run_take_any_expiry_date(db, expires):
    bucket, valid, days_left, listed = DATES[expires]
    far = far_mentor(db, expires, "Far Future")
    soon = mentor_expiring(db, expiring_on(RUN_DATE, 3), name="Soon Solberg")

    result = run_nightly_expiry(db, RUN_DATE, sent_on=RUN_DATE)

    # Every column of every row, computed by the server and handed over as JSON text.
    rows = {row["full_name"]: row for (row,) in db.execute(
        "select to_jsonb(s) || jsonb_build_object('full_name', m.full_name)"
        " from certification_state s join mentors m on m.id = s.mentor_id").fetchall()}
    assert (rows["Far Future"]["bucket"], rows["Far Future"]["valid_as_of_run_date"]) == (bucket, valid)
    assert rows["Far Future"]["days_left"] == days_left
    assert rows["Soon Solberg"]["days_left"] == 3
    assert db.execute("select should_be_listed from mentor_website_desired_state where mentor_id = %s",
                      (far,)).fetchone() == (listed,)
    assert status_of(db, far) == ("active" if valid else "expired_cert")
    assert reminders_of(db, far) == [] and len(reminders_of(db, soon)) == 1
    assert result.reminders.reminders == 1


@pytest.mark.parametrize("expires", list(DATES), ids=IDS)
def test_mentor_list_shows_any_expiry_date_and_everyone_else(db, capsys, expires):
    far_mentor(db, expires, "Far Future")
    mentor_expiring(db, expiring_on(RUN_DATE, 3), name="Soon Solberg")

    assert main(["mentor", "list"]) == 0
    out = capsys.readouterr().out
    [far_line] = [line for line in out.splitlines() if "Far Future" in line]
    shown = db.execute("select oslo_date(%s::timestamptz)::text", (expires,)).fetchone()[0]
    assert f" {shown} " in far_line
    assert "Soon Solberg" in out and (RUN_DATE.replace(day=18).isoformat() in out)


def test_duplicates_check_and_alert_carry_an_infinite_certification(db):
    far = far_mentor(db, "infinity", "Far Future")
    for status in ("expired_cert", "active", "expired_cert"):  # marked by hand, twice
        db.execute("update mentors set status = %s where id = %s", (status, far))
    move_status_changes(db)  # the tick: the hand-made changes reach the audit trail

    [row] = duplicates(db)
    assert (row["kind"], row["certification_expiry_date"]) == ("expired_cert_transition", "infinity")
    assert "infinity" in markdown_table([row], ["kind", "certification_expiry_date"])
    json.dumps({k: str(v) for k, v in row.items()})  # the alert's details serialise
