"""A 429's Retry-After holds every process of the pipeline (Dataverse counts per application user):
the hold is recorded in the database, so the drain that starts after a throttled one was killed
waits it out instead of being refused again. Real PostgreSQL, the emulator over HTTP, a real
child process killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from mentor_pipeline.sync import Drain, QueuePolicy
from tests.support.polling import wait_for
from tests.sync.helpers import hlf_mentors, listed_in_dynamics, queue_statuses, seed_contacts, set_statuses

REPO = Path(__file__).resolve().parents[2]


def recorded_hold(db):
    return db.execute("select budget, hold_until, retry_after_seconds from dynamics_throttle_holds").fetchall()


def test_a_hold_keeps_the_later_deadline_and_is_read_at_the_moment_given(db):
    (at,) = db.execute("select now()").fetchone()
    db.execute("select record_dynamics_hold('org app', 10, 'a $batch', %s)", (at,))
    db.execute("select record_dynamics_hold('org app', 4, 'a shorter one', %s)", (at,))  # inside the first

    [(seconds, what, until)] = db.execute("select * from dynamics_hold_left('org app', %s)",
                                          (at + timedelta(seconds=3),)).fetchall()
    assert (round(seconds, 3), what, until) == (7.0, "a $batch", at + timedelta(seconds=10))
    assert db.execute("select * from dynamics_hold_left('org app', %s)", (at + timedelta(seconds=10),)).fetchall() == []
    assert db.execute("select * from dynamics_hold_left('another app', %s)", (at,)).fetchall() == []


def test_a_drain_started_after_a_throttled_one_died_waits_its_retry_after(db, db_url, connect, emulator):
    mentors = hlf_mentors(db, 2)
    seed_contacts(emulator, mentors)
    set_statuses(db, mentors, "paused")
    # One request per 6 s for this application user: the child's second $batch gets a 429 with
    # a Retry-After of about 6 s, and the child sleeps on it.
    emulator.admin.configure(request_limit=1, window_seconds=6)
    env = {**os.environ, **emulator.env(), "DATABASE_URL": db_url, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-m", "tests.sync.drain_child", "1", "1"], cwd=REPO, env=env,
                             start_new_session=True)
    try:
        wait_for(lambda: recorded_hold(db), timeout=120)  # a process start on a loaded machine
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    [(budget, hold_until, retry_after)] = recorded_hold(db)
    assert budget.endswith(emulator.options.client_id) and retry_after > 2
    refused = emulator.admin.state()["limits"]["rejections"]
    assert refused == 1

    # The next drain (a new process's client) sends nothing before the hold ends.
    with emulator.client() as client:
        report = Drain(connect, client, policy=QueuePolicy(batch_size=10, lease=timedelta(seconds=1))).run(
            linger_seconds=3)

    assert emulator.admin.state()["limits"]["rejections"] == refused  # never refused again
    assert report.applied >= 1 and queue_statuses(db).get("done") == 2
    assert set(listed_in_dynamics(emulator).values()) == {False}
