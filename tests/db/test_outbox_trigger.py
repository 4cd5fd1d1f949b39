"""The outbox trigger: a status change is one mentor_status_inbox row in the app's transaction;
the pipeline's move turns it into its audit row and, for organisations with website sync, its
sync_queue row.

Each test runs against a fresh, migrated database on a real PostgreSQL server.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import psycopg
import pytest

from mentor_pipeline.sync import store
from tests.support.db import wait_for_lock_waiters
from tests.support.factories import certify, mentor, move_status_changes, next_writes, queue_rows, set_status


def audit_rows(db, mentor_id):
    return db.execute(
        "select old_status, new_status, triggered_by_event, sync_operation, warning"
        " from mentor_status_audit where mentor_id = %s order by id",
        (mentor_id,),
    ).fetchall()


@pytest.mark.parametrize("new_status", ["paused", "expired_cert"])
def test_leaving_active_enqueues_remove(db, new_status):
    mentor_id = mentor(db)
    set_status(db, mentor_id, new_status)

    [row] = queue_rows(db, mentor_id)
    assert (row["operation"], row["status"], row["triggered_by_event"]) == ("remove", "pending", "status_change")
    assert row["attempts"] == 0
    assert audit_rows(db, mentor_id) == [("active", new_status, "status_change", "remove", None)]


@pytest.mark.parametrize("from_status", ["paused", "expired_cert"])
def test_reinstated_with_valid_certification_enqueues_restore(db, from_status):
    mentor_id = mentor(db, status=from_status, cert_expires_in=timedelta(days=90))
    set_status(db, mentor_id, "active")

    [row] = queue_rows(db, mentor_id)
    assert row["operation"] == "restore"
    assert audit_rows(db, mentor_id) == [(from_status, "active", "status_change", "restore", None)]


@pytest.mark.parametrize(
    "cert_expires_in", [timedelta(days=-1), timedelta(seconds=-1), None], ids=["expired", "just-expired", "none"]
)
def test_reinstated_without_valid_certification_is_a_recorded_no_op(db, cert_expires_in):
    mentor_id = mentor(db, status="paused", cert_expires_in=cert_expires_in)
    set_status(db, mentor_id, "active")

    assert queue_rows(db, mentor_id) == []
    [(old, new, event, operation, warning)] = audit_rows(db, mentor_id)
    assert (old, new, operation) == ("paused", "active", None)
    assert "without a valid certification" in warning


def test_reinstatement_trusts_the_most_recent_certification_only(db):
    # An older certification is still valid, but the newest one (a re-certification) has expired.
    mentor_id = mentor(db, status="paused", cert_expires_in=timedelta(days=300))
    certify(db, mentor_id, expires_in=timedelta(days=-2), issued_ago=timedelta(days=10))
    set_status(db, mentor_id, "active")

    assert queue_rows(db, mentor_id) == []
    assert audit_rows(db, mentor_id)[0][4] is not None


def test_organisation_without_website_sync_enqueues_nothing(db):
    mentor_id = mentor(db, "NHF")
    set_status(db, mentor_id, "paused")
    set_status(db, mentor_id, "active")

    assert queue_rows(db, mentor_id) == []
    assert [row[3] for row in audit_rows(db, mentor_id)] == [None, None]


def test_website_sync_is_data_not_a_name(db):
    # A new organisation that turns sync on is synced without code changes; turning HLF off stops it.
    other = mentor(db, "XYZ")
    db.execute("update organizations set website_sync_enabled = true where code = 'XYZ'")
    hlf = mentor(db, "HLF")
    db.execute("update organizations set website_sync_enabled = false where code = 'HLF'")
    set_status(db, other, "paused")
    set_status(db, hlf, "paused")

    assert [(r["operation"], r["triggered_by_event"]) for r in queue_rows(db, other)] == [
        ("add", "organization_change"), ("remove", "status_change")]
    # Turning HLF's sync off unlists its mentors (tests/sync/test_desired_state.py); the later
    # pause of a mentor without website sync queues nothing of its own.
    assert [(r["operation"], r["triggered_by_event"]) for r in queue_rows(db, hlf)] == [("remove", "organization_change")]


def test_rolled_back_status_change_leaves_no_queue_row(db_url, db):
    mentor_id = mentor(db)
    with psycopg.connect(db_url) as conn:
        set_status(conn, mentor_id, "paused")
        assert len(queue_rows(conn, mentor_id)) == 1  # visible inside the transaction
        conn.rollback()

    assert queue_rows(db, mentor_id) == []
    assert audit_rows(db, mentor_id) == []
    assert db.execute("select status from mentors where id = %s", (mentor_id,)).fetchone()[0] == "active"


def test_rapid_pause_reinstate_pause_appends_three_changes_and_one_remove_is_written(db):
    mentor_id = mentor(db)
    for status in ["paused", "active", "paused"]:
        set_status(db, mentor_id, status)

    assert [r["operation"] for r in queue_rows(db, mentor_id)] == ["remove", "restore", "remove"]
    [write] = next_writes(db, mentor_id)
    assert write["operation"] == "remove"
    assert len(audit_rows(db, mentor_id)) == 3


def test_newest_wanted_state_wins_while_pending(db):
    mentor_id = mentor(db)
    set_status(db, mentor_id, "paused")
    db.execute("update sync_queue set attempts = 3, last_error = 'HTTP 503' where mentor_id = %s", (mentor_id,))
    set_status(db, mentor_id, "active")

    [write] = next_writes(db, mentor_id)
    # A new wanted state is new work: its retry budget starts again.
    assert (write["operation"], write["attempts"], write["last_error"]) == ("restore", 0, None)


def test_change_while_a_row_is_processing_adds_a_new_pending_row(db):
    mentor_id = mentor(db)
    set_status(db, mentor_id, "paused")
    move_status_changes(db)
    db.execute("update sync_queue set status = 'processing', locked_until = now() + interval '1 minute'")
    set_status(db, mentor_id, "active")

    rows = queue_rows(db, mentor_id)
    assert [(r["operation"], r["status"]) for r in rows] == [("remove", "processing"), ("restore", "pending")]


def test_one_row_per_mentor_in_flight_is_enforced_by_the_database(db):
    mentor_id = mentor(db)
    for status in ["paused", "active"]:
        set_status(db, mentor_id, status)
        move_status_changes(db)
    db.execute("update sync_queue set status = 'processing' where id = (select min(id) from sync_queue)")
    with pytest.raises(psycopg.errors.UniqueViolation, match="sync_queue_one_processing_per_mentor"):
        db.execute("update sync_queue set status = 'processing' where status = 'pending'")


def test_same_status_and_other_columns_do_not_fire(db):
    mentor_id = mentor(db)
    set_status(db, mentor_id, "paused")
    set_status(db, mentor_id, "paused")
    db.execute("update mentors set full_name = 'Renamed' where id = %s", (mentor_id,))

    assert len(queue_rows(db, mentor_id)) == 1
    assert len(audit_rows(db, mentor_id)) == 1


def test_invalid_status_is_rejected_and_nothing_is_enqueued(db):
    mentor_id = mentor(db)
    with pytest.raises(psycopg.errors.CheckViolation, match="mentors_status_check"):
        set_status(db, mentor_id, "on_holiday")

    assert queue_rows(db, mentor_id) == []
    assert db.execute("select status from mentors where id = %s", (mentor_id,)).fetchone()[0] == "active"


def test_caller_marks_updates_as_manual_coordinator_action(db_url, db):
    mentor_id = mentor(db)
    with psycopg.connect(db_url) as conn:
        conn.execute("set local mentor_pipeline.triggered_by_event = 'manual_coordinator_action'")
        set_status(conn, mentor_id, "paused")

    [row] = queue_rows(db, mentor_id)
    assert row["triggered_by_event"] == "manual_coordinator_action"
    assert audit_rows(db, mentor_id)[0][2] == "manual_coordinator_action"
    # SET LOCAL ends with the transaction: the next change is an ordinary status change.
    set_status(db, mentor_id, "expired_cert")
    assert queue_rows(db, mentor_id)[-1]["triggered_by_event"] == "status_change"


def test_unknown_event_setting_fails_the_update_with_a_clear_error(db_url, db):
    mentor_id = mentor(db)
    with psycopg.connect(db_url) as conn:
        conn.execute("set local mentor_pipeline.triggered_by_event = 'cron'")
        with pytest.raises(psycopg.errors.CheckViolation, match="invalid mentor_pipeline.triggered_by_event 'cron'"):
            set_status(conn, mentor_id, "paused")

    assert queue_rows(db, mentor_id) == []
    assert db.execute("select status from mentors where id = %s", (mentor_id,)).fetchone()[0] == "active"


def test_concurrent_updates_of_one_mentor_serialise_on_the_mentor_and_one_write_follows(db_url, db):
    mentor_id = mentor(db)
    first = psycopg.connect(db_url)
    second = psycopg.connect(db_url)
    try:
        set_status(first, mentor_id, "paused")  # holds the mentor's row lock, uncommitted
        done = threading.Event()

        def second_writer():
            set_status(second, mentor_id, "expired_cert")  # waits for `first`
            second.commit()
            done.set()

        thread = threading.Thread(target=second_writer)
        thread.start()
        wait_for_lock_waiters(db, 1)  # the second update waits for the first transaction...
        assert not done.is_set()
        first.commit()
        thread.join(60)  # ...and goes through once it commits
        assert done.is_set()
    finally:
        first.close()
        second.close()

    assert [r["operation"] for r in queue_rows(db, mentor_id)] == ["remove", "remove"]
    [write] = next_writes(db, mentor_id)
    assert write["id"] == queue_rows(db, mentor_id)[-1]["id"]
    assert [r[1] for r in audit_rows(db, mentor_id)] == ["paused", "expired_cert"]


def test_the_pipeline_marking_a_mentor_never_waits_for_an_uncommitted_app_change(db_url, db):
    mentor_id = mentor(db)
    with psycopg.connect(db_url) as app, psycopg.connect(db_url) as pipeline:
        set_status(app, mentor_id, "paused")  # the trigger's inbox row, uncommitted
        pipeline.execute("set lock_timeout = '200ms'")
        assert move_status_changes(pipeline) == 0  # no wait: the uncommitted change stays for the next move
        store.enqueue(pipeline, [mentor_id], "reconciliation", "add")  # no wait: it appends
        pipeline.commit()
        app.commit()

    # The app's change is queued by the move after its commit, behind the reconciliation's row; the
    # next drain writes the mentor once, with the newest change.
    assert [(r["operation"], r["triggered_by_event"]) for r in queue_rows(db, mentor_id)] == [
        ("add", "reconciliation"), ("remove", "status_change")]
    assert [(w["operation"], w["triggered_by_event"]) for w in next_writes(db, mentor_id)] == [
        ("remove", "status_change")]


def test_many_mentors_each_get_their_own_row(db):
    mentors = [mentor(db) for _ in range(20)]
    db.execute("update mentors set status = 'paused'")

    rows = queue_rows(db)
    assert sorted(r["mentor_id"] for r in rows) == sorted(mentors)
    assert {r["operation"] for r in rows} == {"remove"}


# --- the status inbox: one write for the app, moved exactly once by the pipeline ---------------

def inbox_rows(conn):
    return conn.execute("select mentor_id, old_status, new_status, triggered_by_event from mentor_status_inbox"
                        " order by id").fetchall()


def records(conn, mentor_id):
    """(inbox, sync_queue, audit) rows of the mentor, counted without moving."""
    return conn.execute(
        "select (select count(*) from mentor_status_inbox where mentor_id = %(m)s),"
        " (select count(*) from sync_queue where mentor_id = %(m)s),"
        " (select count(*) from mentor_status_audit where mentor_id = %(m)s)", {"m": mentor_id}).fetchone()


def test_a_status_change_is_one_inbox_row_in_the_apps_transaction_until_the_move(db_url, db):
    mentor_id = mentor(db)
    with psycopg.connect(db_url) as app:
        set_status(app, mentor_id, "paused")
        app.rollback()
    assert records(db, mentor_id) == (0, 0, 0)

    with psycopg.connect(db_url) as app:
        set_status(app, mentor_id, "paused")
        # The app's whole cost: its own update and one inbox row.
        assert app.execute("select relname, n_tup_ins, n_tup_upd, n_tup_del from pg_stat_xact_user_tables"
                           " where n_tup_ins + n_tup_upd + n_tup_del > 0 order by relname").fetchall() == [
            ("mentor_status_inbox", 1, 0, 0), ("mentors", 0, 1, 0)]
    assert inbox_rows(db) == [(mentor_id, "active", "paused", "status_change")]
    assert records(db, mentor_id) == (1, 0, 0)

    assert move_status_changes(db) == 1
    assert records(db, mentor_id) == (0, 1, 1)
    assert audit_rows(db, mentor_id) == [("active", "paused", "status_change", "remove", None)]


def test_a_change_committed_during_a_move_or_uncommitted_then_is_moved_once_by_the_next(db_url, db):
    first, second = mentor(db), mentor(db)
    with psycopg.connect(db_url) as app, psycopg.connect(db_url) as pipeline:
        set_status(app, first, "paused")
        app.commit()
        set_status(app, second, "paused")  # uncommitted while the move runs
        assert move_status_changes(pipeline) == 1  # the first only; the move's transaction stays open
        app.commit()  # committed while the move is in progress
        pipeline.commit()

    assert inbox_rows(db) == [(second, "active", "paused", "status_change")]
    assert move_status_changes(db) == 1
    assert move_status_changes(db) == 0
    for mentor_id in (first, second):
        assert records(db, mentor_id) == (0, 1, 1)
        assert [r["operation"] for r in queue_rows(db, mentor_id)] == ["remove"]


def test_a_second_mover_moves_nothing_and_never_waits_for_the_first(db_url, db):
    first, second = mentor(db), mentor(db)
    set_status(db, first, "paused")
    with psycopg.connect(db_url) as mover, psycopg.connect(db_url) as other:
        assert move_status_changes(mover) == 1  # holds the move (and the inbox row it deleted)
        set_status(db, second, "paused")
        other.execute("set lock_timeout = '1s'")
        started = time.monotonic()
        assert move_status_changes(other) == 0  # would raise LockNotAvailable had it waited
        assert time.monotonic() - started < 1
        other.commit()
        assert inbox_rows(db) == [(first, "active", "paused", "status_change"),
                                  (second, "active", "paused", "status_change")]  # the first move uncommitted
        mover.commit()
        assert move_status_changes(other) == 1  # the next move takes what the second mover left
        other.commit()

    for mentor_id in (first, second):
        assert records(db, mentor_id) == (0, 1, 1)


def test_the_app_role_can_neither_read_the_inbox_nor_move_it(db_url, db):
    mentor_id = mentor(db)
    set_status(db, mentor_id, "paused")
    with psycopg.connect(db_url) as conn:
        for statement in ["select * from mentor_status_inbox", "delete from mentor_status_inbox",
                          "select move_status_changes()"]:
            conn.execute("set local role authenticated")
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                conn.execute(statement)
            conn.rollback()
    assert records(db, mentor_id) == (1, 0, 0)
