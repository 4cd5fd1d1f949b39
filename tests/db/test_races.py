"""Races between the pipeline and the app under READ COMMITTED, each made deterministic: one
session holds its transaction open at the point that matters while the other acts. Threads run a
statement that may block; `blocked_or_done` waits (a coordination poll, not a timing) until it
either finished or waits on a lock."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import psycopg
import pytest

from mentor_pipeline.operations.store import raise_incident
from mentor_pipeline.sync import store
from mentor_pipeline.sync.store import Outcome, QueuePolicy
from tests.support.factories import certify, mentor, move_status_changes, next_writes, queue_rows, set_status
from tests.support.polling import wait_for
from tests.sync.helpers import db_now


class Statement(threading.Thread):
    """Runs `sql` (or `call()`) on `conn` in a thread and keeps the error, if any."""

    def __init__(self, conn: psycopg.Connection, sql: str = "", params=(), *, call=None):
        super().__init__(daemon=True)
        self.conn = conn
        self.call = call or (lambda: conn.execute(sql, params))
        self.error: BaseException | None = None

    def run(self):
        try:
            self.call()
        except BaseException as exc:  # noqa: BLE001 - the test asserts on it
            self.error = exc


def blocked_or_done(db, statement: Statement) -> str:
    """Wait until the statement finished ('done') or its backend waits on a lock ('blocked')."""
    pid = statement.conn.info.backend_pid

    def state():
        if not statement.is_alive():
            return "done"
        (waiting,) = db.execute("select wait_event_type = 'Lock' from pg_stat_activity where pid = %s",
                                (pid,)).fetchone()
        return "blocked" if waiting else None

    return wait_for(state)


def drain_once(db, now=None) -> None:
    """A processor's pass without HTTP: the tick, then claim what is due and record as written what
    the rule says (at `now`, default the database's clock)."""
    store.tick(db, now)
    token = uuid.uuid4()
    rows = store.claim_batch(db, 1000, timedelta(minutes=2), token, now)
    desired = store.desired_listing(db, [r.mentor_id for r in rows], now)
    written = [desired[r.mentor_id] for r in rows]
    store.record_outcomes(db, token, [Outcome(r.id, "done", listed=w.should_be_listed,
                                              chapter=w.chapter_name if w.should_be_listed else None)
                                      for r, w in zip(rows, written)], QueuePolicy(), now)


def settle(db) -> None:
    """Tick until no change waits for a re-check (transactions elsewhere on the
    server may still be running: coordination, not a timing)."""
    def settled():
        store.tick(db)
        (notes,) = db.execute("select to_regclass('website_sync_rechecks')").fetchone()
        return notes is None or not db.execute("select from website_sync_rechecks limit 1").fetchall()

    wait_for(settled)


# -- the nightly transition and the app ----------------------------------------------------------

def test_the_nightly_transition_never_makes_a_certification_renewal_the_deadlock_victim(db_url, db):
    # Three lapsed mentors, in the order the transition locks them (by id).
    a, b, c = sorted(mentor(db, cert_expires_in=timedelta(days=-1)) for _ in range(3))
    with psycopg.connect(db_url) as other, psycopg.connect(db_url) as app, psycopg.connect(db_url) as night:
        # Somebody edits mentor c: the transition's locking pass will wait there, holding a and b.
        other.execute("update mentors set full_name = full_name || '.' where id = %s", (c,))
        # The app corrects b's certification (the outbox now holds b's pending row for the app).
        app.execute("update certifications set expires_at = expires_at + interval '1 second' where mentor_id = %s", (b,))
        expiry = Statement(night, "select * from expire_mentors_with_lapsed_certifications(now())")
        expiry.start()
        assert blocked_or_done(db, expiry) == "blocked"
        # The app renews a's certification: an insert, which only needs a's key to stay put.
        renewal = Statement(app, "insert into certifications (mentor_id, issued_at, expires_at)"
                                 " values (%s, now() - interval '1 day', now() + interval '365 days')", (a,))
        renewal.start()
        if blocked_or_done(db, renewal) == "done":
            app.commit()  # the renewal is in before the transition decides
        other.rollback()
        renewal.join(30)
        if renewal.error is None:
            app.commit()
        expiry.join(30)
        night.commit()

    assert renewal.error is None, f"the app's renewal failed: {renewal.error!r}"
    assert expiry.error is None
    statuses = dict(db.execute("select id, status from mentors where id = any(%s)", ([a, b, c],)).fetchall())
    assert statuses == {a: "active", b: "expired_cert", c: "expired_cert"}


# -- an organisation switching website sync on while the app changes one of its mentors -----------

APP_CHANGES = {
    # change, certification the mentor has, listed once both committed
    "paused": ("update mentors set status = 'paused' where id = %(m)s", timedelta(days=365), False),
    "deleted": ("delete from mentors where id = %(m)s", timedelta(days=365), False),
    "renewed": ("insert into certifications (mentor_id, issued_at, expires_at)"
                " values (%(m)s, now() - interval '1 day', now() + interval '365 days')", timedelta(days=-1), True),
}


@pytest.mark.parametrize("change", sorted(APP_CHANGES))
def test_a_change_racing_the_website_sync_switch_is_written_after_both_commit(db_url, db, change):
    sql, cert, listed = APP_CHANGES[change]
    m = mentor(db, "ACME", cert_expires_in=cert)  # ACME has no website sync yet
    with psycopg.connect(db_url) as app, psycopg.connect(db_url, autocommit=True) as admin:
        # The app's change is in flight: it saw ACME without website sync, so it marked nothing.
        app.execute(sql, {"m": m})
        switch = Statement(admin, "update organizations set website_sync_enabled = true where code = 'ACME'")
        switch.start()
        if blocked_or_done(db, switch) == "done":
            # A drain writes what the switch marked, as the rule says before the app commits.
            drain_once(db)
        app.commit()
        switch.join(30)
    assert switch.error is None
    settle(db)
    drain_once(db)

    assert store.listing_state(db, [m])[m].listed is listed


def test_a_change_racing_the_switch_while_its_write_is_in_flight_is_written_again(db_url, db):
    m = mentor(db, "ACME", cert_expires_in=timedelta(days=365))
    with psycopg.connect(db_url) as app:
        app.execute("update mentors set status = 'paused' where id = %s", (m,))  # saw ACME without sync
        db.execute("update organizations set website_sync_enabled = true where code = 'ACME'")
        # A processor claims the switch's row and reads the rule before the app commits ...
        token = uuid.uuid4()
        [row] = store.claim_batch(db, 10, timedelta(minutes=2), token)
        assert store.desired_listing(db, [m])[m].should_be_listed is True
        app.commit()
        settle(db)
        # ... and records its write (listed) only after the re-check ran.
        store.record_outcomes(db, token, [Outcome(row.id, "done", listed=True)], QueuePolicy())
    drain_once(db)

    assert store.listing_state(db, [m])[m].listed is False


def test_a_switch_written_with_the_right_answers_is_not_written_twice(db):
    listed, paused = mentor(db, "ACME", cert_expires_in=timedelta(days=365)), mentor(db, "ACME", status="paused")
    db.execute("update organizations set website_sync_enabled = true where code = 'ACME'")
    drain_once(db)
    settle(db)

    assert {m: s.listed for m, s in store.listing_state(db, [listed, paused]).items()} == {listed: True, paused: False}
    assert [r["status"] for r in queue_rows(db, listed) + queue_rows(db, paused)] == ["done", "done"]


# -- a reinstatement racing a renewal --------------------------------------------------------------

def test_a_reinstatement_racing_a_renewal_is_listed_once_both_commit(db_url, db):
    m = mentor(db, status="paused", cert_expires_in=timedelta(days=-1))
    with psycopg.connect(db_url) as coordinator:
        # Reinstated while the only certification has lapsed: no write (a warning in the audit).
        coordinator.execute("update mentors set status = 'active' where id = %s", (m,))
        # Meanwhile the app records the renewal and commits; a drain writes it before the
        # reinstatement commits: the mentor is still paused for everyone else.
        certify(db, m, expires_in=timedelta(days=365), issued_ago=timedelta(days=1), settled=False)
        drain_once(db)
        assert store.listing_state(db, [m])[m].listed is False
        coordinator.commit()
    settle(db)
    drain_once(db)

    assert store.listing_state(db, [m])[m].listed is True


# -- recording outcomes while the app marks the same mentors -------------------------------------

def test_recording_retries_and_the_app_marking_the_same_mentors_never_wait_for_each_other(db_url, db):
    m1, m2 = mentor(db), mentor(db)
    set_status(db, m1, "paused")
    set_status(db, m2, "paused")
    token = uuid.uuid4()
    r1, r2 = sorted(r.id for r in store.claim_batch(db, 10, timedelta(minutes=2), token))
    with psycopg.connect(db_url) as app, psycopg.connect(db_url, autocommit=True) as drain:
        # The app reinstates m2: a new row, not committed yet.
        app.execute("update mentors set status = 'active' where id = %s", (m2,))
        # The drain puts both rows back for a retry: nothing of the app's is in its way.
        outcomes = [Outcome(r1, "retry", "503"), Outcome(r2, "retry", "503")]
        record = Statement(drain, call=lambda: store.record_outcomes(drain, token, outcomes, QueuePolicy()))
        record.start()
        assert blocked_or_done(db, record) == "done"
        # The app reinstates m1 too, in the same transaction: the drain's row of m1 is no obstacle.
        reinstate = Statement(app, "update mentors set status = 'active' where id = %s", (m1,))
        reinstate.start()
        assert blocked_or_done(db, reinstate) == "done"
        app.commit()

    assert (reinstate.error, record.error) == (None, None)
    rows = queue_rows(db)
    assert not [r for r in rows if r["status"] == "processing"]
    # The next drain writes each mentor once, with the app's reinstatement, its retry absorbed.
    assert sorted((w["mentor_id"], w["operation"], w["attempts"]) for w in next_writes(db)) == sorted(
        [(m1, "restore", 0), (m2, "restore", 0)])


# -- races that are safe: the tests say why -----------------------------------------------------

def test_two_app_transactions_marking_one_mentor_never_wait_for_each_other(db_url, db):
    m = mentor(db)
    with psycopg.connect(db_url) as first, psycopg.connect(db_url) as second:
        first.execute("update mentors set status = 'paused' where id = %s", (m,))
        renewal = Statement(second, "insert into certifications (mentor_id, issued_at, expires_at)"
                                    " values (%s, now() - interval '1 day', now() + interval '365 days')", (m,))
        renewal.start()
        # Each appends its own row: the renewal waits for nothing.
        assert blocked_or_done(db, renewal) == "done"
        second.commit()
        first.commit()
    assert renewal.error is None
    assert sorted(r["triggered_by_event"] for r in queue_rows(db, m)) == ["certification_change", "status_change"]
    [write] = next_writes(db, m)  # one write, which reads the rule when it is made
    assert write["id"] == max(r["id"] for r in queue_rows(db, m))


def test_the_app_marking_a_mentor_whose_row_a_claim_is_taking_never_waits_for_the_claim(db_url, db):
    m = mentor(db)
    set_status(db, m, "paused")
    with psycopg.connect(db_url) as drain, psycopg.connect(db_url) as app:
        [(claimed,)] = drain.execute("select id from claim_sync_batch(10, '2 minutes', gen_random_uuid())").fetchall()
        reinstate = Statement(app, "update mentors set status = 'active' where id = %s", (m,))
        reinstate.start()
        assert blocked_or_done(db, reinstate) == "done"
        app.commit()
        drain.commit()
    assert reinstate.error is None
    assert [(r["id"] == claimed, r["status"], r["operation"]) for r in queue_rows(db, m)] == [
        (True, "processing", "remove"), (False, "pending", "restore")]


def test_a_drain_whose_lease_was_taken_over_records_nothing_and_extends_nothing(db_url, db):
    m = mentor(db)
    set_status(db, m, "paused")
    lease = timedelta(seconds=30)
    first_token, second_token = uuid.uuid4(), uuid.uuid4()
    [row] = store.claim_batch(db, 10, lease, first_token)
    later = row.locked_until + timedelta(seconds=1)
    with psycopg.connect(db_url) as second, psycopg.connect(db_url, autocommit=True) as first:
        # The second drain takes the row over (not committed yet) while the first one records.
        second.execute("select * from claim_sync_batch(10, %s, %s, %s)", (lease, second_token, later))
        recorded: list = []
        late = Statement(first, call=lambda: recorded.extend(
            store.record_outcomes(first, first_token, [Outcome(row.id, "done", listed=False)], QueuePolicy(), later)))
        late.start()
        assert blocked_or_done(db, late) == "blocked"
        second.commit()
        late.join(30)
        assert late.error is None and recorded == []
        assert store.extend_lease(first, first_token, lease, later) == 0
    [done] = store.record_outcomes(db, second_token, [Outcome(row.id, "done", listed=False)], QueuePolicy(), later)
    assert (done.id, done.status, done.attempts) == (row.id, "done", 1)
    assert store.listing_state(db, [m])[m].last_queue_id == row.id


def test_two_processes_raising_one_incident_at_once_open_it_once(db_url, db):
    with psycopg.connect(db_url) as first, psycopg.connect(db_url, autocommit=True) as second:
        opened = raise_incident(first, "dynamics_unreachable", "", "first")  # commits
        first.execute("select * from resolve_incident('dynamics_unreachable', '', 'back', now())")
        # Resolved but not committed: the second raiser waits on the row, then reopens it once.
        notices: list = []
        raiser = Statement(second, call=lambda: notices.append(
            raise_incident(second, "dynamics_unreachable", "", "second")))
        raiser.start()
        assert blocked_or_done(db, raiser) == "blocked"
        again = first.execute("select notify from raise_incident('dynamics_unreachable', '', 'third', '{}',"
                              " array[interval '1 hour'], now())").fetchone()
        first.commit()
        raiser.join(30)
    assert raiser.error is None
    assert opened.notify == "open"
    # The first process reopened it inside its transaction; the second only counted itself.
    assert (again[0], notices[0].notify, notices[0].incident.occurrences) == ("open", None, 2)


def test_a_certification_committed_after_the_clock_passed_its_expiry_is_written_as_lapsed(db_url, db):
    m = mentor(db)
    start = db_now(db)
    with psycopg.connect(db_url) as app:
        # A new most recent certification that lapses a minute from now, not committed yet.
        app.execute("insert into certifications (mentor_id, issued_at, expires_at) values (%s, %s, %s)",
                    (m, start - timedelta(hours=1), start + timedelta(minutes=1)))
        # The clock moves past that expiry without seeing it.
        assert store.tick(db, start + timedelta(minutes=2)).clock_marked == 0
        app.commit()
    # The insert marked the mentor itself; the drain reads the rule when it writes: lapsed.
    drain_once(db, start + timedelta(minutes=2))
    assert store.listing_state(db, [m])[m].listed is False


# -- the outbox never makes the app wait ----------------------------------------------------------

def test_two_app_transactions_changing_two_mentors_in_opposite_order_do_not_deadlock(db_url, db):
    a, b = mentor(db), mentor(db)
    renew = ("insert into certifications (mentor_id, issued_at, expires_at)"
             " values (%s, now() - interval '1 day', now() + interval '365 days')")
    with psycopg.connect(db_url) as first, psycopg.connect(db_url) as second:
        first.execute(renew, (a,))
        second.execute("update mentors set status = 'paused' where id = %s", (b,))
        crossing = Statement(first, renew, (b,))
        crossing.start()
        assert blocked_or_done(db, crossing) == "done"
        other_way = Statement(second, renew, (a,))
        other_way.start()
        assert blocked_or_done(db, other_way) == "done"
        first.commit()
        second.commit()
    assert (crossing.error, other_way.error) == (None, None)
    assert sorted(w["mentor_id"] for w in next_writes(db)) == sorted([a, b])


def test_two_reminder_runs_at_once_remind_and_notify_once(db_url, db):
    mentor(db, cert_expires_in=timedelta(days=5))
    (today,) = db.execute("select oslo_date(now())").fetchone()
    with psycopg.connect(db_url) as first, psycopg.connect(db_url) as second:
        made = first.execute("select reminders, notifications from create_expiry_reminders(%s)", (today,)).fetchall()
        again = Statement(second, "select * from create_expiry_reminders(%s)", (today,))
        again.start()
        # The advisory lock: the second run starts deciding only once the first has committed.
        assert blocked_or_done(db, again) == "blocked"
        first.commit()
        again.join(30)
        second.commit()
    assert again.error is None
    assert made == [(1, 1)]
    assert db.execute("select (select count(*) from cert_expiry_reminders),"
                      " (select count(*) from coordinator_notifications)").fetchone() == (1, 1)


def test_the_nightly_transition_leaves_a_mentor_a_coordinator_is_pausing_alone(db_url, db):
    m = mentor(db, cert_expires_in=timedelta(days=-1))
    with psycopg.connect(db_url) as coordinator, psycopg.connect(db_url) as night:
        coordinator.execute("set local mentor_pipeline.triggered_by_event = 'manual_coordinator_action'")
        coordinator.execute("update mentors set status = 'paused' where id = %s", (m,))
        expiry = Statement(night, "select * from expire_mentors_with_lapsed_certifications(now())")
        expiry.start()
        assert blocked_or_done(db, expiry) == "blocked"
        coordinator.commit()
        expiry.join(30)
        night.commit()
    assert expiry.error is None
    assert move_status_changes(db) == 1  # the tick after both: the coordinator's change only
    assert db.execute("select status from mentors where id = %s", (m,)).fetchone() == ("paused",)
    assert db.execute("select old_status, new_status, triggered_by_event from mentor_status_audit"
                      " where mentor_id = %s", (m,)).fetchall() == [("active", "paused", "manual_coordinator_action")]
