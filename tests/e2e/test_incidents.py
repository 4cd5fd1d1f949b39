"""Incidents with the real daemon: a broken secret and a Dynamics outage are each one incident
on the webhook (plus reminders at their intervals), resolved once when the cause is gone, and
no change is lost. The stack runs with intervals of seconds (harness.Stack.env)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from mentor_pipeline.vocabulary import QueueStatus
from tests.e2e.harness import REMINDER_MINUTES, Stack, wait_for
from tests.e2e.test_lifecycle import SYNC_TIMEOUT, listed, new_mentor, queue, set_status, wait_listed

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning"),
]

REMINDERS = [timedelta(minutes=float(m)) for m in REMINDER_MINUTES.split(",")]


def posts_of(stack: Stack, kind: str, since: int) -> list[dict]:
    return [p for p in stack.webhook.posts[since:] if p.get("kind") == kind]


def assert_one_incident(posts: list[dict]) -> None:
    """One incident from open to resolved: opened once, resolved once, and between them only the
    reminders its SQL decided on, each at its interval after the post before it. How many
    reminders fall inside the incident depends on when the daemon's sensors happened to tick
    (wall clock), so the count is checked against the incident's own record, not a constant."""
    states = [p["state"] for p in posts]
    assert states[0] == "open" and states[-1] == "resolved" and set(states[1:-1]) <= {"reminder"}, states
    assert len(states) - 2 == posts[-1]["reminders_sent"], (states, posts[-1]["reminders_sent"])
    posted_at = [datetime.fromisoformat(p["last_seen"]) for p in posts[:-1]]
    for n, (before, after) in enumerate(zip(posted_at, posted_at[1:])):
        assert after - before >= REMINDERS[min(n, len(REMINDERS) - 1)], states


def test_a_wrong_secret_is_one_incident_with_reminders_at_their_intervals_then_one_resolution(stack: Stack):
    mentors = [new_mentor(stack, "HLF", f"E2E Gro Secret {n}", listed_in_dynamics=True, settled=True) for n in range(3)]
    seen = len(stack.webhook.posts)
    # A sync run still lingering from an earlier test may be the one that meets the wrong secret.
    failed_before = {r["runId"] for r in stack.runs("website_sync_job", limit=200) if r["status"] == "FAILURE"}

    # HLF IT rotates the secret without telling us; tokens issued before stop working too.
    stack.admin.rotate_secret(f"e2e-unannounced-{uuid.uuid4().hex}")
    stack.admin.revoke_tokens()
    try:
        for mentor in mentors:
            set_status(stack, mentor, "paused")
        wait_for(lambda: posts_of(stack, "dynamics_auth_wrong_secret", seen), timeout=SYNC_TIMEOUT,
                 what="the wrong-secret incident on the webhook")
        # It stays broken until a reminder has gone out (the sensor re-checks every 15 s meanwhile).
        wait_for(lambda: any(p["state"] == "reminder" for p in posts_of(stack, "dynamics_auth_wrong_secret", seen)),
                 timeout=SYNC_TIMEOUT, what="a reminder of the open incident")
        assert {(r["status"], r["attempts"]) for m in mentors for r in queue(stack, m)} == {("pending", 0)}
        assert all(listed(stack, m) is True for m in mentors)
    finally:
        stack.admin.rotate_secret(stack.secret)  # HLF IT puts back the secret the pipeline has

    for mentor in mentors:
        wait_listed(stack, mentor, False, "the change kept while the secret was wrong written once it works")
    wait_for(lambda: posts_of(stack, "dynamics_auth_wrong_secret", seen)[-1]["state"] == "resolved",
             timeout=SYNC_TIMEOUT, what="the resolution of the incident")

    posts = posts_of(stack, "dynamics_auth_wrong_secret", seen)
    # Reminders only at their intervals: after 30 s, then each a minute after the one before.
    assert "reminder" in [p["state"] for p in posts]
    assert_one_incident(posts)

    # The sensor stopped starting drains: one sync run met the wrong secret, not one every few seconds,
    # and it is part of the incident, not a run_failed incident of its own.
    failed = [r["runId"] for r in stack.runs("website_sync_job", limit=200)
              if r["status"] == "FAILURE" and r["runId"] not in failed_before]
    assert len(failed) == 1, failed
    stack.expected_failed_runs.update(failed)
    assert posts_of(stack, "run_failed", seen) == []
    for post in stack.webhook.posts[seen:]:
        assert stack.secret not in repr(post) and stack.webhook.url not in repr(post)


def test_a_dynamics_outage_opens_an_incident_within_the_bound_and_resolves_after_recovery(stack: Stack):
    mentor = new_mentor(stack, "HLF", "E2E Harald Outage", listed_in_dynamics=True, settled=True)
    seen = len(stack.webhook.posts)

    stack.admin.set_faults(error_rate=1.0)  # Dataverse answers 503 to every Web API request
    try:
        set_status(stack, mentor, "paused")
        [opened] = wait_for(lambda: posts_of(stack, "dynamics_unreachable", seen), timeout=SYNC_TIMEOUT,
                            what="the dynamics_unreachable incident")
        # Opened at the first failed attempts, not after the row's retries run out (about an hour).
        [row] = queue(stack, mentor)
        assert row["status"] in QueueStatus.WAITING and row["attempts"] <= 2, row
        assert row["last_error"].startswith("unavailable: "), row
        assert opened["state"] == "open" and "1 change(s) waiting" in opened["summary"]
        assert listed(stack, mentor) is True
    finally:
        stack.admin.clear_faults()

    wait_listed(stack, mentor, False, "the change written after the outage (its retry backoff is 30-60 s)")
    wait_for(lambda: posts_of(stack, "dynamics_unreachable", seen)[-1]["state"] == "resolved",
             timeout=SYNC_TIMEOUT, what="the resolution of the outage incident")
    # Open once, resolved once. Reminders may fall between: the row waits out its retry backoff
    # (30 s, or 60 s after a second failure) plus a run launch, while website_sync_health_sensor
    # (every 60 s) still sees the failed write and records an occurrence; one 30 s after the
    # opening is a reminder (REMINDER_MINUTES), as the incident is still open then.
    assert_one_incident(posts_of(stack, "dynamics_unreachable", seen))
    assert [r["status"] for r in queue(stack, mentor)] == ["done"]
