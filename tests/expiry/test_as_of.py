"""The nightly expiry decides "most recent certification" at an injectable moment (p_at): a
renewal issued after that moment does not decide it, and one issued before it does."""

from __future__ import annotations

from datetime import timedelta

from tests.expiry.helpers import RUN_DATE, add_certification, expiring_on, mentor_expiring, oslo, reminders_of

NIGHT = oslo(RUN_DATE.year, RUN_DATE.month, RUN_DATE.day, 2)  # 02:00 Oslo on the run date
RENEWED_AT = NIGHT + timedelta(hours=6)


def renewed_later(db):
    """A mentor whose certification has 7 days left that night, renewed the next morning."""
    mentor_id = mentor_expiring(db, expiring_on(RUN_DATE, 7))
    add_certification(db, mentor_id, RENEWED_AT + timedelta(days=365), issued_at=RENEWED_AT)
    return mentor_id


def state(db, mentor_id, at):
    return db.execute("select bucket from certification_state_as_of(%s, %s) where mentor_id = %s",
                      (RUN_DATE, at, mentor_id)).fetchone()[0]


def test_certification_state_reads_the_certification_most_recent_at_p_at(db):
    mentor_id = renewed_later(db)
    assert state(db, mentor_id, NIGHT) == "lt_14_days"  # 7 days left
    assert state(db, mentor_id, RENEWED_AT) == "ok"
    assert db.execute("select bucket from certification_state_as_of(%s) where mentor_id = %s",
                      (RUN_DATE, mentor_id)).fetchone() == ("ok",)  # default: now, after the renewal


def test_reminders_follow_p_at_not_the_wall_clock(db):
    mentor_id = renewed_later(db)
    db.execute("select * from create_expiry_reminders(%s, %s, %s)", (RUN_DATE, RUN_DATE, RENEWED_AT))
    assert reminders_of(db, mentor_id) == []  # renewed by then: nothing to remind
    db.execute("select * from create_expiry_reminders(%s, %s, %s)", (RUN_DATE, RUN_DATE, NIGHT))
    assert [days for days, _ in reminders_of(db, mentor_id)] == [7]
