"""Several processors at once, a processor killed mid-batch, and the app never blocked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import psycopg

from mentor_pipeline.sync import Drain, QueuePolicy
from tests.support.factories import move_status_changes, queue_rows, set_status
from tests.support.polling import wait_for
from tests.sync.helpers import (
    drains_at_once,
    hlf_mentors,
    listed_in_dynamics,
    queue_statuses,
    seed_contacts,
    sent_writes,
    set_statuses,
)

REPO = Path(__file__).resolve().parents[2]


def test_four_processors_apply_2000_rows_each_exactly_once(db, connect, emulator):
    mentors = hlf_mentors(db, 2000)
    seed_contacts(emulator, mentors)
    set_statuses(db, mentors, "paused")
    # The sensor's tick, which queued the changes before it asked for runs. (Left to the drains'
    # own ticks, one moves all 2000 in its transaction while the others move nothing and find
    # an empty queue.)
    move_status_changes(db)
    policy = QueuePolicy(batch_size=100, lease=timedelta(seconds=30))
    emulator.admin.set_faults(latency=0.05)  # each $batch takes a little while: the four overlap
    reports = drains_at_once(4, connect, emulator, policy, archive=False)

    assert queue_statuses(db) == {"done": 2000}  # none lost
    writes = Counter(mentor for mentor, _ in sent_writes(emulator))
    assert len(writes) == 2000 and set(writes.values()) == {1}  # each applied once
    assert set(listed_in_dynamics(emulator).values()) == {False}
    assert sum(r.applied for r in reports) == 2000
    assert sum(1 for r in reports if r.applied) >= 2, "the processors did not actually share the work"


def test_processor_killed_mid_batch_another_finishes_after_the_lease(db, db_url, connect, emulator):
    mentors = hlf_mentors(db, 120)
    seed_contacts(emulator, mentors)
    set_statuses(db, mentors, "paused")
    emulator.admin.set_faults(latency=0.3)  # each $batch of 10 takes 0.3 s: the child is slow
    env = {**os.environ, **emulator.env(), "DATABASE_URL": db_url, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-m", "tests.sync.drain_child", "60", "1.5"], cwd=REPO, env=env)
    try:
        # Kill it once it has written some of its batch to Dynamics but not recorded it.
        wait_for(lambda: len(sent_writes(emulator)) >= 25, timeout=120)  # a process start on a loaded machine
        processing = queue_statuses(db).get("processing", 0)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    assert processing > 0, "the child was not mid-batch"
    # While the dead processor's rows are leased, some mentors change again.
    reinstated = mentors[:5]
    set_statuses(db, reinstated, "active")
    emulator.admin.clear_faults()

    # The survivor runs once the dead processor's leases have run out, and takes it all.
    (lease_end,) = db.execute("select max(locked_until) from sync_queue where status = 'processing'").fetchone()
    after_the_lease = lease_end + timedelta(milliseconds=1)
    with emulator.client() as client:
        report = Drain(connect, client, policy=QueuePolicy(batch_size=500, lease=timedelta(seconds=30)),
                       clock=lambda: after_the_lease).run()

    statuses = queue_statuses(db)
    assert set(statuses) <= {"done", "superseded"} and statuses.get("done", 0) >= 120  # nothing lost
    final = listed_in_dynamics(emulator)
    for mentor in mentors:
        assert final[str(mentor)] is (mentor in reinstated), mentor
    # Re-applied rows wrote the same value again: nothing ended in a different state.
    for mentor, listed in sent_writes(emulator):
        if listed is True:
            assert mentor in {str(m) for m in reinstated}
    # The killed batch was re-sent by the survivor (same value: update-only PATCHes are idempotent).
    assert report.applied > 0 and any(n > 1 for n in Counter(m for m, _ in sent_writes(emulator)).values())
    for mentor in reinstated:
        assert [r["status"] for r in queue_rows(db, mentor)][-1] == "done"


class HeldInFlight:
    """The processor's client, holding each write call until the test lets it go: the processor
    is in the middle of talking to Dynamics for as long as the test needs, however slow the
    machine. Then the real HTTP request goes out."""

    def __init__(self, client):
        self._client = client
        self.in_flight = threading.Event()
        self.release = threading.Event()

    def apply_updates(self, updates):
        self.in_flight.set()
        if not self.release.wait(timeout=60):
            raise TimeoutError("the test never released the held request")
        return self._client.apply_updates(updates)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_app_status_update_is_not_blocked_while_a_processor_is_mid_http(db, db_url, connect, emulator):
    [mentor] = hlf_mentors(db, 1)
    seed_contacts(emulator, [mentor])
    set_status(db, mentor, "paused")
    result = {}

    with emulator.client() as real_client:
        client = HeldInFlight(real_client)
        thread = threading.Thread(target=lambda: result.update(
            report=Drain(connect, client, policy=QueuePolicy(lease=timedelta(seconds=30))).run()))
        thread.start()
        try:
            assert client.in_flight.wait(timeout=60), "the processor never reached Dynamics"
            assert [r["status"] for r in queue_rows(db, mentor)] == ["processing"]

            # Any wait on the processor's locks would fail this update (lock_timeout), however slow the machine.
            with psycopg.connect(db_url) as app:
                app.execute("set lock_timeout = '200ms'")
                app.execute("update mentors set status = 'active' where id = %s", (mentor,))  # enqueues a restore
                app.commit()
            assert [r["status"] for r in queue_rows(db, mentor)] == ["processing", "pending"]
        finally:
            client.release.set()
            thread.join(timeout=60)

    # The in-flight remove finished, then the newer restore ran after it: in order.
    assert sent_writes(emulator) == [(str(mentor), False), (str(mentor), True)]
    assert listed_in_dynamics(emulator)[str(mentor)] is True
    assert [r.result for r in result["report"].rows] == ["applied", "applied"]
