"""The claim/lease/outcome protocol in SQL, against real PostgreSQL (no HTTP here)."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import psycopg
import pytest

from mentor_pipeline.sync import store
from mentor_pipeline.sync.store import Outcome, QueuePolicy
from tests.support.factories import move_status_changes, queue_rows, set_status
from tests.sync.helpers import FAST, db_now, hlf_mentors, queue_statuses, set_statuses

LEASE = timedelta(seconds=30)


def claim(db, limit=100, lease=LEASE, now=None):
    token = uuid.uuid4()
    return token, store.claim_batch(db, limit, lease, token, now)


def after_the_lease(row):
    """The first moment the lease of a claimed row has run out."""
    return row.locked_until + timedelta(microseconds=1)


def test_claim_leases_due_rows_oldest_first_and_commits(db, db_url):
    mentors = hlf_mentors(db, 3)
    set_statuses(db, mentors, "paused")
    token, rows = claim(db, limit=2)

    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert len(rows) == 2 and all(r.status == "processing" and r.lease_token == token for r in rows)
    # Committed: another session sees the lease, and claims only what is left.
    with psycopg.connect(db_url, autocommit=True) as other:
        _, more = claim(other)
        assert [r.id for r in more] == [max(r["id"] for r in queue_rows(db))]
        _, none = claim(other)
        assert none == []


def test_claim_skips_rows_not_yet_due(db):
    [mentor] = hlf_mentors(db, 1)
    set_status(db, mentor, "paused")
    move_status_changes(db)  # the tick after the app's change
    db.execute("update sync_queue set available_at = now() + interval '1 hour'")
    assert claim(db)[1] == []
    assert store.tick(db).due_count == 0


def test_a_newer_pending_row_waits_while_the_mentor_has_a_row_in_flight(db):
    [mentor] = hlf_mentors(db, 1)
    set_status(db, mentor, "paused")
    _, [first] = claim(db)
    set_status(db, mentor, "active")  # reinstated: a new pending 'restore' next to the processing row

    assert [r["status"] for r in queue_rows(db, mentor)] == ["processing", "pending"]
    assert claim(db)[1] == []  # never two rows of one mentor in flight
    with pytest.raises(psycopg.errors.UniqueViolation):  # and the database enforces it
        db.execute("update sync_queue set status = 'processing' where status = 'pending'")


def test_expired_lease_is_claimable_again_and_counts_as_an_attempt(db):
    [mentor] = hlf_mentors(db, 1)
    set_status(db, mentor, "paused")
    old_token, [row] = claim(db)
    assert claim(db, now=row.locked_until)[1] == []  # held up to the last moment of the lease

    new_token, [again] = claim(db, now=after_the_lease(row))
    assert again.id == row.id and again.lease_token == new_token != old_token
    assert again.attempts == 1 and "lease expired" in again.last_error
    # The first processor comes back late: its outcome is fenced off by the token.
    assert store.record_outcomes(db, old_token, [Outcome(row.id, "done", listed=False)], FAST) == []
    [recorded] = store.record_outcomes(db, new_token, [Outcome(row.id, "done", listed=False)], FAST)
    assert recorded.status == "done"


def test_stale_lease_with_a_newer_pending_row_is_superseded_not_reapplied(db):
    [mentor] = hlf_mentors(db, 1)
    set_status(db, mentor, "paused")
    _, [stale] = claim(db)  # this processor dies mid-HTTP
    set_status(db, mentor, "active")  # newer wish: restore

    _, claimed = claim(db, now=after_the_lease(stale))
    assert [(r.operation, r.status) for r in claimed] == [("restore", "processing")]
    rows = {r["id"]: r for r in queue_rows(db, mentor)}
    assert rows[stale.id]["status"] == "superseded"
    assert "superseded by newer row" in rows[stale.id]["last_error"]


def test_extend_lease_keeps_rows_held(db):
    [mentor] = hlf_mentors(db, 1)
    set_status(db, mentor, "paused")
    lease = timedelta(minutes=1)
    start = db_now(db)
    token, [row] = claim(db, lease=lease, now=start)
    beat = start
    for _ in range(3):  # a heartbeat every 40 s, each pushing the lease a minute ahead
        beat += timedelta(seconds=40)
        assert store.extend_lease(db, token, lease, beat) == 1
    assert claim(db, now=after_the_lease(row))[1] == []  # 2 min in: still held, far past the first lease
    assert claim(db, now=beat + lease)[1] == []
    _, [taken] = claim(db, now=beat + lease + timedelta(microseconds=1))  # the heartbeat stopped: taken over
    assert taken.id == row.id and taken.attempts == 1
    assert store.extend_lease(db, token, lease, beat) == 0  # the first holder lost it
    assert store.extend_lease(db, uuid.uuid4(), LEASE) == 0


def test_retry_backs_off_exponentially_then_dies(db):
    [mentor] = hlf_mentors(db, 1)
    set_status(db, mentor, "paused")
    policy = QueuePolicy(max_attempts=3, backoff_base=timedelta(seconds=10), backoff_max=timedelta(seconds=15))
    at = db_now(db)
    delays = []
    for attempt in range(1, 4):
        if attempt > 1:
            assert claim(db, now=at - timedelta(microseconds=1))[1] == []  # backing off: not due a moment earlier
        token, [row] = claim(db, now=at)
        [rec] = store.record_outcomes(db, token, [Outcome(row.id, "retry", "HTTP 503: down")], policy, at)
        assert rec.attempts == attempt
        if rec.status == "pending":
            delays.append(rec.available_at - at)
            at = rec.available_at
    assert rec.status == "dead" and rec.last_error == "gave up after 3 attempts: HTTP 503: down"
    assert delays == [timedelta(seconds=10), timedelta(seconds=15)]  # 10 s, then 20 s capped at 15 s


def test_throttled_retry_does_not_consume_an_attempt(db):
    [mentor] = hlf_mentors(db, 1)
    set_status(db, mentor, "paused")
    at = db_now(db)
    for _ in range(5):
        token, [row] = claim(db, now=at)
        [rec] = store.record_outcomes(db, token, [Outcome(row.id, "retry", "429", consume_attempt=False)], FAST, at)
        at = rec.available_at
    assert (rec.status, rec.attempts) == ("pending", 0)


def test_retry_while_a_newer_row_is_pending_supersedes_the_old_row(db):
    [mentor] = hlf_mentors(db, 1)
    set_status(db, mentor, "paused")
    token, [row] = claim(db)
    set_status(db, mentor, "active")
    move_status_changes(db)  # the sensor's tick while the write is in flight
    [rec] = store.record_outcomes(db, token, [Outcome(row.id, "retry", "HTTP 503")], FAST)
    assert rec.status == "superseded"
    assert [r["status"] for r in queue_rows(db, mentor)] == ["superseded", "pending"]


def test_release_puts_rows_back_untouched(db):
    mentors = hlf_mentors(db, 3)
    set_statuses(db, mentors, "paused")
    token, rows = claim(db)
    recorded = store.record_outcomes(db, token, [Outcome(r.id, "release", "auth") for r in rows], FAST)
    assert {(r.status, r.attempts) for r in recorded} == {("pending", 0)}
    assert store.tick(db).due_count == 3


def test_done_records_the_listing_state(db):
    [mentor] = hlf_mentors(db, 1)
    set_status(db, mentor, "paused")
    token, [row] = claim(db)
    store.record_outcomes(db, token, [Outcome(row.id, "done", listed=False)], FAST)
    state = store.listing_state(db)[mentor]
    assert (state.listed, state.last_queue_id) == (False, row.id)


def test_every_change_appends_a_row_and_the_claim_writes_each_mentor_once_with_its_newest(db):
    [a, b] = hlf_mentors(db, 2)
    assert store.enqueue(db, [a, b, a], "reconciliation", "remove") == 2
    store.enqueue(db, [b], "force_sync", "add")
    assert sorted((r["mentor_id"], r["operation"], r["triggered_by_event"]) for r in queue_rows(db)) == sorted([
        (a, "remove", "reconciliation"), (b, "remove", "reconciliation"), (b, "add", "force_sync")])

    claimed = store.claim_batch(db, 10, timedelta(minutes=2), uuid.uuid4())

    assert sorted((r.mentor_id, r.triggered_by_event) for r in claimed) == sorted(
        [(a, "reconciliation"), (b, "force_sync")])
    assert sorted((r["mentor_id"], r["triggered_by_event"], r["status"]) for r in queue_rows(db)) == sorted([
        (a, "reconciliation", "processing"), (b, "reconciliation", "superseded"), (b, "force_sync", "processing")])


def test_a_claim_absorbs_every_waiting_change_of_its_mentors_beyond_its_limit_and_backoff(db):
    [a, b] = hlf_mentors(db, 2)
    store.enqueue(db, [a], "reconciliation", "remove")
    store.enqueue(db, [b], "reconciliation", "remove")
    db.execute("update sync_queue set attempts = 2, available_at = now() + interval '1 hour'")  # both back off
    store.enqueue(db, [a], "force_sync", "add")
    store.enqueue(db, [b], "force_sync", "add")
    store.enqueue(db, [a], "status_change", "remove")

    # A limit of one row: the oldest due row is a's, and all a's changes go with it (the one
    # behind b's and the retry backing off), so no later claim writes a again in this drain.
    [claimed] = store.claim_batch(db, 1, timedelta(minutes=2), uuid.uuid4())

    assert (claimed.mentor_id, claimed.triggered_by_event, claimed.attempts) == (a, "status_change", 0)
    statuses = {(r["mentor_id"], r["triggered_by_event"]): r["status"] for r in queue_rows(db)}
    assert statuses == {(a, "reconciliation"): "superseded", (a, "force_sync"): "superseded",
                        (a, "status_change"): "processing",
                        (b, "reconciliation"): "pending", (b, "force_sync"): "pending"}


def test_enqueue_refuses_an_unknown_event_or_operation_and_writes_nothing(db):
    [a] = hlf_mentors(db, 1)
    with pytest.raises(psycopg.errors.CheckViolation, match="unknown triggered_by_event 'because': use one of"):
        store.enqueue(db, [a], "because")
    with pytest.raises(psycopg.errors.CheckViolation, match="sync_queue_operation_check"):
        store.enqueue(db, [a], "force_sync", "publish")
    assert queue_rows(db) == []


def test_enqueue_without_operation_derives_it_from_the_rule(db):
    [listed] = hlf_mentors(db, 1)
    [paused] = hlf_mentors(db, 1, status="paused")
    [nhf] = hlf_mentors(db, 1, org="NHF")
    gone = uuid.uuid4()  # a key whose mentor no longer exists
    store.enqueue(db, [listed, paused, nhf, gone], "force_sync")
    assert {r["mentor_id"]: r["operation"] for r in queue_rows(db)} == {
        listed: "add", paused: "remove", nhf: "remove", gone: "remove"}


def test_archive_moves_old_finished_rows_only(db):
    mentors = hlf_mentors(db, 3)
    set_statuses(db, mentors, "paused")
    token, rows = claim(db, limit=2)
    start = db_now(db)
    store.record_outcomes(db, token, [Outcome(rows[0].id, "done", listed=False)], FAST, start)
    store.record_outcomes(db, token, [Outcome(rows[1].id, "done", listed=False)], FAST, start + timedelta(days=2))

    # Done rows stay 7 days: 8 days after the first one, only that one moves.
    assert store.archive_finished(db, QueuePolicy(), now=start + timedelta(days=7)) == 0
    assert store.archive_finished(db, QueuePolicy(), now=start + timedelta(days=8)) == 1
    assert queue_statuses(db) == {"done": 1, "pending": 1}
    assert db.execute("select id, status from sync_queue_archive").fetchall() == [(rows[0].id, "done")]


def test_the_tick_counts_due_rows_and_expired_leases(db):
    mentors = hlf_mentors(db, 3)
    set_statuses(db, mentors, "paused")
    _, [row] = claim(db, limit=1)
    assert store.tick(db, row.locked_until).expired_leases == 0
    due = store.tick(db, after_the_lease(row))
    assert (due.due_count, due.expired_leases) == (2, 1)
    assert due.max_due_id == max(r["id"] for r in queue_rows(db))


def test_sensor_check_is_an_index_only_scan(db):
    mentors = hlf_mentors(db, 50)
    set_statuses(db, mentors, "paused")
    move_status_changes(db)  # the tick after the app's change
    db.execute("vacuum analyze sync_queue")
    db.execute("set enable_seqscan = off")
    plans = [
        db.execute("explain select count(*) from sync_queue where status = 'pending' and available_at <= now()").fetchall(),
        db.execute("explain select count(*) from sync_queue where status = 'processing' and locked_until < now()").fetchall(),
    ]
    for plan in plans:
        assert "Index Only Scan" in "\n".join(line for (line,) in plan)


def test_concurrent_claimers_never_share_a_row(db_url, db):
    mentors = hlf_mentors(db, 600)
    set_statuses(db, mentors, "paused")
    claimed: list[list[int]] = []
    lock = threading.Lock()

    def worker():
        with psycopg.connect(db_url, autocommit=True) as conn:
            while True:
                _, rows = claim(conn, limit=25)
                if not rows:
                    return
                with lock:
                    claimed.append([r.id for r in rows])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for batch in claimed for i in batch]
    assert len(ids) == len(set(ids)) == 600


def test_a_claim_racing_an_uncommitted_claim_takes_the_next_rows_not_none(db_url, db):
    mentors = hlf_mentors(db, 6)
    set_statuses(db, mentors, "paused")
    # The tick after the app's change: the rows are in the queue before either claim. (Moved by
    # the first claim instead, they would be its uncommitted rows, which no other claim sees.)
    move_status_changes(db)
    with psycopg.connect(db_url) as first, psycopg.connect(db_url, autocommit=True) as second:
        # The first claimer holds its locks (not committed yet) while the second one looks.
        held = first.execute("select id from claim_sync_batch(3, interval '30 seconds', gen_random_uuid())").fetchall()
        _, rows = claim(second, limit=3)
        first.rollback()

    assert len(held) == 3
    assert sorted(r.id for r in rows) == sorted(set(r["id"] for r in queue_rows(db)) - {i for (i,) in held})


def test_rls_and_grants_keep_app_roles_out(db):
    for table in ("website_listing_state", "sync_queue_archive"):
        (rls,) = db.execute("select relrowsecurity from pg_class where relname = %s", (table,)).fetchone()
        assert rls
    db.execute("set role authenticated")
    try:
        for statement in ("select * from website_listing_state", "select * from sync_queue_archive",
                          "select * from claim_sync_batch(1, '1 minute', gen_random_uuid())"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                db.execute(statement)
    finally:
        db.execute("reset role")
