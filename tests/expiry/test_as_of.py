"""The nightly expiry's "most recent certification" is the one in force on the night: issued by
00:00 Oslo on the run date (or by p_at, if earlier). A certification issued after the night (a
renewal recorded later) does not decide that night's state or reminders when the night is re-run
(a backfill). Reminders are also decided at p_at: one superseded by then is not reminded about.
The transition asks at p_at alone: a mentor renewed since is not expired by a backfill."""

from __future__ import annotations

from datetime import timedelta

from mentor_pipeline.expiry import store
from tests.expiry.helpers import (
    RUN_DATE,
    add_certification,
    expiring_on,
    mentor_expiring,
    oslo,
    reminders_of,
    status_of,
)

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


def state_of(db, mentor_id):
    return db.execute("select certification_id, days_left, bucket from certification_state where mentor_id = %s",
                      (mentor_id,)).fetchone()


def test_certification_state_reads_the_certification_in_force_on_the_night(db):
    mentor_id = renewed_later(db)
    assert state(db, mentor_id, NIGHT) == "lt_14_days"  # 7 days left
    assert state(db, mentor_id, RENEWED_AT) == "lt_14_days"  # renewed after the night: not that night's
    assert db.execute("select bucket from certification_state_as_of(%s) where mentor_id = %s",
                      (RUN_DATE, mentor_id)).fetchone() == ("lt_14_days",)  # default: now, long after
    assert db.execute("select bucket from certification_state_as_of(%s) where mentor_id = %s",
                      (RUN_DATE + timedelta(days=1), mentor_id)).fetchone() == ("ok",)  # the next night
    # Issued the evening before the night: it decides the night.
    before = mentor_expiring(db, expiring_on(RUN_DATE, 7))
    add_certification(db, before, expiring_on(RUN_DATE, 365), issued_at=oslo(2026, 6, 14, 21))
    assert state(db, before, NIGHT) == "ok"


def test_a_rerun_night_keeps_its_state_when_a_renewal_is_issued_after_it(db):
    expiring = mentor_expiring(db, expiring_on(RUN_DATE, 10))
    [(first_certification,)] = db.execute("select id from certifications where mentor_id = %s", (expiring,)).fetchall()
    on_time = store.refresh_certification_state(db, RUN_DATE)
    assert state_of(db, expiring) == (first_certification, 10, "lt_14_days")

    # Renewed three days after the night; the night is then re-run (a backfill).
    add_certification(db, expiring, expiring_on(RUN_DATE, 375), issued_at=oslo(2026, 6, 18, 9))
    again = store.refresh_certification_state(db, RUN_DATE)
    assert again.counts == on_time.counts == {("HLF", "lt_14_days"): 1}
    assert state_of(db, expiring) == (first_certification, 10, "lt_14_days")
    # The first night after the renewal is decided by it.
    store.refresh_certification_state(db, RUN_DATE + timedelta(days=4))
    assert state_of(db, expiring)[2] == "ok"


def test_a_backfilled_night_shows_the_lapse_of_that_night_and_expires_nobody_renewed_since(db):
    lapsed = mentor_expiring(db, expiring_on(RUN_DATE, -2))
    add_certification(db, lapsed, expiring_on(RUN_DATE, 365), issued_at=oslo(2026, 6, 16, 9))

    assert store.expire_lapsed_mentors(db, RUN_DATE).total == 0  # the transition asks at its own moment
    assert status_of(db, lapsed) == "active"
    assert store.refresh_certification_state(db, RUN_DATE).counts == {("HLF", "expired"): 1}


def test_a_certification_issued_after_the_night_does_not_decide_its_reminders(db):
    mentor_id = mentor_expiring(db, expiring_on(RUN_DATE, -1))
    # Issued the day after the night, expiring 20 days after it: inside the 30-day window that night.
    renewed_expiry = expiring_on(RUN_DATE, 20)
    add_certification(db, mentor_id, renewed_expiry, issued_at=oslo(2026, 6, 16, 9))

    backfill = store.create_reminders(db, RUN_DATE, sent_on=RUN_DATE + timedelta(days=2))
    assert backfill.counts == {}
    assert reminders_of(db, mentor_id) == []

    # The night it was in force reminds about it.
    store.create_reminders(db, RUN_DATE + timedelta(days=2), sent_on=RUN_DATE + timedelta(days=2))
    assert reminders_of(db, mentor_id) == [(30, renewed_expiry.date())]


def test_reminders_follow_p_at_not_the_wall_clock(db):
    mentor_id = renewed_later(db)
    db.execute("select * from create_expiry_reminders(%s, %s, %s)", (RUN_DATE, RUN_DATE, RENEWED_AT))
    assert reminders_of(db, mentor_id) == []  # renewed by then: nothing to remind
    db.execute("select * from create_expiry_reminders(%s, %s, %s)", (RUN_DATE, RUN_DATE, NIGHT))
    assert [days for days, _ in reminders_of(db, mentor_id)] == [7]


def test_a_backfill_does_not_ask_for_a_renewal_already_recorded(db):
    expiry = expiring_on(RUN_DATE, 5)
    renewed = mentor_expiring(db, expiry, name="Renewed Rød")
    add_certification(db, renewed, expiring_on(RUN_DATE, 400), issued_at=oslo(2026, 6, 17, 9))
    not_renewed = mentor_expiring(db, expiry, name="Waiting Wold")

    # Backfilled on 18 June: the renewal recorded on the 17th needs no reminder to arrange it.
    backfill = store.create_reminders(db, RUN_DATE, now=oslo(2026, 6, 18, 10))
    assert backfill.counts == {("HLF", 7): (1, 1)}
    assert reminders_of(db, renewed) == []
    [message] = db.execute("select message from coordinator_notifications where mentor_id = %s",
                           (not_renewed,)).fetchone()
    assert message == ("Waiting Wold's certification expires in 2 days (20.06.2026): 7-day reminder."
                       " Please arrange a renewal.")
