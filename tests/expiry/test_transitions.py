"""Auto-transition active -> expired_cert through expire_mentors_with_lapsed_certifications()."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from mentor_pipeline.expiry import store
from tests.expiry.helpers import (
    RUN_DATE,
    add_certification,
    expiring_on,
    mentor_expiring,
    reminders_of,
    run_expiry_sql,
    status_of,
)
from tests.support.db import wait_for_lock_waiters
from tests.support.factories import move_status_changes, queue_rows, set_status


def audit(db, mentor_id):
    """The mentor's audit rows, as the pipeline sees them after its tick (the status changes
    committed so far moved in first)."""
    move_status_changes(db)
    return db.execute(
        "select old_status, new_status, triggered_by_event, sync_operation from mentor_status_audit"
        " where mentor_id = %s order by id", (mentor_id,)).fetchall()


def test_lapsed_hlf_mentor_is_expired_and_removed_from_the_website_as_nightly_expiry(db):
    mentor_id = mentor_expiring(db, expiring_on(RUN_DATE, -3))
    moved = store.expire_lapsed_mentors(db, RUN_DATE)

    assert (moved.total, moved.by_organization, moved.sample_mentor_ids) == (1, {"HLF": 1}, [str(mentor_id)])
    assert status_of(db, mentor_id) == "expired_cert"
    [row] = queue_rows(db, mentor_id)
    assert (row["operation"], row["triggered_by_event"], row["status"]) == ("remove", "nightly_expiry", "pending")
    assert audit(db, mentor_id) == [("active", "expired_cert", "nightly_expiry", "remove")]


def test_nhf_mentors_get_reminders_and_transitions_but_no_website_sync(db):
    lapsed = mentor_expiring(db, expiring_on(RUN_DATE, -1), org="NHF")
    expiring = mentor_expiring(db, expiring_on(RUN_DATE, 6), org="NHF")
    run_expiry_sql(db)

    assert status_of(db, lapsed) == "expired_cert"
    assert reminders_of(db, expiring) == [(7, RUN_DATE + timedelta(days=6))]
    assert db.execute("select count(*) from coordinator_notifications where mentor_id = %s", (expiring,)).fetchone() == (1,)
    assert queue_rows(db) == []
    assert audit(db, lapsed) == [("active", "expired_cert", "nightly_expiry", None)]


@pytest.mark.parametrize("status", ["paused", "expired_cert"])
def test_mentors_not_active_are_left_alone(db, status):
    mentor_id = mentor_expiring(db, expiring_on(RUN_DATE, -10), status=status)
    assert store.expire_lapsed_mentors(db, RUN_DATE).total == 0
    assert status_of(db, mentor_id) == status
    assert audit(db, mentor_id) == []


def test_active_without_any_certification_is_counted_not_transitioned(db):
    gap = mentor_expiring(db, None, name="Nora Gap")
    mentor_expiring(db, None, status="paused", name="Paused Gap")  # not active: not a gap to report
    run_expiry_sql(db)

    assert status_of(db, gap) == "active"
    gaps = store.certification_gaps(db)
    assert gaps.total == 1
    assert [(g["full_name"], g["organization"]) for g in gaps.sample] == [("Nora Gap", "HLF")]


def test_reinstated_with_a_new_certification_a_second_ago_is_left_alone(db):
    mentor_id = mentor_expiring(db, expiring_on(RUN_DATE, -20), status="expired_cert")
    now = datetime.now(timezone.utc)
    add_certification(db, mentor_id, now + timedelta(days=730), issued_at=now - timedelta(seconds=1))
    set_status(db, mentor_id, "active")

    run_expiry_sql(db)
    assert status_of(db, mentor_id) == "active"
    assert [row[2] for row in audit(db, mentor_id)] == ["status_change"]


def _run_transition_in_thread(db_url, results):
    def target():
        with psycopg.connect(db_url) as conn:
            results.append(store.expire_lapsed_mentors(conn, RUN_DATE))

    thread = threading.Thread(target=target)
    thread.start()
    return thread


def test_renewal_committed_while_the_transition_waits_wins(db_url, db):
    # The coordinator records a renewal (new certification + touch of the mentor row) in one
    # transaction; the nightly run starts before it commits and has to wait for the row. When it
    # gets the row it must decide on the renewed certification, not on what it saw at the start.
    mentor_id = mentor_expiring(db, expiring_on(RUN_DATE, -2))
    with psycopg.connect(db_url) as coordinator:
        now = datetime.now(timezone.utc)
        add_certification(coordinator, mentor_id, now + timedelta(days=365), issued_at=now, settled=False)
        coordinator.execute("update mentors set updated_at = now() where id = %s", (mentor_id,))

        results: list = []
        thread = _run_transition_in_thread(db_url, results)
        wait_for_lock_waiters(db, 1)
        coordinator.commit()
    thread.join(30)

    assert results[0].total == 0
    assert status_of(db, mentor_id) == "active"
    # No removal by the nightly run; the renewal itself marked the mentor for a listing write.
    assert [(r["operation"], r["triggered_by_event"]) for r in queue_rows(db, mentor_id)] == [
        ("add", "certification_change")]


def test_pause_committed_while_the_transition_waits_is_left_alone(db_url, db):
    mentor_id = mentor_expiring(db, expiring_on(RUN_DATE, -2))
    with psycopg.connect(db_url) as coordinator:
        coordinator.execute("update mentors set status = 'paused' where id = %s", (mentor_id,))
        results: list = []
        thread = _run_transition_in_thread(db_url, results)
        wait_for_lock_waiters(db, 1)
        coordinator.commit()
    thread.join(30)

    assert results[0].total == 0
    assert status_of(db, mentor_id) == "paused"
    assert [row[1] for row in audit(db, mentor_id)] == ["paused"]


def test_a_future_as_of_is_refused(db):
    mentor_expiring(db, expiring_on(RUN_DATE, -2))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="in the future"):
        db.execute("select * from expire_mentors_with_lapsed_certifications(now() + interval '1 day')")
    assert db.execute("select count(*) from mentors where status = 'expired_cert'").fetchone() == (0,)


def test_the_transition_decides_at_the_time_it_is_given(db):
    # A night a month from now, run at its own time instead of waiting for it.
    night = datetime.now(timezone.utc).date() + timedelta(days=30)
    lapsed = mentor_expiring(db, expiring_on(night, -1))
    renewed_in_time = mentor_expiring(db, expiring_on(night, -1))
    add_certification(db, renewed_in_time, expiring_on(night, 700), issued_at=expiring_on(night, -1, hour=6))
    renewed_too_late = mentor_expiring(db, expiring_on(night, -1))
    add_certification(db, renewed_too_late, expiring_on(night, 700), issued_at=expiring_on(night, 1))
    (start,) = db.execute("select expiry_run_start(%s)", (night,)).fetchone()

    with pytest.raises(psycopg.errors.InvalidParameterValue, match="in the future"):
        store.expire_lapsed_mentors(db, night)  # the database's clock has not got there
    moved = store.expire_lapsed_mentors(db, night, now=start + timedelta(hours=1))

    assert sorted(moved.sample_mentor_ids) == sorted([str(lapsed), str(renewed_too_late)])
    assert status_of(db, renewed_in_time) == "active"


def test_the_callers_triggered_by_event_setting_is_restored(db_url, db):
    lapsed = mentor_expiring(db, expiring_on(RUN_DATE, -2))
    other = mentor_expiring(db, expiring_on(RUN_DATE, 100))
    with psycopg.connect(db_url) as conn:
        conn.execute("select set_config('mentor_pipeline.triggered_by_event', 'manual_coordinator_action', true)")
        conn.execute("select * from expire_mentors_with_lapsed_certifications(expiry_run_start(%s))", (RUN_DATE,))
        conn.execute("update mentors set status = 'paused' where id = %s", (other,))
    assert audit(db, lapsed)[0][2] == "nightly_expiry"
    assert audit(db, other)[0][2] == "manual_coordinator_action"
