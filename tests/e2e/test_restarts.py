"""A crash of the daemon's whole process group mid-drain (a host reboot, an OOM kill, a container
restart) stalls nothing: the run whose worker died is failed with the reason once its heartbeat has
been silent for a while, the next drain starts, and every waiting change is on the website within
3 minutes of the restart, each written by one live drain."""

from __future__ import annotations

import time
from urllib.parse import unquote

import pytest

from tests.e2e.harness import Stack, wait_for
from tests.e2e.test_lifecycle import listed, new_mentor, set_status, wait_listed

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning"),
]

RESTART_PROMISE = 180.0  # seconds from the restart: the lease (2 min) plus a sensor tick and a launch


def writes_since(stack: Stack, seq: int, *, not_in_batches: set[int]) -> list[str]:
    """The contact writes Dataverse received after `seq`, leaving out the parts of the given
    `$batch` requests (the dead worker's, which the emulator still applies when its latency ends)."""
    return [unquote(e["path"]) for e in stack.admin.requests(since=seq)
            if e["method"] == "PATCH" and e.get("batch") not in not_in_batches]


def test_a_daemon_killed_mid_drain_costs_the_lease_not_half_an_hour(stack: Stack):
    mentors = [new_mentor(stack, "HLF", f"Restart Mentor {i}", listed_in_dynamics=True, settled=True) for i in range(4)]
    # Every Dataverse request takes 20 s: the drain's $batch is in flight when the daemon dies.
    stack.admin.set_faults(latency=20)
    with stack.connect() as conn:
        conn.execute("update mentors set status = 'paused' where id = any(%s)", (mentors[:3],))

        def in_flight():
            row = conn.execute(
                "select h.run_id from run_heartbeats h where exists (select from sync_queue q"
                " where q.status = 'processing' and q.mentor_id = any(%s))", (mentors[:3],)).fetchone()
            return row and row[0]

        dead_run = wait_for(in_flight, timeout=300, what="a drain holding the paused mentors, beating")
        stack.expected_failed_runs.add(dead_run)
        stack.kill_daemon()
        stack.admin.clear_faults()
        sent = stack.admin.requests(include_batch_parts=False)
        seq = max((e["seq"] for e in sent), default=0)
        dead_batches = {e["seq"] for e in sent if e["status"] is None}  # in flight when the worker died
        # A change made while nothing runs.
        conn.execute("update mentors set status = 'retired' where id = %s", (mentors[3],))

        stack.start_daemon()
        restarted = time.monotonic()
        def waiting() -> int:
            return conn.execute("select count(*) from sync_queue where status in ('pending', 'processing')"
                                " and mentor_id = any(%s)", (mentors,)).fetchone()[0]

        # Written by a live drain: the dead worker's $batch may still land (the emulator applies it
        # when its latency ends), but its rows count only once a live drain has recorded them.
        wait_for(lambda: waiting() == 0 and all(listed(stack, m) is False for m in mentors), timeout=RESTART_PROMISE,
                 what="every waiting change on the website within 3 minutes of the restart", interval=1)
        took = time.monotonic() - restarted
        print(f"every change on the website {took:.0f} s after the restart")

        assert stack.run_status(dead_run) == "FAILURE"
        assert "stopped sending heartbeats" in stack.run_failure_message(dead_run)
        # Each mentor written once after the restart (the dead run's rows only after their lease).
        written = writes_since(stack, seq, not_in_batches=dead_batches)
        for mentor in mentors:
            assert sum(str(mentor) in path for path in written) == 1, (mentor, written)
        # The dead run's rows were taken over by one drain after their lease, never by two.
        assert conn.execute("select count(*) from sync_queue where status = 'done' and mentor_id = any(%s)",
                            (mentors[:3],)).fetchone()[0] == 3


def test_a_retiring_mentor_leaves_the_website_and_a_newly_active_one_joins_it(stack: Stack):
    # Statuses other than active, paused and expired_cert (the original trigger's three) reach the website through the running daemon too.
    retiring = new_mentor(stack, "HLF", "Retiring Mentor", listed_in_dynamics=True, settled=True)
    newcomer = new_mentor(stack, "HLF", "Onboarded Mentor", listed_in_dynamics=False, settled=True)
    with stack.connect() as conn:
        conn.execute("update mentors set status = 'onboarding' where id = %s", (newcomer,))
    wait_listed(stack, newcomer, False, "an onboarding mentor stays off the website")

    set_status(stack, retiring, "retired")
    set_status(stack, newcomer, "active")

    wait_listed(stack, retiring, False, "a retired mentor leaves the website")
    wait_listed(stack, newcomer, True, "a certified mentor who becomes active joins the website")
