"""A `Drain` against real PostgreSQL and the Dataverse emulator over real HTTP."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest

from mentor_pipeline.sync import Drain, enqueue, listing_state
from mentor_pipeline.sync.store import QueuePolicy, claim_batch
from tests.support.factories import certify, queue_rows, set_status
from tests.support.polling import wait_for
from tests.sync.helpers import (
    FAST,
    hlf_mentors,
    listed_in_dynamics,
    queue_statuses,
    seed_contacts,
    sent_writes,
    set_statuses,
)


@pytest.mark.parametrize("status", ["paused", "expired_cert"])
def test_leaving_active_unlists_the_mentor_in_dynamics(db, connect, client, emulator, status):
    mentors = hlf_mentors(db, 3)
    seed_contacts(emulator, mentors, listed=True)
    set_statuses(db, mentors[:2], status)

    report = Drain(connect, client, policy=FAST).run()

    assert report.applied == 2
    assert sorted(sent_writes(emulator)) == sorted((str(m), False) for m in mentors[:2])
    assert listed_in_dynamics(emulator) == {str(mentors[0]): False, str(mentors[1]): False, str(mentors[2]): True}
    assert queue_statuses(db) == {"done": 2}
    state = listing_state(db)
    assert {m: s.listed for m, s in state.items()} == {mentors[0]: False, mentors[1]: False}
    # Every write went through $batch: one request for both, never one request per row.
    batch_posts = [e for e in emulator.admin.requests(include_batch_parts=False) if e["path"].endswith("$batch")]
    assert len(batch_posts) == 1


def test_reinstated_mentor_is_listed_again(db, connect, client, emulator):
    [mentor] = hlf_mentors(db, 1, status="paused")
    seed_contacts(emulator, [mentor], listed=False)
    set_status(db, mentor, "active")
    [queued] = queue_rows(db, mentor)
    written_at = queued["created_at"] + timedelta(seconds=3)  # the drain writes 3 s after the change

    report = Drain(connect, client, policy=FAST, clock=lambda: written_at).run()

    assert [(r.operation, r.result, r.listed) for r in report.rows] == [("restore", "applied", True)]
    assert sent_writes(emulator) == [(str(mentor), True)]
    assert listed_in_dynamics(emulator)[str(mentor)] is True
    assert report.rows[0].lag_seconds == 3.0  # from the queued change to the confirmed write


def test_nhf_never_reaches_dynamics(db, connect, client, emulator):
    nhf = hlf_mentors(db, 3, org="NHF")
    seed_contacts(emulator, nhf, listed=True)
    set_statuses(db, nhf, "paused")  # the trigger queues nothing for NHF
    assert queue_rows(db) == []
    report = Drain(connect, client, policy=FAST).run()
    assert report.rows == [] and emulator.admin.requests() == []  # not even a token request

    # A row queued for an NHF key (reconciliation found it listed) can only ever unlist it.
    enqueue(db, [nhf[0]], "reconciliation", "add")
    report = Drain(connect, client, policy=FAST).run()
    assert [(r.result, r.listed) for r in report.rows] == [("applied", False)]
    assert sent_writes(emulator) == [(str(nhf[0]), False)]


def test_unlisting_a_mentor_without_a_contact_is_done_not_dead(db, connect, client, emulator):
    [missing] = hlf_mentors(db, 1)
    set_status(db, missing, "paused")

    report = Drain(connect, client, policy=FAST).run()

    [row] = queue_rows(db, missing)
    assert (row["status"], report.dead) == ("done", 0)
    assert "nothing to unlist" in row["last_error"]
    assert str(missing) not in listed_in_dynamics(emulator)  # update-only: no ghost contact created


def test_failed_writes_retry_with_backoff_then_apply(db, connect, client, emulator):
    mentors = hlf_mentors(db, 2)
    seed_contacts(emulator, mentors)
    set_statuses(db, mentors, "paused")
    emulator.admin.set_faults(fail_next=1)  # the $batch answers 503
    policy = QueuePolicy(batch_size=100, lease=timedelta(seconds=5), max_attempts=5,
                         backoff_base=timedelta(minutes=1), backoff_max=timedelta(minutes=5))

    first = Drain(connect, client, policy=policy).run()
    assert first.retried == 2 and first.applied == 0
    rows = queue_rows(db)
    assert {(r["status"], r["attempts"]) for r in rows} == {("pending", 1)}
    assert all("503" in r["last_error"] or "unavailable" in r["last_error"] for r in rows)
    assert {r["available_at"] - r["updated_at"] for r in rows} == {timedelta(minutes=1)}  # the first backoff
    due = max(r["available_at"] for r in rows)
    backing_off = Drain(connect, client, policy=policy, clock=lambda: due - timedelta(seconds=1))
    assert backing_off.run().rows == []

    second = Drain(connect, client, policy=policy, clock=lambda: due).run()
    assert second.applied == 2
    assert set(listed_in_dynamics(emulator).values()) == {False}


def test_a_row_that_keeps_failing_ends_dead_and_alerts(db, connect, client, emulator, alerts, webhook):
    [mentor] = hlf_mentors(db, 1)
    seed_contacts(emulator, [mentor])
    set_status(db, mentor, "paused")
    emulator.admin.set_faults(error_rate=1.0)
    policy = QueuePolicy(max_attempts=2, backoff_base=timedelta(minutes=1), backoff_max=timedelta(minutes=1))

    Drain(connect, client, policy=policy).run()
    [waiting] = queue_rows(db)
    report = Drain(connect, client, policy=policy, alerts=alerts, clock=lambda: waiting["available_at"]).run()

    assert report.dead == 1
    [row] = queue_rows(db)
    assert row["status"] == "dead" and row["last_error"].startswith("gave up after 2 attempts")
    assert "sync_dead_rows" in webhook.kinds()


def test_429_storm_waits_do_not_consume_attempts(db, connect, emulator):
    mentors = hlf_mentors(db, 20)
    seed_contacts(emulator, mentors)
    set_statuses(db, mentors, "paused")
    # Two requests per five minutes: of four $batch requests of five, two must wait for the
    # window however slowly they are sent. The client's sleep moves the emulator's clock instead.
    emulator.admin.configure(request_limit=2, window_seconds=300)
    policy = QueuePolicy(batch_size=100, max_attempts=1, lease=timedelta(seconds=10))

    with emulator.client(batch_size=5, max_in_flight=4, sleep=emulator.admin.advance_clock) as client:
        report = Drain(connect, client, policy=policy).run()

    assert report.applied == 20 and report.dead == 0  # max_attempts=1: any counted wait would kill a row
    assert report.rate_limit_waits > 0
    assert {(r["status"], r["attempts"]) for r in queue_rows(db)} == {("done", 0)}
    throttled = [e for e in emulator.admin.requests(include_batch_parts=False) if e["status"] == 429]
    assert throttled, "the emulator never throttled: the test proves nothing"
    assert set(listed_in_dynamics(emulator).values()) == {False}


def test_mentor_missing_in_dynamics_is_dead_with_a_clear_reason(db, connect, client, emulator, alerts, webhook):
    present, missing = hlf_mentors(db, 2, status="paused")
    seed_contacts(emulator, [present], listed=False)
    set_statuses(db, [present, missing], "active")  # both should be listed again

    report = Drain(connect, client, policy=FAST, alerts=alerts).run()

    assert report.applied == 1 and report.dead == 1
    dead = {r["mentor_id"]: r for r in queue_rows(db)}[missing]
    assert dead["status"] == "dead" and dead["attempts"] == 0
    assert f"mentor {missing} has no contact in Dynamics" in dead["last_error"]
    assert str(missing) not in listed_in_dynamics(emulator)  # update-only: no ghost contact created
    [post] = [p for p in webhook.posts if p["kind"] == "sync_dead_rows"]
    assert post["details"]["rows"][0]["mentor_id"] == str(missing)


@pytest.mark.parametrize("break_secret, kind", [
    ("rotate", "dynamics_auth_wrong_secret"),
    ("expire", "dynamics_auth_expired_secret"),
])
def test_auth_failure_leaves_every_row_pending_and_alerts_at_once(
    db, connect, emulator, alerts, webhook, break_secret, kind
):
    mentors = hlf_mentors(db, 5)
    seed_contacts(emulator, mentors)
    set_statuses(db, mentors, "paused")
    if break_secret == "rotate":
        emulator.admin.rotate_secret("a-new-secret-from-hlf-it")
    else:
        emulator.admin.expire_secrets()

    with emulator.client() as client:
        report = Drain(connect, client, policy=QueuePolicy(batch_size=2), alerts=alerts).run()

    assert report.auth_error and report.batches == 1  # stopped at the first batch
    assert {(r["status"], r["attempts"]) for r in queue_rows(db)} == {("pending", 0)}
    assert sent_writes(emulator) == []
    assert webhook.kinds() == [kind]
    posted = str(webhook.posts)
    assert emulator.options.client_secret not in posted and "a-new-secret-from-hlf-it" not in posted
    assert "secret-token-abc123" not in posted  # nor the webhook URL itself


def test_a_queued_restore_for_a_mentor_paused_again_writes_unlisted(db, connect, client, emulator):
    [mentor] = hlf_mentors(db, 1, status="paused")
    seed_contacts(emulator, [mentor])  # listed by hand in Dynamics
    # A reconciliation queued a restore, but the mentor is paused (again): the rule at the
    # moment of writing wins over the operation the row was queued with.
    enqueue(db, [mentor], "reconciliation", "restore")

    report = Drain(connect, client, policy=FAST).run()

    assert [(r.operation, r.result, r.listed) for r in report.rows] == [("restore", "applied", False)]
    assert sent_writes(emulator) == [(str(mentor), False)]


def test_a_restore_after_the_certification_lapsed_writes_unlisted(db, connect, client, emulator):
    [mentor] = hlf_mentors(db, 1, status="paused")
    seed_contacts(emulator, [mentor], listed=False)
    set_status(db, mentor, "active")  # restore queued: the certification is valid now
    db.execute("update certifications set expires_at = now() - interval '1 minute', "
               "issued_at = now() - interval '2 years' where mentor_id = %s", (mentor,))

    report = Drain(connect, client, policy=FAST).run()

    assert report.applied == 1 and sent_writes(emulator) == [(str(mentor), False)]


def test_stale_in_flight_row_and_newer_change_apply_in_order(db, connect, client, emulator):
    [mentor] = hlf_mentors(db, 1, status="paused")
    seed_contacts(emulator, [mentor], listed=False)
    set_status(db, mentor, "active")  # restore

    with connect() as dying:  # a processor claims the restore and dies before writing
        [stale] = claim_batch(dying, 10, timedelta(seconds=30), uuid.uuid4())
    set_status(db, mentor, "paused")  # newer change: remove, pending next to the in-flight restore

    report = Drain(connect, client, policy=FAST, clock=lambda: stale.locked_until + timedelta(milliseconds=1)).run()

    assert [(r.operation, r.result) for r in report.rows] == [("remove", "applied")]
    assert sent_writes(emulator) == [(str(mentor), False)]
    assert [r["status"] for r in queue_rows(db, mentor)] == ["superseded", "done"]


def test_reinstated_twice_quickly_writes_the_latest_state_once(db, connect, client, emulator):
    [mentor] = hlf_mentors(db, 1)
    seed_contacts(emulator, [mentor])
    for status in ("paused", "active", "paused", "active"):
        set_status(db, mentor, status)

    report = Drain(connect, client, policy=FAST).run()

    assert [(r.operation, r.result) for r in report.rows] == [("restore", "applied")]
    assert sent_writes(emulator) == [(str(mentor), True)]


def test_certify_helper_is_used_for_reinstatement(db, connect, client, emulator):
    # A mentor whose certification lapsed is reinstated after re-certifying: listed again.
    [mentor] = hlf_mentors(db, 1, status="expired_cert", cert_days=-10)
    seed_contacts(emulator, [mentor], listed=False)
    certify(db, mentor, expires_in=timedelta(days=700), issued_ago=timedelta(seconds=0))
    set_status(db, mentor, "active")

    report = Drain(connect, client, policy=FAST).run()

    assert report.applied == 1 and listed_in_dynamics(emulator)[str(mentor)] is True


def drain_last_ran_its_tick(db) -> bool:
    """A session of this database last ran the tick (a lingering drain's poll). After a batch is
    recorded, the drain's connection runs a claim, then ticks only while it lingers."""
    return bool(db.execute("select 1 from pg_stat_activity where datname = current_database()"
                           " and pid <> pg_backend_pid() and query like '%website_sync_tick%'").fetchone())


def test_a_lingering_drain_picks_up_a_change_that_arrives_while_it_waits(db, connect, client, emulator):
    first, second = hlf_mentors(db, 2)
    seed_contacts(emulator, [first, second])
    set_status(db, first, "paused")
    result = {}
    # A long linger, so a slow machine cannot make the drain give up before the second change;
    # the test does not wait it out: two batches end the drain.
    thread = threading.Thread(target=lambda: result.update(report=Drain(connect, client, policy=FAST).run(
        linger_seconds=120, poll_interval_seconds=0.05, max_batches=2)))
    thread.start()
    # The first change is recorded and the drain has polled since: it waits, warm, with nothing due.
    wait_for(lambda: queue_statuses(db) == {"done": 1} and drain_last_ran_its_tick(db), timeout=60)
    set_status(db, second, "paused")
    thread.join(timeout=60)

    # The same run wrote the second change: no new run was needed.
    assert not thread.is_alive() and result["report"].applied == 2 and result["report"].batches == 2
    assert listed_in_dynamics(emulator)[str(second)] is False
