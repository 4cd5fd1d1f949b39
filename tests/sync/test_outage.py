"""Outages and throttling are incidents: Dataverse unreachable for longer than the bound (added up
across short runs, from sync_queue), 429 waits beyond it, dead rows until none is left. Real
PostgreSQL, the emulator over HTTP with its faults and limits, a real webhook receiver."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from mentor_pipeline.operations.store import get_incident
from mentor_pipeline.sync import Drain, enqueue
from mentor_pipeline.sync.health import write_outage
from mentor_pipeline.sync.store import QueuePolicy
from tests.support.factories import move_status_changes, queue_rows
from tests.sync.helpers import db_now, hlf_mentors, listed_in_dynamics, seed_contacts, set_statuses

BOUND = timedelta(minutes=2)
# Backoff of one minute, doubled per attempt: the failed attempts land at about 0, 1 and 3 minutes.
POLICY = QueuePolicy(batch_size=100, lease=timedelta(seconds=10), max_attempts=8,
                     backoff_base=timedelta(minutes=1), backoff_max=timedelta(minutes=10))


def states(webhook, kind):
    return [p["state"] for p in webhook.posts if p["kind"] == kind]


def next_due(db):
    return max(r["available_at"] for r in queue_rows(db) if r["status"] == "pending")


def test_short_failing_runs_add_up_to_dynamics_unreachable_and_a_write_resolves_it(db, connect, client, emulator,
                                                                                  alerts, webhook):
    mentors = hlf_mentors(db, 2)
    seed_contacts(emulator, mentors)
    set_statuses(db, mentors, "paused")
    emulator.admin.set_faults(error_rate=1.0)  # every Web API request answers 503

    def drain(at=None):
        return Drain(connect, client, policy=POLICY, alerts=alerts, stall_bound=BOUND, clock=lambda: at).run()

    assert drain().retried == 2
    assert drain(next_due(db)).retried == 2  # a minute on: still under the bound
    assert states(webhook, "dynamics_unreachable") == []

    third_attempt = next_due(db)  # about three minutes after the changes were queued
    assert drain(third_attempt).retried == 2
    [post] = [p for p in webhook.posts if p["kind"] == "dynamics_unreachable"]
    assert post["state"] == "open"
    assert "nothing written for 3 min" in post["summary"] and "2 change(s) waiting" in post["summary"]
    assert "unavailable" in post["summary"]
    assert {(r["status"], r["attempts"]) for r in queue_rows(db)} == {("pending", 3)}

    emulator.admin.clear_faults()
    assert drain(next_due(db)).applied == 2
    assert states(webhook, "dynamics_unreachable") == ["open", "resolved"]
    assert set(listed_in_dynamics(emulator).values()) == {False}


def test_the_outage_counts_from_the_last_write_that_went_through(db, connect, client, emulator):
    stuck, written = hlf_mentors(db, 2)
    seed_contacts(emulator, [stuck, written])
    set_statuses(db, [stuck], "paused")
    emulator.admin.set_faults(fail_next=1)
    Drain(connect, client, policy=POLICY).run()
    # The failing change has waited an hour (say the first attempts were long ago)...
    db.execute("update sync_queue set created_at = created_at - interval '1 hour' where mentor_id = %s", (stuck,))
    assert write_outage(db).duration > timedelta(minutes=59)

    # ...but another change went through since: Dynamics was reachable then.
    set_statuses(db, [written], "paused")
    assert Drain(connect, client, policy=POLICY).run().applied == 1
    outage = write_outage(db)
    [done] = [r for r in queue_rows(db) if r["status"] == "done"]
    assert outage.since == done["processed_at"] and outage.waiting == 1
    assert outage.duration < timedelta(minutes=1)


def test_no_failed_write_no_outage(db, connect, client, emulator):
    mentors = hlf_mentors(db, 1)
    seed_contacts(emulator, mentors)
    set_statuses(db, mentors, "paused")
    assert write_outage(db) is None  # waiting, but nothing has failed
    Drain(connect, client, policy=POLICY).run()
    assert write_outage(db) is None


def test_a_long_retry_after_opens_dynamics_throttled_at_once_logs_it_and_a_clean_batch_resolves_it(
    db, connect, emulator, alerts, webhook, caplog
):
    mentors = hlf_mentors(db, 3)
    seed_contacts(emulator, mentors)
    set_statuses(db, mentors, "paused")
    # One request per 10 minutes: the second $batch gets a 429 with a Retry-After of 600 s.
    emulator.admin.configure(request_limit=1, window_seconds=600)
    waited = []

    def sleep(seconds):
        # Instead of waiting: the emulator's clock moves on, and the throttling is over.
        waited.append(seconds)
        emulator.admin.advance_clock(seconds)
        emulator.admin.configure(request_limit=6000, window_seconds=300)

    one_row_batches = QueuePolicy(batch_size=1, lease=timedelta(seconds=30))
    with caplog.at_level(logging.WARNING, logger="mentor_pipeline.sync"), \
            emulator.client(batch_size=1, max_in_flight=1, sleep=sleep) as client:
        report = Drain(connect, client, policy=one_row_batches, alerts=alerts, stall_bound=timedelta(minutes=5)).run()

    assert report.applied == 3 and report.rate_limit_waits == 1 and len(waited) == 1 and waited[0] > 300
    assert states(webhook, "dynamics_throttled") == ["open", "resolved"]
    opened = webhook.posts[0]
    assert "Retry-After waits in all" in opened["summary"] and opened["details"]["throttled_seconds"] > 300
    [line] = [r.getMessage() for r in caplog.records if r.name == "mentor_pipeline.sync" and "Retry-After" in r.getMessage()]
    assert line.startswith("website sync waits for Dataverse: HTTP 429 on a $batch of 1 updates, Retry-After: ")


def test_short_429_waits_under_the_bound_are_no_incident(db, connect, emulator, alerts, webhook):
    mentors = hlf_mentors(db, 20)
    seed_contacts(emulator, mentors)
    set_statuses(db, mentors, "paused")
    # Two requests per minute: a minute's wait (on the emulator's clock, which the client's sleep
    # moves) for two of the four $batch requests, however slowly they are sent.
    emulator.admin.configure(request_limit=2, window_seconds=60)

    with emulator.client(batch_size=5, max_in_flight=4, sleep=emulator.admin.advance_clock) as client:
        report = Drain(connect, client, policy=QueuePolicy(batch_size=100, lease=timedelta(seconds=10)),
                       alerts=alerts, stall_bound=timedelta(minutes=5)).run()

    assert report.applied == 20 and report.rate_limit_waits > 0
    assert webhook.posts == []


def test_sync_dead_rows_resolves_once_no_dead_row_is_left(db, connect, client, emulator, alerts, webhook):
    present, missing = hlf_mentors(db, 2, status="paused")
    seed_contacts(emulator, [present], listed=False)
    set_statuses(db, [present, missing], "active")
    Drain(connect, client, policy=POLICY, alerts=alerts).run()
    assert states(webhook, "sync_dead_rows") == ["open"]

    # A later drain that writes something else leaves the dead row, and the incident, as they are.
    set_statuses(db, [present], "paused")
    assert Drain(connect, client, policy=POLICY, alerts=alerts).run().applied == 1
    assert states(webhook, "sync_dead_rows") == ["open"]

    # HLF's CRM admins create the contact; the operator force-syncs the mentor.
    seed_contacts(emulator, [missing], listed=False)
    with db.transaction():
        enqueue(db, [missing], "force_sync")
    assert Drain(connect, client, policy=POLICY, alerts=alerts).run().applied == 1
    assert states(webhook, "sync_dead_rows") == ["open", "resolved"]
    assert get_incident(db, "sync_dead_rows").state == "resolved"


@pytest.mark.parametrize("error, counts", [
    ("unavailable: Dataverse answered HTTP 503 to a $batch of 2 updates 5 times in a row", True),
    ("DynamicsProtocolError: Dataverse answered a $batch with text/html", True),
    ("0x80040217: The record was not found", False),
    ("not sent: Dynamics rejected the client secret", False),  # an auth failure is its own incident
])
def test_which_failures_count_as_an_outage(db, error, counts):
    [mentor] = hlf_mentors(db, 1)
    set_statuses(db, [mentor], "paused")
    move_status_changes(db)  # the failed attempt's claim moved the change first
    db.execute("update sync_queue set attempts = 1, last_error = %s", (error,))
    outage = write_outage(db, db_now(db) + timedelta(minutes=10))
    assert (outage is not None) is counts
    if counts:
        assert outage.last_error == error and outage.duration >= timedelta(minutes=10)
